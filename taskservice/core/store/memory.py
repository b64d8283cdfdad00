"""In-memory store: the same interface with nothing on disk, for fast engine tests."""

from __future__ import annotations

import builtins
import dataclasses
import threading
from collections.abc import Callable, Sequence

from taskservice.core.models import Task, TaskFilter
from taskservice.core.schedules import Schedule
from taskservice.core.store.base import (
    UNFINISHED_STATES,
    DeleteTasks,
    InsertTask,
    SaveProgress,
    SaveTask,
    TaskStore,
    Write,
    expired,
    matches,
)


class MemoryStore(TaskStore):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: dict[str, Task] = {}
        self._schedules: dict[str, Schedule] = {}
        # Tests use this to see how many transactions a workload caused.
        self.batches_applied = 0

    def apply(self, writes: Sequence[Write]) -> None:
        with self._lock:
            # All or nothing, as a transaction: a duplicate anywhere in the batch refuses all of it.
            inserted: set[str] = set()
            for write in writes:
                if isinstance(write, InsertTask):
                    task_id = write.task.task_id
                    if task_id in self._tasks or task_id in inserted:
                        raise ValueError(f"task {task_id!r} exists")
                    inserted.add(task_id)
            for write in writes:
                if isinstance(write, InsertTask) or (
                    isinstance(write, SaveTask) and write.task.task_id in self._tasks  # an UPDATE, as in SQL
                ):
                    self._tasks[write.task.task_id] = write.task.copy()
                elif isinstance(write, DeleteTasks):
                    for task_id in write.task_ids:
                        self._tasks.pop(task_id, None)
                elif isinstance(write, SaveProgress):
                    stored = self._tasks.get(write.task_id)
                    if stored is not None:
                        stored.progress = dataclasses.replace(write.progress)
                        stored.event_sequence = max(stored.event_sequence, write.event_sequence)
            self.batches_applied += 1

    def get(self, task_id: str) -> Task | None:
        with self._lock:
            task = self._tasks.get(task_id)
            return task.copy() if task else None

    def list(self, task_filter: TaskFilter, *, before_order: int | None, limit: int) -> list[Task]:
        with self._lock:
            ordered = sorted(self._tasks.values(), key=lambda t: t.submit_order, reverse=True)
            found = []
            for task in ordered:
                if before_order is not None and task.submit_order >= before_order:
                    continue
                if matches(task, task_filter):
                    found.append(task.copy())
                    if len(found) == limit:
                        break
            return found

    def ended_ids(self, task_filter: TaskFilter, ended_before: float | None, limit: int) -> builtins.list[str]:
        return self._oldest_ends(
            lambda t: matches(t, task_filter) and (ended_before is None or (t.ended_at or 0.0) < ended_before), limit
        )

    def expired_ids(self, now: float, retention: float, limit: int) -> builtins.list[str]:
        return self._oldest_ends(lambda t: expired(t, now, retention), limit)

    def _oldest_ends(self, wanted: Callable[[Task], bool], limit: int) -> builtins.list[str]:
        with self._lock:
            ended = [t for t in self._tasks.values() if t.state.is_terminal and t.ended_at is not None]
        return [t.task_id for t in sorted(ended, key=lambda t: t.ended_at or 0.0) if wanted(t)][:limit]

    def load_unfinished(self) -> builtins.list[Task]:
        with self._lock:
            tasks = [t.copy() for t in self._tasks.values() if t.state in UNFINISHED_STATES]
        return sorted(tasks, key=lambda t: t.submit_order)

    def max_order(self) -> int:
        with self._lock:
            return max((t.submit_order for t in self._tasks.values()), default=0)

    def count(self) -> int:
        with self._lock:
            return len(self._tasks)

    def load_schedules(self) -> builtins.list[Schedule]:
        with self._lock:
            return [schedule.copy() for schedule in self._schedules.values()]

    def put_schedule(self, schedule: Schedule) -> None:
        with self._lock:
            self._schedules[schedule.schedule_id] = schedule.copy()

    def delete_schedule(self, schedule_id: str) -> None:
        with self._lock:
            self._schedules.pop(schedule_id, None)
