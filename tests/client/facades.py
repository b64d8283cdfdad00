"""One synchronous face over TaskClient and AsyncTaskClient, so that each behaviour is tested once
against both clients (the async one runs on a private event loop)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from typing import Any, Protocol, TypeVar

from taskservice.client import AsyncTaskClient, SubmitResult, Task, TaskClient, TaskEvent, TaskPage

T = TypeVar("T")


class ClientFacade(Protocol):
    kind: str

    def submit(self, task_type: str, args: dict[str, Any] | None = None, **options: Any) -> SubmitResult: ...
    def get(self, task_id: str) -> Task: ...
    def stop(self, task_id: str, reason: str = "") -> Task: ...
    def list(self, **filters: Any) -> TaskPage: ...
    def iter_tasks(self, **filters: Any) -> list[Task]: ...
    def watch(self, task_id: str, **options: Any) -> list[TaskEvent]: ...
    def wait(self, task_id: str, timeout: float | None = None) -> Task: ...
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

    def watch(self, task_id: str, **options: Any) -> list[TaskEvent]:
        return list(self.client.watch(task_id, **options))

    def wait(self, task_id: str, timeout: float | None = None) -> Task:
        return self.client.wait(task_id, timeout)

    def close(self) -> None:
        self.client.close()


async def _collect(items: AsyncIterator[T]) -> list[T]:
    return [item async for item in items]


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

    def watch(self, task_id: str, **options: Any) -> list[TaskEvent]:
        return self._run(_collect(self.client.watch(task_id, **options)))

    def wait(self, task_id: str, timeout: float | None = None) -> Task:
        return self._run(self.client.wait(task_id, timeout))

    def close(self) -> None:
        self._run(self.client.close())
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()


FACADES: dict[str, type[SyncFacade] | type[AsyncFacade]] = {"sync": SyncFacade, "async": AsyncFacade}
