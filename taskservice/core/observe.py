"""Listeners told of every task state change: the transition log, metrics, anything an operator plugs in."""

from __future__ import annotations

import logging
from typing import Protocol

from taskservice.core.models import Task, TaskState

transitions_log = logging.getLogger("taskservice.tasks")


class TaskListener(Protocol):
    def task_changed(self, task: Task, previous: TaskState | None) -> None:
        """`task` just entered task.state (previous is None for a new submission).

        Called under the manager's lock, in order: must be quick, must not block and must not raise.
        """


class TransitionLog:
    """One log line per transition, with the task's id and type as structured fields (see --log-format json)."""

    def task_changed(self, task: Task, previous: TaskState | None) -> None:
        error = f" ({task.error.type}: {task.error.message})" if task.error and task.state.is_terminal else ""
        transitions_log.info(
            "task %s (%s) %s -> %s%s",
            task.task_id,
            task.task_type,
            previous.value if previous else "submitted",
            task.state.value,
            error,
            extra={
                "task_id": task.task_id,
                "task_type": task.task_type,
                "state": task.state.value,
                "previous_state": previous.value if previous else None,
                "attempt": task.attempt,
                "error_type": task.error.type if task.error else None,
            },
        )
