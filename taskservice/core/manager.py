"""WorkerManager: bounded worker threads, a priority queue, time limits, stop, drain.

Locking: one lock (`_lock`) guards every live task, the queue and the runs. Events of a task are
published under it, so watchers see them in sequence order. Writes go to the StoreWriter (group
commit); nothing waits for the disk while holding the lock.

Durability rules:
- Submit answers after its row is committed.
- A worker starts the handler only after RUNNING is committed (so a crash makes the task LOST, not
  silently re-run).
- A terminal state is published to watchers and readers only after it is committed, so nobody sees an
  end that a crash could undo.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import math
import random
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from taskservice.core.clock import Clock, SystemClock
from taskservice.core.errors import (
    InvalidRequest,
    QueueFull,
    SequenceOutOfRange,
    ShuttingDown,
    StoreUnavailable,
    TaskConflict,
    TaskNotFound,
    TaskServiceError,
)
from taskservice.core.events import EventHub, Watcher
from taskservice.core.execution import HandlerContext, Outcome, check_paths, execute_task, printable
from taskservice.core.logs import TaskLogs
from taskservice.core.models import (
    ErrorType,
    Progress,
    SubmitOutcome,
    Task,
    TaskError,
    TaskEvent,
    TaskFilter,
    TaskPage,
    TaskState,
)
from taskservice.core.observe import TaskListener, TransitionLog
from taskservice.core.paths import DataRoot
from taskservice.core.registry import TaskRegistry, check_json_args
from taskservice.core.store.base import InsertTask, SaveProgress, SaveTask, ShiftSequences, TaskStore, Write
from taskservice.core.store.writer import Done, StoreWriter, ignore
from taskservice.core.throttle import ThrottledLog
from taskservice.core.validation import (
    MAX_STOP_REASON,
    check_labels,
    check_task_id,
    check_time_limit,
    new_task_id,
    request_digest,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

# Event sequences of tasks recovered after a restart jump by this much, so they stay above any
# sequence a watcher saw before the crash (progress is persisted at a throttled rate).
RESTART_SEQUENCE_GAP = 1 << 20
# Progress messages longer than this are cut; they go to every watcher.
MAX_PROGRESS_MESSAGE = 1024
# Progress counts travel as int64 (protobuf) and are stored as SQLite INTEGER.
INT64_MAX = 2**63 - 1
# How long to wait between tries when the disk refuses a terminal state.
FINAL_WRITE_RETRY_SECONDS = 1.0
# At shutdown, how long past the stop grace to wait for the watchdog to abandon handlers that ignore the stop.
SHUTDOWN_ABANDON_MARGIN = 0.5


@dataclass(frozen=True, slots=True)
class SubmitSpec:
    """One Submit request, as the engine takes it."""

    task_type: str
    args: dict[str, Any] = field(default_factory=dict)
    task_id: str = ""  # empty: the server makes one
    time_limit: float | None = None
    priority: int = 0
    labels: dict[str, str] = field(default_factory=dict)


Answer = SubmitOutcome | TaskServiceError


def _settle(future: Future[T], outcome: T | BaseException) -> None:
    """Resolve a caller's Future, unless the caller cancelled it (an RPC whose client gave up)."""
    with contextlib.suppress(InvalidStateError):
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def _ahead(task_id: str, after_sequence: int, latest: int) -> SequenceOutOfRange:
    return SequenceOutOfRange(
        f"after_sequence {after_sequence} is ahead of task {task_id!r}'s latest event ({latest}); watch again from 0"
    )


def _as_answer(error: BaseException) -> TaskServiceError:
    return error if isinstance(error, TaskServiceError) else StoreUnavailable(str(error))


class _Checked(NamedTuple):
    """A request as _check() found it: args normalised, the time limit the task gets, the fingerprint."""

    args: dict[str, Any]
    time_limit: float | None
    digest: str


@dataclass(eq=False, slots=True)
class _Submission:
    """A new task whose row is not committed yet."""

    task: Task
    # Made only when a retried Submit with the same id arrives meanwhile: it waits on this.
    joined: Future[SubmitOutcome] | None = None


class _Batch:
    """The answers of one submit_many(), in request order; `future` resolves once the last one is in."""

    def __init__(self, answers: list[Answer | None], missing: int) -> None:
        self._answers = answers
        self._missing = missing
        self._lock = threading.Lock()
        self.future: Future[list[Answer]] = Future()
        if missing == 0:
            self.future.set_result(answers)  # type: ignore[arg-type]

    def fill(self, answers: Sequence[tuple[int, Answer]]) -> None:
        for index, answer in answers:
            self._answers[index] = answer
        with self._lock:
            self._missing -= len(answers)
            complete = self._missing == 0
        if complete:
            _settle(self.future, self._answers)  # type: ignore[arg-type]

    def follow(self, index: int, future: Future[SubmitOutcome]) -> None:
        """Fill `index` with the outcome of another Submit of the same task once it is known."""

        def done(source: Future[SubmitOutcome]) -> None:
            error = source.exception()
            self.fill([(index, source.result() if error is None else _as_answer(error))])

        future.add_done_callback(done)


@dataclass(frozen=True, slots=True)
class ManagerConfig:
    """Tunables; each is a server flag and a TASKSERVICE_* environment variable."""

    workers: int = 4
    max_queue: int = 100_000
    # Seconds; None means tasks without their own limit run unbounded.
    default_time_limit: float | None = None
    # Seconds a handler gets to return after a stop or its time limit before it is abandoned.
    stop_grace: float = 5.0


@dataclass(eq=False, slots=True)
class _Worker:
    name: str
    # Set when its handler was abandoned: the thread ends as soon as the handler returns.
    retired: bool = False
    thread: threading.Thread | None = None


@dataclass(eq=False, slots=True)
class _Run:
    """One execution of a task by a worker."""

    task: Task
    worker: _Worker
    stop_event: threading.Event = field(default_factory=threading.Event)
    # Monotonic time at which the time limit passes.
    deadline: float | None = None
    # Monotonic time after which a handler that has not returned is abandoned.
    grace_deadline: float | None = None
    stop_state: TaskState | None = None
    stop_error: TaskError | None = None
    finalized: bool = False


@dataclass(frozen=True, slots=True)
class ManagerStats:
    workers: int
    busy_workers: int
    abandoned_handlers: int
    queued: int
    live: int
    watchers: int
    store_commits: int


class WorkerManager:
    """Runs tasks from a durable store on a fixed number of worker threads."""

    def __init__(
        self,
        store: TaskStore,
        registry: TaskRegistry,
        *,
        config: ManagerConfig | None = None,
        clock: Clock | None = None,
        listeners: Sequence[TaskListener] = (),
        data_root: DataRoot | None = None,
        logs: TaskLogs | None = None,
    ) -> None:
        self.config = config or ManagerConfig()
        if self.config.workers < 1:
            raise ValueError("workers must be at least 1")
        self._store = store
        self._registry = registry
        self._clock = clock or SystemClock()
        self._listeners = (TransitionLog(), *listeners)
        self._data_root = data_root
        self.logs = logs
        if logs is not None:
            logs.protect(lambda task_id: task_id in self._live)
        # Failed tasks waiting out their retry backoff: (monotonic due time, seq, task_id).
        self._delayed: list[tuple[float, int, str]] = []
        self._rng = random.Random()
        self.events = EventHub()
        self._lock = threading.Lock()
        self._work_available = threading.Condition(self._lock)
        self._watchdog_wake = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._live: dict[str, Task] = {}
        # Accepted but not committed yet: a retried Submit with the same id joins the first.
        self._submitting: dict[str, _Submission] = {}
        self._revoking: set[str] = set()
        self._queue: list[tuple[int, int, str]] = []
        self._queued = 0
        self._runs: dict[str, _Run] = {}
        self._workers: list[_Worker] = []
        self._dirty_progress: dict[str, Task] = {}
        # Terminal states whose commit is done, waiting for the writer's after-commit call to show them.
        self._committed_finals: deque[Task] = deque()
        self._next_seq = 1
        self._accepting = False
        self._dispatching = False
        self._discard_outcomes = False
        self._closed = False
        self._writer: StoreWriter | None = None
        self._watchdog: threading.Thread | None = None
        self._health_listeners: list[Callable[[bool], None]] = []
        self._refused_finals = ThrottledLog(log)

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Recover what the last run left, then start the writer, the workers and the watchdog."""
        self._recover()
        self._writer = StoreWriter(
            self._store,
            progress_source=self._collect_progress,
            after_commit=self._show_committed,
            on_health=self._store_health_changed,
        )
        with self._lock:
            self._accepting = True
            self._dispatching = True
            for _ in range(self.config.workers):
                self._spawn_worker()
        self._watchdog = threading.Thread(target=self._watchdog_loop, name="taskservice-watchdog", daemon=True)
        self._watchdog.start()

    def _recover(self) -> None:
        now = self._clock.time()
        unfinished = self._store.load_unfinished()
        self._next_seq = self._store.max_seq() + 1
        writes: list[Write] = [ShiftSequences(RESTART_SEQUENCE_GAP)]
        requeued: list[Task] = []
        changed: list[tuple[Task, TaskState]] = []
        still_queued: list[Task] = []
        for task in unfinished:
            task.sequence += RESTART_SEQUENCE_GAP
            if task.state is TaskState.PENDING:
                still_queued.append(task)
            else:
                changed.append((task, task.state))
                writes.append(SaveTask(task))  # not a copy: nothing changes it before the writes below are done
                task_type = self._registry.get(task.task_type)
                if task_type is not None and task_type.rerun_on_restart:
                    task.state = TaskState.PENDING
                else:
                    task.state = TaskState.LOST
                    task.ended_at = now
                    task.error = TaskError(
                        ErrorType.SERVER_RESTARTED,
                        f"the server stopped while attempt {task.attempt} of this task was running, "
                        f"and task type {task.task_type!r} is not re-run after a crash",
                    )
            if task.state is TaskState.PENDING:
                requeued.append(task)
        self._store.apply(writes)
        with self._lock:
            for listener in self._listeners:
                recovered = getattr(listener, "tasks_recovered", None)  # optional: older listeners lack it
                try:
                    if recovered is not None:
                        recovered(still_queued)
                except Exception:
                    log.exception("task listener %r failed", listener)
            for task, previous in changed:
                self._notify(task, previous)
            for task in requeued:
                self._make_live(task)
        if unfinished:
            lost = sum(1 for task, _ in changed if task.state is TaskState.LOST)
            log.info("recovered %d queued tasks; %d that were running are LOST", len(requeued), lost)

    def begin_shutdown(self) -> None:
        """Refuse new Submits and start no more tasks; running ones go on. Safe to call twice."""
        with self._lock:
            self._accepting = False
            self._dispatching = False
            self._work_available.notify_all()

    def drain(self, timeout: float, *, until_shown: bool = False) -> bool:
        """Wait up to `timeout` seconds for running tasks to end; True when none is left.

        until_shown=True waits until their ends are also committed and shown to watchers, not only reached.
        """
        deadline = self._clock.monotonic() + timeout
        with self._lock:
            while self._runs if until_shown else self._active_runs():
                remaining = deadline - self._clock.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(min(remaining, 0.5))
            return True

    def stop_running(self, why: str = "the server shut down while this task ran") -> bool:
        """End a drain: stop every running task as Stop would, and wait out the stop grace (after which the
        watchdog abandons handlers that ignore it). True when every task ended.

        A planned shutdown is not a crash: a task ends REVOKED with error type ServerShutdown, or goes back to
        PENDING when its type is safe to re-run (the next start runs it). Only a real crash leaves LOST.
        """
        self.begin_shutdown()
        with self._lock:
            for run in list(self._runs.values()):
                kind = self._registry.get(run.task.task_type)
                if kind is not None and kind.rerun_on_restart:
                    state, then = TaskState.PENDING, "it runs again from the start when the server starts"
                else:
                    state, then = TaskState.REVOKED, "submit it again to run it"
                self._request_stop(run, state, TaskError(ErrorType.SERVER_SHUTDOWN, f"{why}; {then}"))
        # Until shown: watchers must get each end before the server closes their streams.
        return self.drain(self.config.stop_grace + SHUTDOWN_ABANDON_MARGIN, until_shown=True)

    def close(self, drain_timeout: float = 0.0) -> None:
        """Ordered, bounded shutdown: stop accepting, drain, stop what is left (stop_running), flush the store.

        Safe to call twice. Does not close the store: its owner does.
        """
        self.begin_shutdown()
        if drain_timeout > 0:
            self.drain(drain_timeout)
        if not self._closed:
            self.stop_running()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._discard_outcomes = True
            for run in self._runs.values():
                run.stop_event.set()
            workers = list(self._workers)
            self._work_available.notify_all()
            self._watchdog_wake.notify_all()
        for worker in workers:
            if worker.thread is not None and worker.thread is not threading.current_thread():
                worker.thread.join(timeout=1.0)
        if self._watchdog is not None:
            self._watchdog.join(timeout=1.0)
        if self._writer is not None:
            self._writer.close()

    @property
    def accepting(self) -> bool:
        return self._accepting

    def on_store_health(self, listener: Callable[[bool], None]) -> None:
        """Call `listener(False)` when the store stops taking writes and `listener(True)` once it takes them
        again; on the store writer's thread, so it must be quick."""
        self._health_listeners.append(listener)

    @property
    def store_writable(self) -> bool:
        """False from a refused write until a write succeeds again."""
        return self._writer.healthy if self._writer is not None else True

    def _store_health_changed(self, healthy: bool) -> None:
        for listener in self._health_listeners:
            listener(healthy)

    # ----------------------------------------------------------------- submit

    def submit(
        self,
        task_type: str,
        args: dict[str, Any] | None = None,
        *,
        task_id: str | None = None,
        time_limit: float | None = None,
        priority: int = 0,
        labels: dict[str, str] | None = None,
    ) -> SubmitOutcome:
        """Queue a task and wait until it is durable. See submit_async()."""
        return self.submit_async(
            task_type, args, task_id=task_id, time_limit=time_limit, priority=priority, labels=labels
        ).result()

    def submit_async(
        self,
        task_type: str,
        args: dict[str, Any] | None = None,
        *,
        task_id: str | None = None,
        time_limit: float | None = None,
        priority: int = 0,
        labels: dict[str, str] | None = None,
    ) -> Future[SubmitOutcome]:
        """Validate and queue a task; the Future resolves once it is durable.

        Raises at once (nothing stored) for requests that cannot be accepted: InvalidRequest,
        TaskConflict, QueueFull, ShuttingDown.
        """
        request = SubmitSpec(task_type, args or {}, task_id or "", time_limit, priority, labels or {})
        checked = self._check(request)
        answer: Future[SubmitOutcome] = Future()
        with self._lock:
            reserved = self._reserve(request, checked)
            if isinstance(reserved, Future):
                return reserved
            self._write(
                InsertTask(reserved.copy()),
                then=lambda error: _settle(answer, self._on_inserted([reserved], error)[0]),
            )
        return answer

    def submit_many(self, requests: Sequence[SubmitSpec]) -> Future[list[Answer]]:
        """Submit each request as submit_async() would, all new tasks in one durable commit.

        The Future resolves to one answer per request, in order: a SubmitOutcome, or the error that
        request alone was refused with (one bad request does not fail the others).
        """
        answers: list[Answer | None] = [None] * len(requests)
        checked: list[tuple[int, SubmitSpec, _Checked]] = []
        for index, request in enumerate(requests):
            try:
                checked.append((index, request, self._check(request)))
            except TaskServiceError as exc:
                answers[index] = exc
        following: list[tuple[int, Future[SubmitOutcome]]] = []
        new: list[tuple[int, Task]] = []
        with self._lock:
            for index, request, request_checked in checked:
                try:
                    reserved = self._reserve(request, request_checked)
                except TaskServiceError as exc:
                    answers[index] = exc
                    continue
                if isinstance(reserved, Future):
                    following.append((index, reserved))
                else:
                    new.append((index, reserved))
            batch = _Batch(answers, len(following) + len(new))
            if new:
                tasks = [task for _, task in new]
                self._write(
                    *(InsertTask(task.copy()) for task in tasks),
                    then=lambda error: batch.fill(
                        [
                            (index, answer)
                            for (index, _), answer in zip(new, self._on_inserted(tasks, error), strict=True)
                        ]
                    ),
                )
        for index, future in following:
            batch.follow(index, future)
        return batch.future

    def _check(self, request: SubmitSpec) -> _Checked:
        """Everything about a request that needs no lock: its normalised args, its time limit, its fingerprint."""
        kind = self._registry.require(request.task_type)
        check_json_args(request.args)
        normalised = kind.validate_args(request.args)
        check_paths(kind, normalised, self._data_root)
        if request.task_id:
            check_task_id(request.task_id)
        check_time_limit(request.time_limit)
        check_labels(request.labels)
        if not -(2**31) <= request.priority < 2**31:
            raise InvalidRequest("priority out of range", [("priority", "must fit a 32-bit signed integer")])
        time_limit = request.time_limit
        if kind.time_limit_for is not None:
            time_limit = kind.time_limit_for(normalised, time_limit)
        if time_limit is None:
            time_limit = self.config.default_time_limit
        # The fingerprint is of the request as sent, so that sending it again matches whatever limit it got.
        digest = request_digest(request.task_type, normalised, request.time_limit, request.priority, request.labels)
        return _Checked(normalised, time_limit, digest)

    def _reserve(self, request: SubmitSpec, checked: _Checked) -> Task | Future[SubmitOutcome]:
        """A new task, not yet durable, under its id; or the Future of the earlier same request. Holds _lock."""
        if not self._accepting:
            raise ShuttingDown("the server is shutting down and takes no new tasks; retry on another instance")
        task_id = request.task_id
        if task_id:
            existing = self._existing_submission(task_id, checked.digest)
            if existing is not None:
                return existing
        else:
            task_id = new_task_id()
        if self._queued + len(self._submitting) >= self.config.max_queue:
            raise QueueFull(
                f"the queue holds {self._queued} tasks, its limit (--max-queue {self.config.max_queue}); retry later"
            )
        task = Task(
            task_id=task_id,
            task_type=request.task_type,
            args=checked.args,
            state=TaskState.PENDING,
            submitted_at=self._clock.time(),
            priority=request.priority,
            labels=dict(request.labels),
            time_limit=checked.time_limit,
            seq=self._next_seq,
            sequence=1,
            request_digest=checked.digest,
        )
        self._next_seq += 1
        self._submitting[task_id] = _Submission(task)
        return task

    def _existing_submission(self, task_id: str, digest: str) -> Future[SubmitOutcome] | None:
        """For a client-chosen id already in use: the earlier task if the request matches. Holds _lock."""
        in_flight = self._submitting.get(task_id)
        if in_flight is not None:
            self._check_same_request(in_flight.task, digest)
            if in_flight.joined is None:
                in_flight.joined = Future()
            first = in_flight.joined
            joined: Future[SubmitOutcome] = Future()

            def join(done: Future[SubmitOutcome]) -> None:
                error = done.exception()
                with contextlib.suppress(InvalidStateError):  # this caller gave up
                    if error is not None:
                        joined.set_exception(error)
                    else:
                        joined.set_result(SubmitOutcome(done.result().task, created=False))

            first.add_done_callback(join)
            return joined
        existing = self._live.get(task_id)
        existing = existing.copy() if existing is not None else self._store.get(task_id)
        if existing is None:
            return None
        self._check_same_request(existing, digest)
        done: Future[SubmitOutcome] = Future()
        done.set_result(SubmitOutcome(existing, created=False))
        return done

    @staticmethod
    def _check_same_request(existing: Task, digest: str) -> None:
        if existing.request_digest != digest:
            raise TaskConflict(
                f"task id {existing.task_id!r} is taken by a {existing.task_type!r} task submitted with a "
                "different request; choose another id, or send exactly the same request to get that task"
            )

    def _on_inserted(self, tasks: list[Task], error: BaseException | None) -> list[Answer]:
        """The commit of new tasks ended: queue them, or fail them all (`error`). Returns each one's answer and
        gives it to the retried Submits that joined meanwhile."""
        answers: list[Answer] = []
        joined: list[tuple[Future[SubmitOutcome], Answer]] = []
        failure = None if error is None else _as_answer(error)
        with self._lock:
            for task in tasks:
                submission = self._submitting.pop(task.task_id)
                if failure is None:
                    self._make_live(task)
                    self._notify(task, None)
                    answers.append(SubmitOutcome(task.copy(), created=True))
                else:
                    answers.append(failure)
                if submission.joined is not None:
                    joined.append((submission.joined, answers[-1]))
        for future, answer in joined:
            _settle(future, answer)
        return answers

    def _make_live(self, task: Task) -> None:
        """Queue a PENDING task. Holds _lock (or runs before the workers start)."""
        self._live[task.task_id] = task
        heapq.heappush(self._queue, (-task.priority, task.seq, task.task_id))
        self._queued += 1
        self._work_available.notify()

    # ----------------------------------------------------------------- read

    def get(self, task_id: str) -> Task:
        with self._lock:
            live = self._live.get(task_id)
            if live is not None:
                return live.copy()
        stored = self._store.get(task_id)
        if stored is None:
            raise TaskNotFound(task_id)
        return stored

    def list(self, task_filter: TaskFilter, *, page_size: int, before_seq: int | None) -> TaskPage:
        """A page of tasks, newest first; live tasks show their in-memory state and progress."""
        found = self._store.list(task_filter, before_seq=before_seq, limit=page_size + 1)
        more = len(found) > page_size
        found = found[:page_size]
        with self._lock:
            for index, task in enumerate(found):
                live = self._live.get(task.task_id)
                if live is not None:
                    found[index] = live.copy()
        next_before = found[-1].seq if more and found else None
        tasks = [t for t in found if not task_filter.states or t.state in task_filter.states]
        return TaskPage(tasks, next_before)

    # ----------------------------------------------------------------- watch

    def watch(self, task_id: str, watcher: Watcher, after_sequence: int = 0) -> bool:
        """Attach a watcher. With after_sequence=0 it first gets a snapshot event of the task as it is now,
        then every later event; otherwise the events after that sequence. A watcher of a finished task
        gets its terminal snapshot. Raises TaskNotFound or SequenceOutOfRange.

        False when nothing will come: the task ended at exactly `after_sequence` (a watcher that saw the
        terminal event but not the end of its stream, resuming).
        """
        with self._lock:
            live = self._live.get(task_id)
            if live is not None:
                if after_sequence > live.sequence:
                    raise _ahead(task_id, after_sequence, live.sequence)
                if after_sequence == 0:
                    watcher.push(self._snapshot(live))
                self.events.subscribe(task_id, watcher, after_sequence, live_sequence=live.sequence)
                return True
        stored = self._store.get(task_id)
        if stored is None:
            raise TaskNotFound(task_id)
        if after_sequence == 0:
            watcher.push(self._snapshot(stored))
            return True
        if after_sequence == stored.sequence and stored.state.is_terminal:
            return False
        if after_sequence > stored.sequence:
            raise _ahead(task_id, after_sequence, stored.sequence)
        replay = self.events.subscribe(task_id, watcher, after_sequence)
        if not replay:
            raise SequenceOutOfRange(
                f"task {task_id!r} ended at sequence {stored.sequence} and no events after {after_sequence} "
                "are kept; watch again from 0 for its final state"
            )
        return True

    def unwatch(self, task_id: str, watcher: Watcher) -> None:
        self.events.unsubscribe(task_id, watcher)

    def _snapshot(self, task: Task) -> TaskEvent:
        return TaskEvent(task.task_id, task.sequence, task.state, task.progress, self._clock.time(), task.copy())

    # ----------------------------------------------------------------- stop

    def stop(self, task_id: str, reason: str = "") -> Task:
        """Stop a task and wait until a PENDING one is durably REVOKED. See stop_async()."""
        return self.stop_async(task_id, reason).result()

    def stop_async(self, task_id: str, reason: str = "") -> Future[Task]:
        """PENDING -> REVOKED (never runs); RUNNING -> STOPPING, REVOKED when the handler ends;
        finished: unchanged. The Future resolves to the task as it is after the request.
        """
        reason = reason[:MAX_STOP_REASON]
        why = f"stopped by a client: {reason}" if reason else "stopped by a client"
        result: Future[Task] = Future()

        def revoked(error: BaseException | None) -> None:
            with self._lock:
                self._revoking.discard(task_id)
                if error is None:
                    self._publish_final(final)
                else:
                    # Still PENDING: put it back in the queue, it will run after all.
                    self._queued += 1
                    heapq.heappush(self._queue, (-final.priority, final.seq, task_id))
                    self._work_available.notify()
            with contextlib.suppress(InvalidStateError):  # the caller gave up waiting
                if error is None:
                    result.set_result(final.copy())
                else:
                    result.set_exception(error)

        with self._lock:
            task = self._live.get(task_id)
            if task is None:
                pass
            elif task.state is TaskState.PENDING and task_id not in self._revoking:
                self._revoking.add(task_id)
                self._queued -= 1
                final = self._final_copy(task, TaskState.REVOKED, error=TaskError(ErrorType.REVOKED, why))
                self._write(SaveTask(final), then=revoked)
                return result
            elif task.state is TaskState.RUNNING:
                self._request_stop(self._runs[task_id], TaskState.REVOKED, TaskError(ErrorType.REVOKED, why))
                result.set_result(task.copy())
                return result
            else:
                result.set_result(task.copy())
                return result
        stored = self._store.get(task_id)
        if stored is None:
            raise TaskNotFound(task_id)
        result.set_result(stored)
        return result

    def _request_stop(self, run: _Run, state: TaskState, error: TaskError) -> None:
        """Ask a running handler to stop; the watchdog abandons it after the grace. Holds _lock."""
        if run.finalized or run.stop_event.is_set():
            return
        run.stop_state = state
        run.stop_error = error
        run.stop_event.set()
        run.grace_deadline = self._clock.monotonic() + self.config.stop_grace
        self._change_state(run.task, TaskState.STOPPING)
        self._write(SaveTask(run.task.copy()))
        self._watchdog_wake.notify()

    # ----------------------------------------------------------------- workers

    def _spawn_worker(self) -> None:
        """Start one worker thread. Holds _lock."""
        worker = _Worker(name=f"taskservice-worker-{len(self._workers) + 1}")
        worker.thread = threading.Thread(target=self._worker_loop, args=(worker,), name=worker.name, daemon=True)
        self._workers.append(worker)
        worker.thread.start()

    def _worker_loop(self, worker: _Worker) -> None:
        try:
            self._work(worker)
        except BaseException:
            # Never expected (a handler's own errors end its task, see execution.py); but if the loop itself
            # breaks, the task it held ends FAILURE and a fresh thread takes the place: capacity never shrinks.
            log.exception("worker %s failed; a new worker takes its place", worker.name)
            self._replace_failed_worker(worker)

    def _replace_failed_worker(self, worker: _Worker) -> None:
        with self._lock:
            worker.retired = True
            if not self._closed:
                self._spawn_worker()
            held = [run for run in self._runs.values() if run.worker is worker and not run.finalized]
            finals = []
            for run in held:
                run.finalized = True
                error = TaskError(ErrorType.SERVER_ERROR, "the worker running this task failed; see the server log")
                finals.append(self._final_copy(run.task, TaskState.FAILURE, error=error))
        for final in finals:
            self._persist_final(final)

    def _work(self, worker: _Worker) -> None:
        ended: tuple[_Run, Outcome] | None = None
        while True:
            with self._lock:
                # The end of the last task and the start of the next share one hold of the lock: with several
                # workers busy on short tasks, every extra hold is a hand-off between threads.
                if ended is not None:
                    final = self._conclude(*ended)
                    if final is not None:
                        self._persist_final(final)
                    ended = None
                run = self._next_run(worker)
                if run is None:
                    return
                # RUNNING must be durable before the handler starts, or a crash could re-run a task whose type
                # forbids it. A type that is safe to re-run needs no such wait: its worst case is one more run.
                kind = self._registry.get(run.task.task_type)
                if kind is None or not kind.rerun_on_restart:
                    commit = self._commit(SaveTask(run.task.copy()))
                else:
                    self._write(SaveTask(run.task.copy()))
                    commit = None
            try:
                if commit is not None:
                    commit.result()
            except StoreUnavailable as exc:
                # Run anyway: refusing work because the disk is full helps nobody. A crash now would
                # re-queue the task instead of marking it LOST.
                log.warning("task %s starts without a durable RUNNING state: %s", run.task.task_id, exc)
            ended = (run, self._execute(run))

    def _next_run(self, worker: _Worker) -> _Run | None:
        """Wait for the next queued task and mark it RUNNING; None when the worker should end. Holds _lock."""
        while True:
            while not (self._queue and self._dispatching) and not worker.retired and not self._closed:
                self._work_available.wait()
            if worker.retired or self._closed or not self._dispatching:
                return None
            _, _, task_id = heapq.heappop(self._queue)
            task = self._live.get(task_id)
            if task is None or task.state is not TaskState.PENDING or task_id in self._revoking:
                continue  # revoked while queued
            self._queued -= 1
            run = _Run(task=task, worker=worker)
            task.attempt += 1
            task.started_at = self._clock.time()
            task.progress = Progress()
            if task.time_limit is not None:
                run.deadline = self._clock.monotonic() + task.time_limit
                self._watchdog_wake.notify()
            self._runs[task_id] = run
            self._change_state(task, TaskState.RUNNING)
            return run

    def _execute(self, run: _Run) -> Outcome:
        """Run a task's handler and everything around it; never raises, whatever goes wrong."""
        task = run.task
        if run.stop_event.is_set():
            return Outcome(state=None)  # stopped while RUNNING was being committed: do not start it
        kind = self._registry.get(task.task_type)
        if kind is None:
            return Outcome(
                TaskState.FAILURE,
                error=TaskError(
                    ErrorType.UNKNOWN_TASK_TYPE,
                    f"task type {task.task_type!r} is not registered on this server (load it with --tasks)",
                ),
            )
        context = HandlerContext(
            report=lambda percent, message, current, total: self._report_progress(
                run, percent, message, current, total
            ),
            log_sink=lambda data: self._write_log(task.task_id, data),
            stop_event=run.stop_event,
            deadline=run.deadline,
            stop_grace=self.config.stop_grace,
            # An output is moved into place only if nobody stopped the task or gave up on it meanwhile.
            still_wanted=lambda: not run.stop_event.is_set() and not run.finalized,
        )
        return execute_task(kind, task, self._data_root, context)

    def _write_log(self, task_id: str, data: bytes) -> None:
        if self.logs is not None:
            self.logs.append(task_id, data)
        else:
            log.debug("task %s: %s", task_id, data.decode("utf-8", "replace").rstrip())

    def _conclude(self, run: _Run, outcome: Outcome) -> Task | None:
        """The terminal copy of how a handler ended; None when the watchdog already gave up on it or a retry
        is due. Holds _lock."""
        if run.finalized or self._discard_outcomes:
            return None
        if self._retry_later(run, outcome):
            return None
        if outcome.state is None or run.stop_event.is_set():
            state = run.stop_state or TaskState.REVOKED
            error = run.stop_error or TaskError(ErrorType.REVOKED, "stopped")
            final = self._final_copy(run.task, state, error=error)
        else:
            final = self._final_copy(run.task, outcome.state, result=outcome.result, error=outcome.error)
        run.finalized = True
        return final

    def _retry_later(self, run: _Run, outcome: Outcome) -> bool:
        """Put a failed task back to PENDING when its type's retry policy says so. Holds _lock."""
        kind = self._registry.get(run.task.task_type)
        task = run.task
        if (
            outcome.state is not TaskState.FAILURE
            or run.stop_event.is_set()
            or kind is None
            or kind.retry is None
            or not kind.retry.should_retry(outcome.exception, task.attempt)
        ):
            return False
        delay = kind.retry.delay(task.attempt, self._rng)
        run.finalized = True
        self._runs.pop(task.task_id, None)
        task.error = outcome.error  # why the last run failed, visible while the task waits
        self._change_state(task, TaskState.PENDING)
        self._write(SaveTask(task.copy()))
        self._queued += 1
        heapq.heappush(self._delayed, (self._clock.monotonic() + delay, task.seq, task.task_id))
        self._watchdog_wake.notify()
        self._idle.notify_all()
        log.info("task %s failed on attempt %d; retrying in %.2f s", task.task_id, task.attempt, delay)
        return True

    def _release_due_retries(self, now: float) -> float | None:
        """Queue the retries whose backoff has passed; the monotonic time of the next one. Holds _lock."""
        while self._delayed and self._delayed[0][0] <= now:
            _, seq, task_id = heapq.heappop(self._delayed)
            task = self._live.get(task_id)
            if task is not None and task.state is TaskState.PENDING and task_id not in self._revoking:
                heapq.heappush(self._queue, (-task.priority, seq, task_id))
                self._work_available.notify()
        return self._delayed[0][0] if self._delayed else None

    def wake_timers(self) -> None:
        """Make the watchdog look at the clock now (after a test's clock moved)."""
        with self._lock:
            self._watchdog_wake.notify()

    def _abandon(self, run: _Run) -> None:
        """The handler ignored a stop past the grace: end the task without it and replace its worker."""
        with self._lock:
            if run.finalized or self._discard_outcomes:
                return
            run.finalized = True
            run.worker.retired = True
            if self._dispatching:
                self._spawn_worker()
            state = run.stop_state or TaskState.REVOKED
            base = run.stop_error.message if run.stop_error else "stopped"
            error = TaskError(
                run.stop_error.type if run.stop_error else ErrorType.REVOKED,
                f"{base}; the handler did not return within the {self.config.stop_grace:g} s stop grace "
                "and was abandoned (its late result is discarded)",
            )
            final = self._final_copy(run.task, state, error=error)
        log.warning("task %s: handler ignored the stop and was abandoned", run.task.task_id)
        self._persist_final(final)

    def _persist_final(self, final: Task) -> None:
        """Commit a terminal state, then show it; retried while the disk refuses it.

        Nobody waits for it: the worker goes on with its next task while the state shares the next group
        commit, so a task costs its worker one commit round trip (RUNNING), not two.
        """
        try:
            self._write(SaveTask(final), then=lambda error: self._final_committed(final, error))
        except RuntimeError:
            return  # the manager is closed: the next start treats the task as after a crash

    def _final_committed(self, final: Task, error: BaseException | None) -> None:
        if error is None:
            self._committed_finals.append(final)  # shown by _show_committed once its whole commit is told
            return
        if self._discard_outcomes:
            return
        self._refused_finals.log("task %s: cannot record %s yet, retrying: %s", final.task_id, final.state.value, error)
        retry = threading.Timer(FINAL_WRITE_RETRY_SECONDS, self._persist_final, args=(final,))
        retry.daemon = True
        retry.start()

    def _show_committed(self) -> None:
        """After each commit: show the terminal states it made durable, under one hold of the lock."""
        if not self._committed_finals:
            return
        with self._lock:
            while self._committed_finals:
                self._publish_final(self._committed_finals.popleft())

    def _publish_final(self, final: Task) -> None:
        """Replace the live task with its committed terminal copy and tell watchers. Holds _lock."""
        live = self._live.pop(final.task_id, None)
        self._runs.pop(final.task_id, None)
        self._dirty_progress.pop(final.task_id, None)
        if self.logs is not None and final.state.is_terminal:
            self.logs.finish(final.task_id)
        if self.events.followed(final.task_id):
            self.events.publish(self._snapshot(final))
        self._idle.notify_all()
        self._notify(final, live.state if live else None)

    def _notify(self, task: Task, previous: TaskState | None) -> None:
        """Tell the listeners of a state change. Holds _lock."""
        for listener in self._listeners:
            try:
                listener.task_changed(task, previous)
            except Exception:
                log.exception("task listener %r failed", listener)

    def _final_copy(self, task: Task, state: TaskState, *, result: Any = None, error: TaskError | None = None) -> Task:
        """The task as it ends; `state` is terminal, or PENDING for a task a shutdown sends back to the queue."""
        final = task.copy()
        final.state = state
        final.result = result
        final.error = error
        final.ended_at = self._clock.time() if state.is_terminal else None
        final.sequence = task.sequence + 1
        return final

    def _active_runs(self) -> int:
        return sum(1 for run in self._runs.values() if not run.finalized)

    # ----------------------------------------------------------------- progress and events

    def _report_progress(
        self, run: _Run, percent: float | None, message: str, current: int | None, total: int | None
    ) -> None:
        for name, count in (("current", current), ("total", total)):
            if count is not None and (not isinstance(count, int) or isinstance(count, bool) or abs(count) > INT64_MAX):
                raise ValueError(f"ctx.progress({name}=...) must be a whole number within 64 bits, got {count!r}")
        if percent is None:
            percent = 100.0 * current / total if current is not None and total else run.task.progress.percent
        if isinstance(percent, bool) or not isinstance(percent, int | float) or not math.isfinite(percent):
            raise ValueError(f"ctx.progress(percent=...) must be a finite number, got {percent!r}")
        progress = Progress(
            percent=min(100.0, max(0.0, float(percent))),
            message=printable(str(message)[:MAX_PROGRESS_MESSAGE]),
            current=current or 0,
            total=total or 0,
            updated_at=self._clock.time(),
        )
        with self._lock:
            task = run.task
            if run.finalized:
                return
            task.progress = progress
            task.sequence += 1
            self._dirty_progress[task.task_id] = task
            if self.events.followed(task.task_id):
                self.events.publish(
                    TaskEvent(task.task_id, task.sequence, task.state, progress, progress.updated_at or 0.0)
                )

    def _change_state(self, task: Task, state: TaskState) -> None:
        """A non-terminal state change: applied and published at once. Holds _lock."""
        previous = task.state
        task.state = state
        task.sequence += 1
        if self.events.followed(task.task_id):
            self.events.publish(self._snapshot(task))
        self._notify(task, previous)

    def _collect_progress(self) -> list[Write]:
        """Called by the writer once per flush interval: the latest progress of every task that moved."""
        with self._lock:
            dirty, self._dirty_progress = self._dirty_progress, {}
            return [SaveProgress(t.task_id, t.progress, t.sequence) for t in dirty.values()]

    def _write(self, *writes: Write, then: Done = ignore) -> None:
        """Queue writes; `then` (on the writer thread) hears once they are durable or failed."""
        if self._writer is None:
            raise RuntimeError("the manager is not started")
        self._writer.write(*writes, then=then)

    def _commit(self, *writes: Write) -> Future[None]:
        """Queue writes; the Future resolves once they are durable."""
        if self._writer is None:
            raise RuntimeError("the manager is not started")
        return self._writer.commit(*writes)

    # ----------------------------------------------------------------- time limits

    def _watchdog_loop(self) -> None:
        while True:
            expired_limits: list[_Run] = []
            expired_graces: list[_Run] = []
            with self._lock:
                if self._closed:
                    return
                now = self._clock.monotonic()
                next_wake = self._release_due_retries(now)
                for run in self._runs.values():
                    if run.finalized:
                        continue
                    due = run.grace_deadline if run.grace_deadline is not None else run.deadline
                    if due is None:
                        continue
                    if now >= due:
                        (expired_graces if run.grace_deadline is not None else expired_limits).append(run)
                    else:
                        next_wake = due if next_wake is None else min(next_wake, due)
                for run in expired_limits:
                    limit = run.task.time_limit or 0.0
                    self._request_stop(
                        run,
                        TaskState.TIMED_OUT,
                        TaskError(ErrorType.TIME_LIMIT_EXCEEDED, f"time limit of {limit:g} s passed"),
                    )
                if expired_limits:
                    continue  # their grace deadlines are new: compute the next wake again
                if not expired_graces:
                    self._watchdog_wake.wait(None if next_wake is None else max(0.0, next_wake - now))
                    continue
            for run in expired_graces:
                self._abandon(run)

    # ----------------------------------------------------------------- introspection

    def stats(self) -> ManagerStats:
        with self._lock:
            busy = self._active_runs()
            return ManagerStats(
                workers=sum(1 for w in self._workers if not w.retired and w.thread is not None and w.thread.is_alive()),
                busy_workers=busy,
                abandoned_handlers=sum(1 for w in self._workers if w.retired and w.thread and w.thread.is_alive()),
                queued=self._queued,
                live=len(self._live),
                watchers=self.events.watcher_count(),
                store_commits=self._writer.commits if self._writer else 0,
            )
