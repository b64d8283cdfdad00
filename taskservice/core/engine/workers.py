"""Worker threads: claim tasks from the board, run them, hand their outcome to the finisher.

One idle worker at a time claims, for as many tasks as there are idle workers, and the claims wait in a small
local queue for the next free worker: with a deep queue, workers claim and finish in batches. A claimed task's
RUNNING state is durable before its handler starts, unless its type is safe to run again (its worst case after a
crash is one more run). Whatever goes wrong, a worker lives on; if its loop itself breaks, a fresh thread takes
its place and the task it held ends FAILURE.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from taskservice.core.board.base import Board, ClaimBatch, ClaimScope
from taskservice.core.engine.clock import Clock
from taskservice.core.engine.finishing import Finisher
from taskservice.core.engine.runs import Phase, Run, RunTable, Worker
from taskservice.core.handlers.children import Children
from taskservice.core.handlers.context import check_progress
from taskservice.core.handlers.execution import HandlerContext, Outcome, execute_task, printable
from taskservice.core.handlers.logs import Logs
from taskservice.core.handlers.paths import DataRoot
from taskservice.core.handlers.process_pool import ProcessPool
from taskservice.core.handlers.registry import TaskRegistry, TaskType
from taskservice.core.model.errors import TaskServiceError
from taskservice.core.model.models import ErrorType, Progress, TaskError, TaskState
from taskservice.telemetry import start_run

log = logging.getLogger("taskservice.core.engine.manager")

# Progress messages longer than this are cut; they go to every watcher.
MAX_PROGRESS_MESSAGE = 1024
# Prefetching claims (see WorkerPool._prefetch): per worker, and only while handlers typically take less than this
# (an average over the last few dozen runs, each weighing RUN_TIME_WEIGHT).
PREFETCH_PER_WORKER = 4
PREFETCH_BELOW_SECONDS = 0.005
RUN_TIME_WEIGHT = 0.05


class WorkerPool:
    def __init__(
        self,
        table: RunTable,
        board: Board,
        registry: TaskRegistry,
        finisher: Finisher,
        clock: Clock,
        *,
        node: str,
        size: int,
        phase: Callable[[], Phase],
        lease_seconds: float,
        poll_seconds: float,
        stop_grace: float,
        data_root: DataRoot | None,
        logs: Logs | None,
        early_stop: Callable[[Run], None],
        wake_watchdog: Callable[[], None],
        processes: Callable[[TaskType], ProcessPool | None] = lambda kind: None,
        children: Children | None = None,
        only_types: frozenset[str] = frozenset(),
        only_labels: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """`processes(kind)`: the pool of worker processes a task of `kind` runs in, or None for this thread."""
        self._processes = processes
        self._children = children
        self._table = table
        self._board = board
        self._registry = registry
        self._finisher = finisher
        self._clock = clock
        self._node = node
        self._size = size
        self._phase = phase
        self._lease_seconds = lease_seconds
        self._poll_seconds = poll_seconds
        self._stop_grace = stop_grace
        self._data_root = data_root
        self._logs = logs
        self._early_stop = early_stop
        self._wake_watchdog = wake_watchdog
        self.workers: list[Worker] = []
        # How long handlers take, on average over recent runs (starts high: no prefetching until known).
        self._typical_run = 1.0
        self._work = threading.Condition(table.lock)
        self._claimed: deque[Run] = deque()
        self._claiming = 0  # claims in flight
        self._idle = 0
        # Set when work may have arrived since the last claim began: the claimer claims again before it waits.
        self._hint = False
        # Runs whose progress moved since it was last handed to the board.
        self.dirty: dict[str, Run] = {}
        # Exclusive boards hold tasks of any type: a leftover of a type no longer loaded is claimed and fails with
        # a clear error. Shared boards leave such tasks to the servers that run their type, and a node told to run
        # only some types (--only-types) leaves the rest to the others.
        loaded = None if board.exclusive else frozenset(registry.names())
        self._scope = ClaimScope(only_types or loaded, only_labels)

    # ------------------------------------------------------------------ threads

    def start(self) -> None:
        with self._table.lock:
            for _ in range(self._size):
                self.spawn()

    def spawn(self) -> None:
        """Start one worker thread. Holds lock."""
        worker = Worker(name=f"taskservice-worker-{len(self.workers) + 1}")
        worker.thread = threading.Thread(target=self._loop, args=(worker,), name=worker.name, daemon=True)
        self.workers.append(worker)
        worker.thread.start()

    def wake(self) -> None:
        """Work may have arrived (the board says so, or a phase changed)."""
        with self._table.lock:
            self._hint = True
            self._work.notify_all()

    def join(self, timeout: float) -> None:
        for worker in list(self.workers):
            if worker.thread is not None and worker.thread is not threading.current_thread():
                worker.thread.join(timeout)

    def busy(self) -> int:
        """How many of its threads run a task's handler now."""
        with self._table.lock:
            return sum(1 for run in self._table.runs.values() if not run.finalized and run.worker is not None)

    def alive(self) -> int:
        with self._table.lock:
            return sum(1 for worker in self.workers if worker.alive)

    def abandoned(self) -> int:
        with self._table.lock:
            return sum(1 for w in self.workers if w.retired and w.thread is not None and w.thread.is_alive())

    # ------------------------------------------------------------------ the loop

    def _loop(self, worker: Worker) -> None:
        try:
            self._work_on(worker)
        except BaseException:
            log.exception("worker %s failed; a new worker takes its place", worker.name)
            with self._table.lock:
                worker.retired = True
                if self._phase() is not Phase.CLOSED:
                    self.spawn()
                held = [run for run in self._table.runs.values() if run.worker is worker and not run.finalized]
            for run in held:
                self._finisher.fail(
                    run, TaskError(ErrorType.SERVER_ERROR, "the worker running this task failed; see the server log")
                )

    def _work_on(self, worker: Worker) -> None:
        ended: tuple[Run, Outcome] | None = None
        while True:
            if ended is not None and self._finisher.conclude(*ended):
                self._finisher.write_held()
            ended = None
            run = self._next(worker)
            if run is None:
                self._finisher.write_held()
                return
            kind = self._registry.get(run.task.task_type)
            if kind is None or not kind.rerun_on_restart:
                # The ends held so far share the commit this worker waits for: a crash meanwhile must not find
                # them RUNNING (LOST), only the task about to start.
                self._finisher.write_held()
                error = run.batch.wait_durable(run.task_id)
                if error is not None:
                    # Run anyway: refusing work because the disk is full helps nobody. A crash now would
                    # re-queue the task instead of marking it LOST.
                    log.warning("task %s starts without a durable RUNNING state: %s", run.task_id, error)
            else:
                run.batch.started(run.task_id)
            started = time.monotonic()
            ended = (run, self._execute(run))
            self._typical_run += (time.monotonic() - started - self._typical_run) * RUN_TIME_WEIGHT

    def _next(self, worker: Worker) -> Run | None:
        """The next claimed run for this worker, claiming when none is waiting; None when the worker should end."""
        with self._table.lock:
            while True:
                if worker.retired or self._phase() is Phase.CLOSED:
                    return None
                if self._claimed:
                    run = self._claimed.popleft()
                    run.worker = worker
                    if run.task.time_limit is not None:  # from when its handler starts, not from its claim
                        run.deadline = self._clock.monotonic() + run.task.time_limit
                        self._wake_watchdog()
                    return run
                if self._phase() is not Phase.SERVING:
                    return None
                if self._claiming > 0:  # one claim at a time, for all idle workers (and a few more: _prefetch)
                    self._wait_idle(None)
                    continue
                batch = self._claim_unlocked(self._idle + 1 + self._prefetch())
                if batch is None:
                    continue
                if not batch.claims:
                    self._wait_idle(self._idle_wait())

    @property
    def scope(self) -> ClaimScope:
        """The tasks this node claims."""
        return self._scope

    def _prefetch(self) -> int:
        """Claims beyond the idle workers: while handlers return within moments, a few more per claim, so that a
        deep queue of short tasks costs one claim (and one RUNNING commit) per batch. Never for long handlers,
        whose claimed tasks would wait, RUNNING, for a worker. A claimed task whose handler never started is
        PENDING again after a crash, on any board. Holds lock."""
        return self._size * PREFETCH_PER_WORKER if self._typical_run < PREFETCH_BELOW_SECONDS else 0

    def _wait_idle(self, timeout: float | None) -> None:
        """Wait for work, after writing the ends held for this moment (nothing else is coming to join them).
        Holds lock."""
        if self._finisher.held_since is not None:
            self._table.lock.release()
            try:
                self._finisher.write_held()
            finally:
                self._table.lock.acquire()
            return  # look again before waiting: things may have changed meanwhile
        self._idle += 1
        self._work.wait(timeout)
        self._idle -= 1

    def _claim_unlocked(self, n: int) -> ClaimBatch | None:
        """Claim up to n tasks with the lock let go meanwhile; register what came. Holds lock on entry and exit.
        None when work arrived during the claim (the caller looks again at once)."""
        self._claiming += 1
        self._hint = False
        self._table.lock.release()
        try:
            now = self._clock.time()
            batch = self._board.claim(self._node, self._scope, n, lease_until=now + self._lease_seconds, now=now)
        except TaskServiceError as exc:
            log.warning("cannot claim tasks: %s", exc)
            batch = ClaimBatch([])
        finally:
            self._table.lock.acquire()
            self._claiming = 0  # claims in flight
        for claim in batch.claims:
            self._register(Run(claim, claim.task.copy(), batch))
        if batch.claims or self._hint:
            self._work.notify_all()
            return None
        return batch

    def _idle_wait(self) -> float:
        """How long an idle worker waits for a hint before it claims again: the poll, or the next retry's due."""
        due = self._board.next_due()
        if due is None:
            return self._poll_seconds
        return max(0.0, min(self._poll_seconds, due - self._clock.time()))

    def _register(self, run: Run) -> None:
        """A claimed task joins the table, RUNNING, and waits for a worker. Holds lock."""
        task = run.task
        self._table.runs[task.task_id] = run
        self._table.show(task, TaskState.PENDING)
        self._claimed.append(run)
        self._early_stop(run)

    # ------------------------------------------------------------------ running

    def _execute(self, run: Run) -> Outcome:
        task = run.task
        if run.stop_event.is_set():
            return Outcome(state=None)  # stopped before it started: do not start it
        kind = self._registry.get(task.task_type)
        if kind is None:
            return Outcome(
                TaskState.FAILURE,
                error=TaskError(
                    ErrorType.UNKNOWN_TASK_TYPE,
                    f"task type {task.task_type!r} is not registered on this server (load it with --tasks)",
                ),
            )
        trace = start_run(task)
        if trace is None:
            return self._run_handler(run, kind, {})
        outcome = Outcome(TaskState.FAILURE, error=TaskError(ErrorType.SERVER_ERROR, "the run broke off"))
        try:
            outcome = self._run_handler(run, kind, trace.carrier)
        finally:
            error = outcome.error
            state = outcome.state.value if outcome.state is not None else "STOPPED"
            trace.finish(state, error.type if error else "", error.message if error else "")
        return outcome

    def _run_handler(self, run: Run, kind: TaskType, trace_context: dict[str, str]) -> Outcome:
        task = run.task
        lent = HandlerContext(
            report=lambda percent, message, current, total: self._report(run, percent, message, current, total),
            log_sink=lambda data: self._write_log(task.task_id, data),
            stop_event=run.stop_event,
            deadline=run.deadline,
            stop_grace=self._stop_grace,
            # An output is moved into place only if nobody stopped the task or gave up on it meanwhile.
            still_wanted=lambda: not run.stop_event.is_set() and not run.finalized,
            processes=self._processes(kind),
            trace_context=trace_context,
            children=self._children,
        )
        return execute_task(kind, task, self._data_root, lent)

    def _report(self, run: Run, percent: float | None, message: str, current: int | None, total: int | None) -> None:
        check_progress(percent, current, total)
        if percent is None:
            percent = 100.0 * current / total if current is not None and total else run.task.progress.percent
        progress = Progress(
            percent=min(100.0, max(0.0, float(percent))),
            message=printable(str(message)[:MAX_PROGRESS_MESSAGE]),
            current=current or 0,
            total=total or 0,
            updated_at=self._clock.time(),
        )
        with self._table.lock:
            if run.finalized:
                return
            run.task.progress = progress
            run.task.event_sequence += 1
            self.dirty[run.task_id] = run
            self._table.publish_progress(run.task, progress)

    def _write_log(self, task_id: str, data: bytes) -> None:
        if self._logs is not None:
            self._logs.append(task_id, data)
        else:
            log.debug("task %s: %s", task_id, data.decode("utf-8", "replace").rstrip())

    def take_dirty(self) -> list[Run]:
        """The runs whose progress moved since the last call."""
        with self._table.lock:
            dirty, self.dirty = self.dirty, {}
            return [run for run in dirty.values() if not run.finalized]
