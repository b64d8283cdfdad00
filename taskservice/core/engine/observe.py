"""Listeners told of every task state change: the transition log, metrics, anything an operator plugs in."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from taskservice.core.model.models import Task, TaskState

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


@runtime_checkable
class ScheduleListener(Protocol):
    def schedule_fired(self, schedule_id: str, fired: int, missed: int, refused: bool) -> None:
        """A pass over a due schedule moved it on: `fired` tasks created, `missed` due times skipped (its catch-up
        policy), `refused` when its Submit was refused. Optional on a TaskListener; must be quick, must not raise."""


class TransitionLog:
    """One log line per transition, with the task's id and type as structured fields (see --log-format json)."""

    def tasks_recovered(self, tasks: Sequence[Task]) -> None:
        """Not a transition: the manager logs one line with the count."""

    def task_changed(self, task: Task, previous: TaskState | None) -> None:
        if not transitions_log.isEnabledFor(logging.INFO):
            return
        transitions_log.handle(_transition_record(task, previous))


# A record of the transition log, but for the fields made per line. Logger.makeRecord costs three times as much:
# it looks up file names, the process and its name for every line, and a busy server logs three lines per task
# under the engine's lock. (Like Logger.handle, this bypasses logging.setLogRecordFactory.)
_RECORD_TEMPLATE = logging.LogRecord(transitions_log.name, logging.INFO, __file__, 0, "", None, None).__dict__.copy()
_TRANSITION_MESSAGE = "task %s (%s) %s -> %s%s"
# Set on a record whose args nothing will change, so a handler need not format its message at once.
IMMUTABLE_ARGS = "_immutable_args"
# What relativeCreated counts from, as in Logger.makeRecord: a float of seconds before Python 3.13, ns since.
_started = logging._startTime  # type: ignore[attr-defined]
_LOGGING_STARTED_NS = _started if isinstance(_started, int) else int(_started * 1e9)


def _transition_record(task: Task, previous: TaskState | None) -> logging.LogRecord:
    error = task.error if task.state.is_terminal else None
    state = task.state.value
    before = previous.value if previous else None
    record = logging.LogRecord.__new__(logging.LogRecord)
    fields = record.__dict__
    fields.update(_RECORD_TEMPLATE)
    now = time.time_ns()
    fields["created"] = now / 1e9
    fields["msecs"] = (now % 1_000_000_000) // 1_000_000 + 0.0
    fields["relativeCreated"] = (now - _LOGGING_STARTED_NS) / 1e6
    fields["thread"] = threading.get_ident()
    fields["threadName"] = threading.current_thread().name
    fields["msg"] = _TRANSITION_MESSAGE
    fields["args"] = (
        task.task_id,
        task.task_type,
        before or "submitted",
        state,
        f" ({error.type}: {error.message})" if error else "",
    )
    # Every argument is an immutable str: handlers may format the message later, on another thread.
    fields[IMMUTABLE_ARGS] = True
    fields["task_id"] = task.task_id
    fields["task_type"] = task.task_type
    fields["state"] = state
    fields["previous_state"] = before
    fields["attempt"] = task.attempt
    fields["error_type"] = task.error.type if task.error else None
    return record
