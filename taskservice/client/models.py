"""What the Python client returns: plain, frozen data (`Task`, `TaskEvent`, `Schedule`, ...), never protobuf."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class TaskState(enum.Enum):
    """Where a task is in its lifecycle."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    REVOKED = "REVOKED"
    TIMED_OUT = "TIMED_OUT"
    LOST = "LOST"
    # The server sent TASK_STATE_UNSPECIFIED or a state newer than this client; kept so that an
    # older client does not crash on a newer server.
    UNSPECIFIED = "UNSPECIFIED"

    @property
    def is_terminal(self) -> bool:
        """True for states a task never leaves: SUCCESS, FAILURE, REVOKED, TIMED_OUT, LOST."""
        return self in _TERMINAL_STATES


_TERMINAL_STATES = frozenset(
    {TaskState.SUCCESS, TaskState.FAILURE, TaskState.REVOKED, TaskState.TIMED_OUT, TaskState.LOST}
)


@dataclass(frozen=True)
class Progress:
    """What a handler last reported."""

    percent: float = 0.0
    message: str = ""
    current: int = 0
    total: int = 0
    updated_at: datetime | None = None


@dataclass(frozen=True)
class TaskError:
    """Why a task did not succeed: an exception class name or a reason code such as TimeLimitExceeded."""

    type: str
    message: str = ""
    traceback: str = ""


@dataclass(frozen=True)
class Task:
    """One submitted task. Times are aware UTC datetimes (None until they happen); time_limit is seconds."""

    task_id: str
    task_type: str
    args: dict[str, Any] = field(default_factory=dict)
    state: TaskState = TaskState.UNSPECIFIED
    progress: Progress = field(default_factory=Progress)
    result: Any = None
    error: TaskError | None = None
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    time_limit: float | None = None
    priority: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    attempt: int = 0
    # A PENDING task is not run before this (submitted to run later, or waiting for a retry); else None.
    scheduled_at: datetime | None = None
    # How long it is kept once ended, when submitted with its own (seconds; 0: for ever); None: the server's.
    retention: float | None = None
    # The tasks it was submitted to run after.
    after: tuple[str, ...] = ()
    # What holds a PENDING task back: the limits whose group is full, the dependencies not met yet.
    waiting_for_limits: tuple[str, ...] = ()
    waiting_for_tasks: tuple[str, ...] = ()
    # The task whose handler submitted it (ctx.submit), else empty; detached: its parent's Stop leaves it running.
    parent_id: str = ""
    detached: bool = False
    # The message it was read from (taskctl --json prints it as the HTTP API's canonical JSON); None when made here.
    wire: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class StopCount:
    """What stop_tasks() did: PENDING tasks revoked at once, RUNNING ones asked to stop."""

    revoked: int
    stopping: int


@dataclass(frozen=True)
class TaskEvent:
    """One event of a watch: a state change (with the full task) or a progress update (task is None)."""

    task_id: str
    sequence: int
    state: TaskState
    progress: Progress
    time: datetime | None
    task: Task | None = None
    # The message it was read from (taskctl --json prints it as the HTTP API's canonical JSON); None when made here.
    wire: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class TaskPage:
    """One page of ListTasks, newest first; next_page_token is empty on the last page."""

    tasks: list[Task]
    next_page_token: str


@dataclass(frozen=True)
class Schedule:
    """A task submitted again and again: on `cron` (in `time_zone`) or every `interval` seconds. Each firing's task
    id is `<schedule_id>:<due time, UTC>`."""

    schedule_id: str
    task_type: str
    args: dict[str, Any] = field(default_factory=dict)
    cron: str = ""
    time_zone: str = ""
    interval: float | None = None
    # What to do about due times missed while no server ran: "SKIP", "ONCE" or "ALL".
    catch_up: str = "ONCE"
    paused: bool = False
    next_due: datetime | None = None
    created_at: datetime | None = None
    last_due: datetime | None = None
    last_task_id: str = ""
    last_error: str = ""
    time_limit: float | None = None
    priority: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    retention: float | None = None
    # Its next due times, next_due first (five; none while paused).
    upcoming: tuple[datetime, ...] = ()
    # The message it was read from (taskctl --json prints it as the HTTP API's canonical JSON); None when made here.
    wire: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class TaskArgInfo:
    """One argument of a task type: its kind of value (string, integer, number, boolean, array, object, any),
    whether it is required, the data-root role of a path (input, output, directory), its choices and other checks."""

    name: str
    kind: str
    required: bool
    path_role: str = ""
    choices: list[Any] = field(default_factory=list)
    rule: str = ""
    # What the handler takes when the arg is left out; has_default False for a required arg (default None then).
    default: Any = None
    has_default: bool = False
    # What the handler's docstring says of it ("" when it says nothing).
    description: str = ""


@dataclass(frozen=True)
class TaskTypeInfo:
    """A task type the server runs, and what it takes."""

    name: str
    description: str
    args: list[TaskArgInfo]
    accepts_extra_args: bool
    rerun_on_restart: bool
    # The servers on the server's database that claim tasks of this type, by name.
    nodes: list[str] = field(default_factory=list)
    # The message it was read from (taskctl --json prints it as the HTTP API's canonical JSON); None when made here.
    wire: Any = field(default=None, compare=False, repr=False)


# A module-level name: inside the clients, `list` is their method.
TaskTypes = list[TaskTypeInfo]


@dataclass(frozen=True)
class ScheduleResult:
    schedule: Schedule
    # False when the same definition was there already.
    created: bool


@dataclass(frozen=True)
class SchedulePage:
    """One page of ListSchedules, in id order; next_page_token is empty on the last page."""

    schedules: list[Schedule]
    next_page_token: str


@dataclass(frozen=True)
class LogChunk:
    """Bytes of a task's log; `offset` is where data[0] sits in the whole log (resume at offset + len(data))."""

    task_id: str
    offset: int
    data: bytes


@dataclass(frozen=True)
class SubmitResult:
    """The submitted task; created is False when an identical request with this task_id existed."""

    task: Task
    created: bool


@dataclass(frozen=True)
class TaskCount:
    task_type: str
    state: TaskState
    count: int


@dataclass(frozen=True)
class MinuteCounts:
    """One minute: tasks whose latest attempt started in it, and tasks that ended in it (failed: FAILURE, TIMED_OUT,
    LOST)."""

    start: datetime | None
    started: int
    succeeded: int
    failed: int


@dataclass(frozen=True)
class HistoryEntry:
    """A moment of a task's stored life (GetTaskHistory): a state change, or a sample of its progress (`progress`
    set; None for a state change) each time a run passed another tenth of the way."""

    time: datetime | None
    state: TaskState
    attempt: int
    progress: Progress | None = None


@dataclass(frozen=True)
class LimitCount:
    """A limit's tasks: running, and waiting in the groups it holds back."""

    limit_id: str
    running: int
    waiting: int


@dataclass(frozen=True)
class Stats:
    """GetStats: tasks by type and state, the last 60 minutes (oldest first), and how long the oldest task that could
    run has waited (seconds; None when none waits)."""

    counts: list[TaskCount]
    minutes: list[MinuteCounts]
    oldest_runnable_age: float | None
    time: datetime | None
    limits: list[LimitCount] = field(default_factory=list)
    # The message it was read from (taskctl --json prints it as the HTTP API's canonical JSON).
    wire: Any = field(default=None, compare=False, repr=False)

    def by_state(self) -> dict[TaskState, int]:
        """How many tasks are in each state, every type together."""
        totals: dict[TaskState, int] = {}
        for count in self.counts:
            totals[count.state] = totals.get(count.state, 0) + count.count
        return totals


@dataclass(frozen=True)
class Node:
    """A server (an engine process) of the database, as it last said: what it claims, its worker threads, how many
    were busy, and how many handlers it abandoned after a stop still run (threads it cannot end)."""

    node: str
    task_types: tuple[str, ...]
    only_labels: dict[str, str]
    started_at: datetime | None
    last_seen: datetime | None
    workers: int
    busy: int
    abandoned: int = 0
    # The message it was read from (taskctl --json prints it as the HTTP API's canonical JSON).
    wire: Any = field(default=None, compare=False, repr=False)


# A module-level name: inside the clients, `list` is their method.
Nodes = list[Node]
History = list[HistoryEntry]
