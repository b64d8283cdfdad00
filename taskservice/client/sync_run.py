"""Generated from async_run.py by scripts/unasync.py: do not edit; edit async_run.py and run `make unasync`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from taskservice.client.models import SubmitResult, Task, TaskEvent
from taskservice.client.results import outcome

if TYPE_CHECKING:
    from taskservice.client.sync_client import TaskClient

R = TypeVar("R")


class TaskRun(Generic[R]):
    """A submitted task whose result is an `R` (its handler's return type).

    result() waits for it to end and returns the result decoded into `R`, or raises TaskFailed (the remote error
    type, message and traceback) when it ended otherwise; get(), wait(), watch() and stop() act on the task.
    """

    def __init__(self, client: TaskClient, submitted: SubmitResult, result_type: Any) -> None:
        self.client = client
        self.task_id = submitted.task.task_id
        # False when an identical Submit under this task_id had been made before (an idempotent resubmission).
        self.created = submitted.created
        self.submitted = submitted.task
        self.result_type = result_type

    def __repr__(self) -> str:
        return f"<TaskRun {self.task_id} ({self.submitted.task_type})>"

    def result(self, timeout: float | None = None) -> R:
        """Wait until the task ends; its result as an `R`, or TaskFailed. DeadlineExceeded after `timeout` seconds."""
        task = self.client.wait(self.task_id, timeout)
        result: R = outcome(task, self.result_type)
        return result

    def get(self) -> Task:
        """The task as it is now."""
        return self.client.get(self.task_id)

    def wait(self, timeout: float | None = None) -> Task:
        """The task once it ended, whatever its state."""
        return self.client.wait(self.task_id, timeout)

    def stop(self, reason: str = "") -> Task:
        """Revoke it if it waits, ask it to stop if it runs."""
        return self.client.stop(self.task_id, reason)

    def watch(self, *, timeout: float | None = None) -> Iterator[TaskEvent]:
        """Its events (state changes and progress) up to the terminal one."""
        return self.client.watch(self.task_id, timeout=timeout)
