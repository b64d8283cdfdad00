"""The board: where tasks live, and the only place their state changes.

Every operation says what must be true for it to act (its precondition) and acts atomically; where two actors
could race (two nodes claiming, a late finish after a lease was lost, a Stop against a finish), it is a
conditional write that changes nothing when its precondition no longer holds, and says so. See
docs/architecture.md for how the engine uses it.

Writes that must be durable before anyone is told take a `then` callback: it is called exactly once, when the
write is durable (or failed), on a thread of the board's; never while the board holds a lock and never inline in
the caller's thread, so a caller may hold its own lock when it asks. Reads return at once.
"""

from __future__ import annotations

import abc
import builtins
import enum
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from taskservice.core.engine.write_health import WriteHealth
from taskservice.core.model.errors import StoreOpenError, TaskServiceError, WrongState
from taskservice.core.model.history import HistoryEntry
from taskservice.core.model.limits import Limit
from taskservice.core.model.listing import NEWEST_FIRST, ListPosition, TaskOrder
from taskservice.core.model.models import Progress, SubmitOutcome, Task, TaskFilter, TaskState, WaitingFor
from taskservice.core.model.nodes import NodeInfo
from taskservice.core.model.schedules import Schedule
from taskservice.core.model.stats import LimitCount, MinuteCounts, TaskCount

# Event sequences of tasks a reap takes from a lost owner jump by this much, so that they stay above any sequence
# a watcher saw before (the owner published progress that was never written).
REAP_SEQUENCE_GAP = 1 << 20

Answer = SubmitOutcome | TaskServiceError


class DatabaseUnreachable(StoreOpenError):
    """A shared database cannot be reached at start."""


@dataclass(frozen=True, slots=True)
class NewTask:
    """A checked submission: everything but what the board assigns (submission order, times, sequence)."""

    task_id: str
    task_type: str
    args: dict[str, Any]
    request_digest: str
    priority: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    time_limit: float | None = None
    # The server made the id (128 random bits): no task can have it already, so nothing needs looking up.
    fresh_id: bool = False
    # Run later: PENDING, and claimed no earlier than this Unix time.
    run_after: float | None = None
    # Kept this long once ended (seconds): None, the server's --retention; 0, for ever.
    retention: float | None = None
    # Ids of tasks that must succeed before this one is claimed (each must exist: InvalidRequest otherwise).
    after: tuple[str, ...] = ()
    # Bytes its args (as JSON) and labels take, as admission measured them (0: not measured), for --max-queue-bytes.
    size: int = 0
    # Its place in fair turns among tasks of its priority (board/sql/turns.py): set by the board at insertion.
    turn: float = 0.0
    # The submitting call's trace context (Task.trace_context).
    trace_context: dict[str, str] = field(default_factory=dict)
    # Task.parent_id and Task.detached.
    parent_id: str = ""
    detached: bool = False


@dataclass(frozen=True, slots=True)
class ClaimScope:
    """The PENDING tasks a node may claim: of `types` (None: any type) and carrying every one of `labels`."""

    types: frozenset[str] | None = None
    labels: tuple[tuple[str, str], ...] = ()


ANY_TASK = ClaimScope()


@dataclass(frozen=True, slots=True)
class Claim:
    """A task a node runs: RUNNING, owned by `node` for attempt `task.attempt`, leased until `lease_until`.

    The owner's later writes (finish, retry, stopping, progress) name the claim; they apply only while the task
    is still owned by this node for this attempt (a fenced write).
    """

    task: Task
    node: str
    lease_until: float

    @property
    def task_id(self) -> str:
        return self.task.task_id

    @property
    def attempt(self) -> int:
        return self.task.attempt


class ClaimBatch:
    """Claims taken together. A claim's RUNNING state may not be on disk yet: wait_durable() writes it."""

    def __init__(
        self,
        claims: list[Claim],
        durable: Callable[[str], BaseException | None] | None = None,
        started: Callable[[str], object] | None = None,
    ) -> None:
        self.claims = claims
        self._durable = durable
        self._started = started

    def started(self, task_id: str) -> None:
        """The handler of this batch's claim of `task_id` starts without waiting for durability: write its RUNNING
        state soon (a claim whose handler never started is never written RUNNING)."""
        if self._started is not None:
            self._started(task_id)

    def wait_durable(self, task_id: str) -> BaseException | None:
        """Block until the RUNNING state of this batch's claim of `task_id` is durable; the error if it could not
        be written."""
        return self._durable(task_id) if self._durable is not None else None


class StopEffect(enum.Enum):
    REVOKED = "revoked"  # it was PENDING: it never runs
    STOPPING = "stopping"  # it runs: its owner is told and stops it
    UNCHANGED = "unchanged"  # it ended already, or a stop is under way


@dataclass(frozen=True, slots=True)
class StopResult:
    effect: StopEffect
    task: Task


@dataclass(frozen=True, slots=True)
class Renewal:
    """What renew() found: the claims whose lease was lost (their handlers must stop, their ends are discarded)."""

    lost: list[Claim]


Then = Callable[[BaseException | None], None]
SubmitThen = Callable[[list[Answer]], None]
FencedThen = Callable[[bool, BaseException | None], None]  # applied?, error
FencedManyThen = Callable[[list[bool], BaseException | None], None]
StopThen = Callable[[StopResult | None, BaseException | None], None]
TaskThen = Callable[[Task | None, BaseException | None], None]
RetryThen = Callable[[tuple[Task, TaskState] | None, BaseException | None], None]  # (task, state it had), error

# The ends a task may be retried from by hand (not SUCCESS: its work is done; submit a new task to do it again).
RETRYABLE_STATES = frozenset({TaskState.FAILURE, TaskState.TIMED_OUT, TaskState.REVOKED, TaskState.LOST})


def retried(task: Task) -> Task:
    """`task`, ended, as a retry by hand makes it: PENDING again, as it was before its first claim, but for its
    attempt (the next claim counts up from it) and a sequence after its end."""
    pending = task.copy()
    pending.state = TaskState.PENDING
    pending.result = None
    pending.error = None
    pending.started_at = None
    pending.ended_at = None
    pending.run_after = None
    pending.progress = Progress()
    pending.event_sequence += 1
    return pending


def not_ended(task: Task) -> WrongState:
    return WrongState(f"task {task.task_id!r} is {task.state.value}: only an ended task can be deleted (stop it first)")


def not_retryable(task: Task) -> WrongState:
    return WrongState(
        f"task {task.task_id!r} is {task.state.value}: only a task that ended FAILURE, TIMED_OUT, REVOKED or LOST "
        "can be retried"
        + (" (it succeeded: submit a new task to do the work again)" if task.state is TaskState.SUCCESS else "")
    )


class Board(abc.ABC):
    """Where tasks live. Thread-safe. See the module docstring for how writes report back."""

    # One process owns this board's storage (the embedded SQLite file): it may run tasks of any type, and what a
    # previous process left running is reaped when it opens.
    exclusive: bool = False
    # Writes tell the other processes on this board at once (moved hints, see on_moved): their watchers need no poll.
    writes_wake_siblings: bool = False

    # ------------------------------------------------------------------ submission

    @abc.abstractmethod
    def submit(self, tasks: Sequence[NewTask], now: float, then: SubmitThen) -> None:
        """Insert each new task as PENDING, assigning its submission order; or, for an id already taken, answer
        the existing task (created=False) when its request digest is the same, TaskConflict when not. QueueFull
        past the queue limit. One answer per task, in order, once the new ones are durable."""

    # ------------------------------------------------------------------ running

    @abc.abstractmethod
    def claim(self, node: str, scope: ClaimScope, n: int, *, lease_until: float, now: float) -> ClaimBatch:
        """Up to n PENDING tasks within `scope` whose run_after has come, by priority then submission order: each
        becomes RUNNING, owned by `node`, attempt + 1, leased until `lease_until`."""

    @abc.abstractmethod
    def renew(self, node: str, claims: Sequence[Claim], lease_until: float) -> Renewal:
        """Extend the leases of `claims` that this node still owns; report the ones it lost."""

    @abc.abstractmethod
    def mark_stopping(self, claim: Claim, task: Task, then: FencedThen) -> None:
        """RUNNING -> STOPPING, by the owner (who assigns the event sequence): fenced on owner and attempt."""

    @abc.abstractmethod
    def finish_many(self, ends: Sequence[tuple[Claim, Task]], then: FencedManyThen) -> None:
        """The owner's ends of runs (each `final` terminal), written together: each applied only while its claim
        still owns the task. `then` hears one applied flag per end, in order."""

    def finish(self, claim: Claim, final: Task, then: FencedThen) -> None:
        """finish_many() of one end."""
        self.finish_many([(claim, final)], lambda applied, error: then(bool(applied and applied[0]), error))

    @abc.abstractmethod
    def retry_at(self, claim: Claim, task: Task, due: float, then: FencedThen) -> None:
        """The owner sends its task back to PENDING (`task`, with the error of the run that failed), to be claimed
        no earlier than `due`: a retry after backoff, or a shutdown of a type safe to re-run. Fenced."""

    @abc.abstractmethod
    def save_progress(self, updates: Sequence[tuple[Claim, Progress, int]]) -> None:
        """Latest progress and event sequence of running tasks, written soon, never taking a sequence backwards.
        Best effort: a crash may lose the last of it."""

    @abc.abstractmethod
    def request_stop(self, task_id: str, reason: str, now: float, then: StopThen) -> None:
        """PENDING -> REVOKED at once; RUNNING -> a stop its owner sees (StopEffect.STOPPING); anything else:
        unchanged. TaskNotFound (through `then`) for an unknown id."""

    @abc.abstractmethod
    def retry(self, task_id: str, now: float, then: RetryThen) -> None:
        """A task ended in one of RETRYABLE_STATES -> PENDING again (see retried()), durable before `then((task,
        the state it had), None)`; WrongState for any other state, TaskNotFound for an unknown id. Two racing
        retries make one."""

    @abc.abstractmethod
    def delete(self, task_id: str, then: TaskThen) -> None:
        """An ended task removed, durable before `then(the task as it was, None)`; WrongState for an unfinished
        one, TaskNotFound for an unknown id. Its logs are the caller's to remove."""

    @abc.abstractmethod
    def delete_ended(self, task_filter: TaskFilter, ended_before: float | None, limit: int) -> list[str]:
        """Up to `limit` ended tasks matching the filter (that ended before `ended_before`, if given), oldest end
        first, removed; durable when it returns. Their ids."""

    @abc.abstractmethod
    def expire(self, now: float, retention: float, limit: int) -> list[str]:
        """Up to `limit` ended tasks kept past their retention by `now` (their own, else `retention`; 0 keeps for
        ever), oldest end first, removed; durable when it returns. Their ids."""

    @abc.abstractmethod
    def reap(self, now: float, rerunnable: Collection[str]) -> list[tuple[Task, TaskState]]:
        """Tasks whose lease expired by `now`: LOST, or PENDING again for the `rerunnable` types. Durable when it
        returns; each changed task with the state it had."""

    # ------------------------------------------------------------------ reads

    @abc.abstractmethod
    def get(self, task_id: str) -> Task | None: ...

    def changed_since(self, known: dict[str, int]) -> list[tuple[Task, list[tuple[int, str]]]]:
        """Of the tasks in `known` (task id -> the newest event sequence a node showed of it), those that moved on,
        each with its recent state changes as (sequence, state): for the watchers on one server of tasks that
        another server runs. A board only one server uses has none to report."""
        return []

    def history(self, task_id: str) -> builtins.list[HistoryEntry] | None:
        """The task's state changes and progress samples as stored, oldest first; None when there is no such task."""
        task = self.get(task_id)
        return None if task is None else []

    def peek(self, task_id: str) -> Task | None:
        """The task when the board holds it in memory (no waiting on storage); None when a get() is needed."""
        return None

    @abc.abstractmethod
    def list(
        self, task_filter: TaskFilter, *, order: TaskOrder = NEWEST_FIRST, after: ListPosition | None, limit: int
    ) -> list[Task]:
        """Up to `limit` tasks matching the filter in `order`, from just past `after` (from the first when None)."""

    @abc.abstractmethod
    def queued(self) -> int:
        """How many tasks are PENDING (waiting to run, or for their retry)."""

    def queued_tasks(self) -> builtins.list[Task]:
        """The PENDING tasks, where the board can list them cheaply (for gauges counted at start); else none."""
        return []

    def stops_for(self, node: str) -> builtins.list[tuple[str, int, str]]:
        """Stops asked (request_stop) of tasks `node` runs, as (task id, attempt, reason); each is told once. The
        owner looks on a hint from on_stop() and at every poll, so a lost hint only delays a stop."""
        return []

    def next_due(self) -> float | None:
        """When the earliest delayed task becomes claimable, if the board knows; None: poll."""
        return None

    # ------------------------------------------------------------------ schedules

    @abc.abstractmethod
    def add_schedule(self, schedule: Schedule) -> tuple[Schedule, bool]:
        """Store `schedule` unless its id is taken; the schedule under its id then (this one, or the one that was
        there), and whether this call stored it. Durable when it returns."""

    @abc.abstractmethod
    def get_schedule(self, schedule_id: str) -> Schedule | None: ...

    @abc.abstractmethod
    def list_schedules(self, after_id: str, limit: int) -> builtins.list[Schedule]:
        """Schedules in id order, those with ids after `after_id` ("" : from the first)."""

    @abc.abstractmethod
    def save_schedule(self, schedule: Schedule, expected: Schedule) -> bool:
        """Replace the state of a schedule (paused, next due, last firing) while it is still as `expected` left it
        (its next due time and paused flag): a conditional write, so that of two servers firing one due time, or a
        pause racing a firing, one acts. False when it changed meanwhile or is gone. Durable when it returns."""

    @abc.abstractmethod
    def remove_schedule(self, schedule_id: str) -> Schedule | None:
        """The schedule removed, or None when there was none. Durable when it returns."""

    @abc.abstractmethod
    def due_schedules(self, now: float, limit: int) -> builtins.list[Schedule]:
        """Schedules not paused whose next due time has come by `now`, earliest first."""

    def next_schedule_due(self) -> float | None:
        """The earliest next due time of the schedules not paused, when the board knows every change of them (no
        other server adds any); None: look every poll."""
        return None

    def waiting_for(self, tasks: Sequence[Task]) -> dict[str, WaitingFor]:
        """What holds each PENDING task of `tasks` back, by id (those held by nothing left out): the limits its group
        was full in at this server's last claim, and its dependencies not met yet."""
        return {}

    def held_back_counts(self) -> dict[str, int]:
        """Per limit holding groups back at this server's last claim, the PENDING tasks of those groups (metrics)."""
        return {}

    def oldest_ready(self, now: float) -> float | None:
        """Since when the longest-waiting task that could start now has waited (Unix time), or None (metrics)."""
        return None

    def task_counts(self) -> builtins.list[TaskCount]:
        """How many tasks of each type are in each state now, the pairs that have any (GetStats)."""
        return []

    def minute_counts(self, now: float) -> builtins.list[MinuteCounts]:
        """Starts and ends in each of the last minutes up to now's, oldest first (GetStats)."""
        return []

    def limit_counts(self) -> builtins.list[LimitCount]:
        """Each limit's running tasks and those it holds back (GetStats)."""
        return []

    # ------------------------------------------------------------------ servers

    def announce(self, node: NodeInfo) -> None:  # noqa: B027 - optional
        """Say what this server claims (written soon, best effort): every server of the database can tell."""

    def nodes(self, seen_after: float) -> builtins.list[NodeInfo]:
        """The servers that said what they claim after `seen_after`."""
        return []

    def retire(self, name: str) -> None:  # noqa: B027 - optional
        """This server stops: its row goes (written soon, best effort)."""

    # ------------------------------------------------------------------ limits

    @abc.abstractmethod
    def add_limit(self, limit: Limit) -> tuple[Limit, bool]:
        """Store `limit` unless its id is taken; the limit under its id then, and whether this call stored it."""

    @abc.abstractmethod
    def get_limit(self, limit_id: str) -> Limit | None: ...

    @abc.abstractmethod
    def list_limits(self, after_id: str, limit: int) -> builtins.list[Limit]:
        """Limits in id order, those with ids after `after_id` ("": from the first)."""

    @abc.abstractmethod
    def save_limit(self, limit: Limit) -> bool:
        """Replace a limit's definition; False when it is gone. The next claim of every server obeys it."""

    @abc.abstractmethod
    def remove_limit(self, limit_id: str) -> Limit | None:
        """The limit removed, or None when there was none."""

    # ------------------------------------------------------------------ life

    def task_logs(self) -> Any:
        """Where task logs live when every server must read them (a shared database); None: in local files."""
        return None

    def on_work(self, listener: Callable[[], None]) -> None:  # noqa: B027 - optional
        """Call `listener()` (quick, any thread) when tasks may have become claimable."""

    def on_moved(self, listener: Callable[[], None]) -> None:  # noqa: B027 - optional
        """Call `listener()` (quick, any thread) when a task run by another process of this server moved on (its
        progress, its state): its watchers here look now rather than at their next poll."""

    def on_stop(self, listener: Callable[[], None]) -> None:  # noqa: B027 - optional
        """Call `listener()` (quick, any thread) when a stop was asked of a running task: its owner looks now."""

    def on_ended(self, listener: Callable[[builtins.list[tuple[Task, TaskState]]], None]) -> None:  # noqa: B027 - optional
        """Call `listener([(task, the state it had), ...])` (any thread) once tasks the board ended by itself are
        durable: dependents of a task that ended other than SUCCESS (see dependencies.py)."""

    def on_displaced(self, listener: Callable[[builtins.list[tuple[str, str]]], None]) -> None:  # noqa: B027 - optional
        """Call `listener([(task id, reason), ...])` (any thread) once a Submit under a STOP_OLDEST limit is durable:
        the older tasks of its group it displaces, to stop as a Stop would (on_full.py)."""

    def on_health(self, listener: Callable[[bool], None]) -> None:  # noqa: B027 - optional
        """Call `listener(False)` when the storage refuses writes, `listener(True)` once it takes them again."""

    @property
    def writable(self) -> bool:
        return True

    def commits(self) -> int:
        """Transactions committed so far (a metric)."""
        return 0

    def close(self) -> None:  # noqa: B027 - optional
        """Flush what is pending and release the storage; safe to call twice."""


class _Writer(Protocol):
    health: WriteHealth
    commits: int


class OneWriter:
    """What a board whose writes all pass through one writer thread says of them."""

    _writer: _Writer

    def on_health(self, listener: Callable[[bool], None]) -> None:
        self._writer.health.listen(listener)

    @property
    def writable(self) -> bool:
        return self._writer.health.healthy

    def commits(self) -> int:
        return self._writer.commits
