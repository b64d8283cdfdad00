"""Listeners told of every task state change: the transition log, metrics, anything an operator plugs in."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from taskservice.core.models import Task, TaskState

transitions_log = logging.getLogger("taskservice.tasks")


class TaskListener(Protocol):
    def task_changed(self, task: Task, previous: TaskState | None) -> None:
        """`task` just entered task.state (previous is None for a new submission).

        Called under the manager's lock, in order: must be quick, must not block and must not raise.
        """

    def tasks_recovered(self, tasks: Sequence[Task]) -> None:
        """At start, before any task_changed: the tasks the last run left queued, PENDING again now.

        They made no transition in this process, so task_changed never tells of them. Optional: a listener
        without this method is not called.
        """


class TransitionLog:
    """One log line per transition, with the task's id and type as structured fields (see --log-format json)."""

    def tasks_recovered(self, tasks: Sequence[Task]) -> None:
        """Not a transition: the manager logs one line with the count."""

    def task_changed(self, task: Task, previous: TaskState | None) -> None:
        if not transitions_log.isEnabledFor(logging.INFO):
            return
        error = f" ({task.error.type}: {task.error.message})" if task.error and task.state.is_terminal else ""
        # The record is made and handled directly, as Logger.info would but without looking up the caller's
        # frame: a busy server logs several lines per task, and no format shows the caller.
        record = transitions_log.makeRecord(
            transitions_log.name,
            logging.INFO,
            __file__,
            0,
            "task %s (%s) %s -> %s%s",
            (task.task_id, task.task_type, previous.value if previous else "submitted", task.state.value, error),
            None,
            extra={
                "task_id": task.task_id,
                "task_type": task.task_type,
                "state": task.state.value,
                "previous_state": previous.value if previous else None,
                "attempt": task.attempt,
                "error_type": task.error.type if task.error else None,
            },
        )
        transitions_log.handle(record)
