"""The domain model: tasks, their states, progress and errors, as plain dataclasses."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

from taskservice.core.model.limits import LimitSpec


class TaskState(enum.Enum):
    """Where a task is in its lifecycle (docs/contract.md)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    REVOKED = "REVOKED"
    TIMED_OUT = "TIMED_OUT"
    LOST = "LOST"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {TaskState.SUCCESS, TaskState.FAILURE, TaskState.REVOKED, TaskState.TIMED_OUT, TaskState.LOST}
)

# The transitions docs/contract.md allows; anything else is a bug in the engine.
ALLOWED_TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    TaskState.PENDING: frozenset({TaskState.RUNNING, TaskState.REVOKED}),
    TaskState.RUNNING: frozenset(
        {
            TaskState.STOPPING,
            TaskState.SUCCESS,
            TaskState.FAILURE,
            TaskState.REVOKED,
            TaskState.TIMED_OUT,
            TaskState.LOST,
            TaskState.PENDING,  # re-queued after a crash when its type allows a re-run
        }
    ),
    TaskState.STOPPING: frozenset({TaskState.REVOKED, TaskState.TIMED_OUT, TaskState.LOST, TaskState.PENDING}),
}


class ErrorType:
    """Reason codes used as TaskError.type when no exception class names the cause."""

    TIME_LIMIT_EXCEEDED = "TimeLimitExceeded"
    REVOKED = "Revoked"
    SERVER_RESTARTED = "ServerRestarted"
    # A planned shutdown (SIGTERM) stopped the task when the drain ended; not a crash.
    SERVER_SHUTDOWN = "ServerShutdown"
    UNKNOWN_TASK_TYPE = "UnknownTaskType"
    RESULT_NOT_JSON = "ResultNotJSON"
    INVALID_PATH = "InvalidPath"
    OUTPUT_ERROR = "OutputError"
    # Something around the handler failed (a bug of the server's, or the system under it); the worker lives on.
    SERVER_ERROR = "ServerError"
    # A task it was submitted to run after ended other than SUCCESS: it never runs.
    DEPENDENCY_FAILED = "DependencyFailed"


@dataclass(slots=True)
class Progress:
    """What a handler last reported. percent is 0-100; current/total count units such as bytes."""

    percent: float = 0.0
    message: str = ""
    current: int = 0
    total: int = 0
    updated_at: float | None = None


@dataclass(slots=True, frozen=True)
class TaskError:
    type: str
    message: str
    traceback: str = ""


@dataclass(frozen=True, slots=True)
class WaitingFor:
    """What holds a PENDING task back, besides a free worker: limits whose group is full, unmet dependencies."""

    limit_ids: tuple[str, ...] = ()
    task_ids: tuple[str, ...] = ()


@dataclass(slots=True)
class Task:
    """One submitted task. Times are Unix seconds (float); None until they happen."""

    task_id: str
    task_type: str
    args: dict[str, Any]
    state: TaskState
    submitted_at: float
    priority: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    time_limit: float | None = None
    progress: Progress = field(default_factory=Progress)
    result: Any = None
    error: TaskError | None = None
    started_at: float | None = None
    ended_at: float | None = None
    attempt: int = 0
    # Submission order, assigned by the board: FIFO within a priority, newest-first listing, paging.
    submit_order: int = 0
    # The sequence number of the task's latest WatchProgress event (events of one task only grow).
    event_sequence: int = 0
    # Fingerprint of the Submit request, so a retried Submit with the same task_id can be recognised.
    request_digest: str = ""
    # A PENDING task is not claimed before this Unix time (a retry's backoff); None: at once.
    run_after: float | None = None
    # How long it is kept once ended (seconds): None, the server's --retention; 0, for ever.
    retention: float | None = None
    # Tasks that must succeed before this one runs (Submit's `after`), as submitted.
    after: tuple[str, ...] = ()
    # The trace context of the call that submitted it (propagation headers; empty when tracing was off): each
    # attempt's spans join that trace (telemetry/runs.py).
    trace_context: dict[str, str] = field(default_factory=dict)
    # The task whose handler submitted it (ctx.submit), else empty; `detached`: a Stop of that task leaves it be.
    parent_id: str = ""
    detached: bool = False

    def copy(self) -> Task:
        """A snapshot that later changes to this task do not reach.

        Spelled out rather than dataclasses.replace(): it runs for every event and store write, and this is
        several times faster. Args and result are never mutated in place, so they are shared.
        """
        p = self.progress
        return Task(
            self.task_id,
            self.task_type,
            self.args,
            self.state,
            self.submitted_at,
            self.priority,
            dict(self.labels),
            self.time_limit,
            Progress(p.percent, p.message, p.current, p.total, p.updated_at),
            self.result,
            self.error,
            self.started_at,
            self.ended_at,
            self.attempt,
            self.submit_order,
            self.event_sequence,
            self.request_digest,
            self.run_after,
            self.retention,
            self.after,
            self.trace_context,
            self.parent_id,
            self.detached,
        )


@dataclass(slots=True, frozen=True)
class TaskEvent:
    """One WatchProgress event: a state change (task is set) or a progress update (task is None)."""

    task_id: str
    sequence: int
    state: TaskState
    progress: Progress
    time: float
    task: Task | None = None

    @property
    def is_state_change(self) -> bool:
        return self.task is not None

    @property
    def is_terminal(self) -> bool:
        return self.state.is_terminal and self.task is not None


@dataclass(slots=True, frozen=True)
class SubmitOutcome:
    task: Task
    created: bool


@dataclass(slots=True, frozen=True)
class TaskFilter:
    """ListTasks filters; empty means no filter."""

    states: frozenset[TaskState] = frozenset()
    task_type: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    # Only PENDING tasks with a run_after (submitted to run later, or waiting for a retry).
    scheduled: bool = False
    # Only PENDING tasks this limit holds back; the board resolves it to `held_back`, the limit and its full
    # groups (None: all of them) as its last claim found them.
    waiting_for_limit: str = ""
    held_back: tuple[LimitSpec, frozenset[str] | None] | None = None
    # Only the children of this task (submitted by its handler).
    parent_id: str = ""
    # Only tasks whose id starts with it, or whose args or error (type, message) hold it, ASCII case aside.
    search: str = ""
    # Only tasks submitted in [submitted_after, submitted_before).
    submitted_after: float | None = None
    submitted_before: float | None = None
    # Only the tasks that run after this one (it is in their `after`).
    depends_on: str = ""

    def matches(self, task: Task) -> bool:
        """Whether `task` passes the filter, as the boards' queries decide it."""
        if self.states and task.state not in self.states:
            return False
        if self.task_type and task.task_type != self.task_type:
            return False
        if self.parent_id and task.parent_id != self.parent_id:
            return False
        if self.depends_on and self.depends_on not in task.after:
            return False
        if self.submitted_after is not None and task.submitted_at < self.submitted_after:
            return False
        if self.submitted_before is not None and task.submitted_at >= self.submitted_before:
            return False
        if self.search and not _found_in(self.search, task):
            return False
        if self.scheduled and (task.state is not TaskState.PENDING or task.run_after is None):
            return False
        if self.waiting_for_limit and not self._held_back(task):
            return False
        return all(task.labels.get(key) == value for key, value in self.labels)

    def _held_back(self, task: Task) -> bool:
        """PENDING, and in a group the limit holds back (once the board resolved it; a task run here is not)."""
        if task.state is not TaskState.PENDING:
            return False
        if self.held_back is None:
            return True
        spec, groups = self.held_back
        return spec.covers(task.task_type, task.labels) and (groups is None or spec.group_of(task.labels) in groups)


@dataclass(slots=True, frozen=True)
class StopCount:
    """What a bulk stop did: PENDING tasks revoked at once, RUNNING ones asked to stop."""

    revoked: int = 0
    stopping: int = 0


@dataclass(frozen=True, slots=True)
class SubmitSpec:
    """One Submit request, as the engine takes it."""

    task_type: str
    args: dict[str, Any] = field(default_factory=dict)
    task_id: str = ""  # empty: the server makes one
    time_limit: float | None = None
    priority: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    # Run later: at this Unix time, or after this many seconds (one of them at most).
    not_before: float | None = None
    delay: float | None = None
    # Kept this long once ended, instead of the server's retention (0: for ever).
    retention: float | None = None
    # Ids of tasks that must succeed first.
    after: tuple[str, ...] = ()
    # The submitting call's trace context (propagation headers), when tracing is on; not part of the fingerprint.
    trace_context: dict[str, str] = field(default_factory=dict)
    # Submitted by this task's handler (ctx.submit): its parent, and whether a Stop of the parent leaves it be.
    parent_id: str = ""
    detached: bool = False


def ascii_lower(text: str) -> str:
    """Lower case for ASCII letters only, as SQLite's lower() and instr() see text."""
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _found_in(search: str, task: Task) -> bool:
    """TaskFilter.search: the id's start, or anywhere in the args (as JSON) and the error."""
    if task.task_id.startswith(search):
        return True
    needle = ascii_lower(search)
    haystacks = [json.dumps(task.args, separators=(",", ":"))]  # as SQLite stores them
    if task.error is not None:
        haystacks += [task.error.type, task.error.message]
    return any(needle in ascii_lower(text) for text in haystacks)
