"""AsyncTaskRun[R]: one task submitted by function, as the asyncio client returns it (`await run` is its result).

scripts/unasync.py writes the synchronous TaskRun (sync_run.py) from this file; lines between
`# unasync: async only` and `# unasync: end` are left out of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from taskservice.client.models import SubmitResult, Task, TaskEvent
from taskservice.client.results import outcome

if TYPE_CHECKING:
    from taskservice.client.async_client import AsyncTaskClient

R = TypeVar("R")


class AsyncTaskRun(Generic[R]):
    """A submitted task whose result is an `R` (its handler's return type).

    result() waits for it to end and returns the result decoded into `R`, or raises TaskFailed (the remote error
    type, message and traceback) when it ended otherwise; get(), wait(), watch() and stop() act on the task.
    """

    def __init__(self, client: AsyncTaskClient, submitted: SubmitResult, result_type: Any) -> None:
        self.client = client
        self.task_id = submitted.task.task_id
        # False when an identical Submit under this task_id had been made before (an idempotent resubmission).
        self.created = submitted.created
        self.submitted = submitted.task
        self.result_type = result_type

    def __repr__(self) -> str:
        return f"<TaskRun {self.task_id} ({self.submitted.task_type})>"

    async def result(self, timeout: float | None = None) -> R:
        """Wait until the task ends; its result as an `R`, or TaskFailed. DeadlineExceeded after `timeout` seconds."""
        task = await self.client.wait(self.task_id, timeout)
        result: R = outcome(task, self.result_type)
        return result

    async def get(self) -> Task:
        """The task as it is now."""
        return await self.client.get(self.task_id)

    async def wait(self, timeout: float | None = None) -> Task:
        """The task once it ended, whatever its state."""
        return await self.client.wait(self.task_id, timeout)

    async def stop(self, reason: str = "") -> Task:
        """Revoke it if it waits, ask it to stop if it runs."""
        return await self.client.stop(self.task_id, reason)

    def watch(self, *, timeout: float | None = None) -> AsyncIterator[TaskEvent]:
        """Its events (state changes and progress) up to the terminal one."""
        return self.client.watch(self.task_id, timeout=timeout)

    # unasync: async only
    def __await__(self) -> Generator[Any, None, R]:
        """`await run` is `await run.result()`."""
        return self.result().__await__()

    # unasync: end
