"""One synchronous face over TaskClient and AsyncTaskClient, so that each behaviour is tested once
against both clients (the async one runs on a private event loop)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, Protocol, TypeVar

from taskservice.client import AsyncTaskClient, SubmitResult, Task, TaskClient, TaskEvent, TaskPage

T = TypeVar("T")
# Called with each event as it arrives, so that a test can act in the middle of a watch.
OnEvent = Callable[[TaskEvent], None]


class ClientFacade(Protocol):
    kind: str

    def submit(self, task_type: str, args: dict[str, Any] | None = None, **options: Any) -> SubmitResult: ...
    def get(self, task_id: str) -> Task: ...
    def stop(self, task_id: str, reason: str = "") -> Task: ...
    def list(self, **filters: Any) -> TaskPage: ...
    def iter_tasks(self, **filters: Any) -> list[Task]: ...
    def watch(self, task_id: str, on_event: OnEvent | None = None, **options: Any) -> list[TaskEvent]: ...
    def wait(self, task_id: str, timeout: float | None = None) -> Task: ...
    def watch_many(self, task_ids: list[str], **options: Any) -> list[TaskEvent]: ...
    def as_completed(self, task_ids: list[str], **options: Any) -> list[Task]: ...
    def wait_all(self, task_ids: list[str], timeout: float | None = None) -> list[Task]: ...
    def call(self, method: str, *args: Any, **options: Any) -> Any: ...
    def close(self) -> None: ...


class SyncFacade:
    kind = "sync"

    def __init__(self, address: str, **options: Any) -> None:
        self.client = TaskClient(address, **options)

    def submit(self, task_type: str, args: dict[str, Any] | None = None, **options: Any) -> SubmitResult:
        return self.client.submit(task_type, args, **options)

    def get(self, task_id: str) -> Task:
        return self.client.get(task_id)

    def stop(self, task_id: str, reason: str = "") -> Task:
        return self.client.stop(task_id, reason)

    def list(self, **filters: Any) -> TaskPage:
        return self.client.list(**filters)

    def iter_tasks(self, **filters: Any) -> list[Task]:
        return list(self.client.iter_tasks(**filters))

    def watch(self, task_id: str, on_event: OnEvent | None = None, **options: Any) -> list[TaskEvent]:
        return _collect_sync(self.client.watch(task_id, **options), on_event)

    def wait(self, task_id: str, timeout: float | None = None) -> Task:
        return self.client.wait(task_id, timeout)

    def watch_many(self, task_ids: list[str], **options: Any) -> list[TaskEvent]:
        return list(self.client.watch_many(task_ids, **options))

    def as_completed(self, task_ids: list[str], **options: Any) -> list[Task]:
        return list(self.client.as_completed(task_ids, **options))

    def wait_all(self, task_ids: list[str], timeout: float | None = None) -> list[Task]:
        return list(self.client.wait_all(task_ids, timeout))

    def call(self, method: str, *args: Any, **options: Any) -> Any:
        """Any other unary method, by name."""
        return getattr(self.client, method)(*args, **options)

    def close(self) -> None:
        self.client.close()


def _collect_sync(events: Iterator[TaskEvent], on_event: OnEvent | None) -> list[TaskEvent]:
    seen = []
    for event in events:
        seen.append(event)
        if on_event is not None:
            on_event(event)
    return seen


async def _collect(items: AsyncIterator[T], on_item: Callable[[T], None] | None = None) -> list[T]:
    seen = []
    async for item in items:
        seen.append(item)
        if on_item is not None:
            on_item(item)
    return seen


class AsyncFacade:
    kind = "async"

    def __init__(self, address: str, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()

        async def make() -> AsyncTaskClient:
            return AsyncTaskClient(address, **options)

        self.client = self._run(make())

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(coro)

    def submit(self, task_type: str, args: dict[str, Any] | None = None, **options: Any) -> SubmitResult:
        return self._run(self.client.submit(task_type, args, **options))

    def get(self, task_id: str) -> Task:
        return self._run(self.client.get(task_id))

    def stop(self, task_id: str, reason: str = "") -> Task:
        return self._run(self.client.stop(task_id, reason))

    def list(self, **filters: Any) -> TaskPage:
        return self._run(self.client.list(**filters))

    def iter_tasks(self, **filters: Any) -> list[Task]:
        return self._run(_collect(self.client.iter_tasks(**filters)))

    def watch(self, task_id: str, on_event: OnEvent | None = None, **options: Any) -> list[TaskEvent]:
        return self._run(_collect(self.client.watch(task_id, **options), on_event))

    def wait(self, task_id: str, timeout: float | None = None) -> Task:
        return self._run(self.client.wait(task_id, timeout))

    def watch_many(self, task_ids: list[str], **options: Any) -> list[TaskEvent]:
        return self._run(_collect(self.client.watch_many(task_ids, **options)))

    def as_completed(self, task_ids: list[str], **options: Any) -> list[Task]:
        return self._run(_collect(self.client.as_completed(task_ids, **options)))

    def wait_all(self, task_ids: list[str], timeout: float | None = None) -> list[Task]:
        return list(self._run(self.client.wait_all(task_ids, timeout)))

    def call(self, method: str, *args: Any, **options: Any) -> Any:
        """Any other unary method, by name."""
        return self._run(getattr(self.client, method)(*args, **options))

    def close(self) -> None:
        self._run(self.client.close())
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()


FACADES: dict[str, type[SyncFacade] | type[AsyncFacade]] = {"sync": SyncFacade, "async": AsyncFacade}
