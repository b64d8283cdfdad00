"""The storage interface. Writes come in batches so that one transaction (one fsync) serves many."""

from __future__ import annotations

import abc
import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from taskservice.core.models import Progress, Task, TaskFilter, TaskState

if TYPE_CHECKING:
    from taskservice.core.schedules import Schedule


class StoreOpenError(Exception):
    """The database cannot be used (corrupt, foreign, or written by a newer version)."""


@dataclass(frozen=True, slots=True)
class InsertTask:
    task: Task


@dataclass(frozen=True, slots=True)
class SaveTask:
    """Write every mutable field of a task (state, times, result, error, progress, attempt)."""

    task: Task


@dataclass(frozen=True, slots=True)
class SaveProgress:
    task_id: str
    progress: Progress
    event_sequence: int


@dataclass(frozen=True, slots=True)
class DeleteTasks:
    """Remove ended tasks (and their labels)."""

    task_ids: tuple[str, ...]


Write = InsertTask | SaveTask | SaveProgress | DeleteTasks

UNFINISHED_STATES = (TaskState.PENDING, TaskState.RUNNING, TaskState.STOPPING)
ENDED_STATES = tuple(state for state in TaskState if state.is_terminal)


class TaskStore(abc.ABC):
    """Where tasks live. Implementations are thread-safe.

    apply() is atomic and durable when it returns: a crash after it keeps all of the batch, a crash
    during it keeps none.
    """

    @abc.abstractmethod
    def apply(self, writes: Sequence[Write]) -> None: ...

    @abc.abstractmethod
    def get(self, task_id: str) -> Task | None: ...

    @abc.abstractmethod
    def list(self, task_filter: TaskFilter, *, before_order: int | None, limit: int) -> list[Task]:
        """Tasks matching the filter with submission order below before_order (all when None), newest first."""

    @abc.abstractmethod
    def ended_ids(self, task_filter: TaskFilter, ended_before: float | None, limit: int) -> builtins.list[str]:
        """Up to `limit` ended tasks matching the filter (that ended before `ended_before`, if given), oldest end
        first."""

    @abc.abstractmethod
    def expired_ids(self, now: float, retention: float, limit: int) -> builtins.list[str]:
        """Up to `limit` ended tasks kept past their retention by `now` (see expired()), oldest end first."""

    @abc.abstractmethod
    def load_unfinished(self) -> builtins.list[Task]:
        """Tasks in PENDING, RUNNING or STOPPING, in submission order."""

    @abc.abstractmethod
    def max_order(self) -> int:
        """The highest submission order stored, 0 when empty."""

    @abc.abstractmethod
    def count(self) -> int: ...

    @abc.abstractmethod
    def load_schedules(self) -> builtins.list[Schedule]: ...

    @abc.abstractmethod
    def put_schedule(self, schedule: Schedule) -> None:
        """Store a schedule (insert, or replace the one under its id); durable when it returns."""

    @abc.abstractmethod
    def delete_schedule(self, schedule_id: str) -> None:
        """Durable when it returns."""

    def probe_write(self) -> None:  # noqa: B027 - a store with nothing to probe can always be written
        """A write that changes nothing but needs the disk; raises when the store cannot be written now."""

    def close(self) -> None:  # noqa: B027 - optional for stores that hold nothing open
        """Release files; safe to call twice."""


def expired(task: Task, now: float, retention: float) -> bool:
    """Whether an ended task has been kept long enough: its own retention, else the server's `retention`; 0 (either
    way) keeps it for ever."""
    keep = task.retention if task.retention is not None else retention
    return task.state.is_terminal and task.ended_at is not None and keep > 0 and task.ended_at + keep < now


def matches(task: Task, task_filter: TaskFilter) -> bool:
    """The filter semantics every store shares."""
    if task_filter.states and task.state not in task_filter.states:
        return False
    if task_filter.task_type and task.task_type != task_filter.task_type:
        return False
    if task_filter.scheduled and (task.state is not TaskState.PENDING or task.run_after is None):
        return False
    return all(task.labels.get(key) == value for key, value in task_filter.labels)
