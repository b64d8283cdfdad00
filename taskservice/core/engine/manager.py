"""WorkerManager: the engine's front object, composing its parts (docs/architecture.md):

- admission (admission.py): checks a Submit and makes it a NewTask;
- the board (board/): where tasks live and the only place their state changes;
- the workers (workers.py): claim, run, hand outcomes on;
- the finisher (finishing.py): ends written on the board, shown only once durable;
- the watchdog (watchdog.py): time limits, stop grace, leases, reaping, progress writes;
- the run table (runs.py): this node's runs and what watchers and listeners are shown;
- watching (watching.py): a watcher attached at the right sequence, whatever is being shown meanwhile;
- stopping (stopping.py): a Stop of a task run here, or asked of the board for one run elsewhere;
- the relay (relay.py): on a shared board, the changes of tasks other servers run, for the watchers here;
- the scheduler (scheduling.py): schedules by hand, and their firings when due.
- limits by hand (limits.py): the board enforces them at each claim.

Its life is one Phase: NEW -> SERVING -> DRAINING -> CLOSED. Shutdown is ordered and bounded: stop taking
Submits and claims, let running tasks finish for the drain, stop what is left as Stop would, flush.
"""

from __future__ import annotations

import builtins
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from taskservice.core.board.base import Answer, Board, NewTask
from taskservice.core.engine.admission import Admission
from taskservice.core.engine.children import EngineChildren
from taskservice.core.engine.clock import Clock, SystemClock
from taskservice.core.engine.config import ManagerConfig, ManagerStats
from taskservice.core.engine.ended import EndedTasks
from taskservice.core.engine.finishing import Finisher
from taskservice.core.engine.limits import LimitBook
from taskservice.core.engine.nodes import node_name
from taskservice.core.engine.observe import TaskListener, TransitionLog
from taskservice.core.engine.presence import Presence
from taskservice.core.engine.relay import Relay
from taskservice.core.engine.runs import Phase, RunTable
from taskservice.core.engine.scheduling import Scheduler
from taskservice.core.engine.stopping import Stopping, settle
from taskservice.core.engine.watchdog import Watchdog
from taskservice.core.engine.watching import Watching
from taskservice.core.engine.workers import WorkerPool
from taskservice.core.handlers.logs import Logs
from taskservice.core.handlers.paths import DataRoot
from taskservice.core.handlers.process_pool import ProcessPool
from taskservice.core.handlers.registry import TaskRegistry, TaskType
from taskservice.core.handlers.type_info import TypeInfo, describe
from taskservice.core.model.errors import ShuttingDown, TaskNotFound, TaskServiceError
from taskservice.core.model.events import EventHub, Watcher
from taskservice.core.model.listing import NEWEST_FIRST, ListPosition, TaskOrder, TaskPage
from taskservice.core.model.models import (
    ErrorType,
    StopCount,
    SubmitOutcome,
    SubmitSpec,
    Task,
    TaskError,
    TaskEvent,
    TaskFilter,
    TaskState,
)

log = logging.getLogger(__name__)

__all__ = ["ManagerConfig", "ManagerStats", "SubmitSpec", "WorkerManager"]

# At shutdown, how long past the stop grace to wait for the watchdog to abandon handlers that ignore the stop.
SHUTDOWN_ABANDON_MARGIN = 0.5


class WorkerManager:
    """Runs tasks from a board on a fixed number of worker threads."""

    def __init__(
        self,
        board: Board,
        registry: TaskRegistry,
        *,
        config: ManagerConfig | None = None,
        clock: Clock | None = None,
        listeners: Sequence[TaskListener] = (),
        data_root: DataRoot | None = None,
        logs: Logs | None = None,
        node: str | None = None,
    ) -> None:
        self.config = config or ManagerConfig()
        if self.config.workers < 1:
            raise ValueError("workers must be at least 1")
        self.board = board
        self._registry = registry
        self._clock = clock or SystemClock()
        self.node = node or node_name()
        self.logs = logs
        self.events = EventHub()
        self._listeners = (TransitionLog(), *listeners)
        self._phase = Phase.NEW
        self._table = RunTable(self._listeners, self.events, self._clock.time)
        self._admission = Admission(registry, data_root, self.config.default_time_limit)
        self._watching = Watching(self._table, self.board, self.events)
        # Watchers here of tasks other servers run (a shared board) see their changes through the relay.
        self._relay = None if self.board.exclusive else Relay(self._table, self.board, lambda: self._phase,
                                                              self._clock.time)  # fmt: skip
        self._health_listeners: list[Callable[[bool], None]] = []
        self._finisher = Finisher(
            self._table,
            self.board,
            registry,
            self._clock,
            phase=lambda: self._phase,
            stop_grace=self.config.stop_grace,
            logs=logs,
            replace_worker=lambda: self._workers.spawn(),
            wake_watchdog=lambda: self._watchdog.wake(),
        )
        # Worker processes, for the task types that run there (isolation="process", or all with --isolation).
        self._processes: ProcessPool | None = None
        if any(self._in_process(kind) for kind in registry):
            self._processes = ProcessPool(self.config.process_workers or os.cpu_count() or 1,
                                          max_tasks=self.config.process_max_tasks,
                                          max_rss=self.config.process_max_rss)  # fmt: skip
        # ctx.submit() and ctx.wait() of handlers, and a Stop reaching a stopped task's children.
        self._children = EngineChildren(self.submit_many, self.get, self.list,
                                        lambda task_id, why: self._stopping.stop_because(task_id, why))  # fmt: skip
        self._workers = WorkerPool(
            self._table,
            self.board,
            registry,
            self._finisher,
            self._clock,
            node=self.node,
            size=self.config.workers,
            phase=lambda: self._phase,
            lease_seconds=self.config.lease_seconds,
            poll_seconds=self.config.poll_seconds,
            stop_grace=self.config.stop_grace,
            data_root=data_root,
            logs=logs,
            early_stop=lambda run: self._stopping.registered(run),
            wake_watchdog=lambda: self._watchdog.wake(),
            processes=lambda kind: self._processes if self._in_process(kind) else None,
            children=self._children,
            only_types=self.config.only_types,
            only_labels=self.config.only_labels,
        )
        load = lambda: (self.config.workers, self._workers.busy(), self._workers.abandoned())  # noqa: E731
        self.presence = Presence(self.board, self._clock, self.node, self._workers.scope, registry.names(),
                                 self.config.lease_seconds, load)  # fmt: skip
        self._stopping = Stopping(self._table, self.board, self._finisher, self._clock, self._children.after_stop)
        self._ended = EndedTasks(self._table, self.board, self._clock, logs, self.events, self.config.retention)
        self._watchdog = Watchdog(
            self._table,
            self.board,
            self._finisher,
            self._clock,
            node=self.node,
            phase=lambda: self._phase,
            lease_seconds=self.config.lease_seconds,
            renew_seconds=self.config.renew_seconds,
            reap_seconds=self.config.reap_seconds,
            progress_seconds=self.config.progress_seconds,
            poll_seconds=self.config.poll_seconds,
            rerunnable=self._rerunnable,
            dirty=self._workers.take_dirty,
            act_on_stops=self._stopping.act_on,
            heartbeat=self.presence.announce,
        )
        self.schedules = Scheduler(
            self.board, self._clock, self.submit_many, self._admission.check, self.config.poll_seconds,
            listeners=self._listeners,
        )  # fmt: skip
        self.limits = LimitBook(self.board, self._clock, self._workers.wake)
        if logs is not None:
            logs.protect(lambda task_id: task_id in self._table.runs or self._unfinished_here(task_id))
        self.board.on_work(self._workers.wake)
        self.board.on_health(self._store_health_changed)
        self.board.on_ended(self._ended_by_board)
        self.board.on_displaced(self._stopping.stop_displaced)

    def _in_process(self, kind: TaskType) -> bool:
        """Whether tasks of `kind` run in a worker process: it says so, or the server runs every Python handler
        there that can be imported by name (not the command type, which already runs a process of its own)."""
        if kind.isolation == "process":
            return True
        return (
            self.config.isolation == "process"
            and kind.name != "command"
            and "<locals>" not in kind.handler.__qualname__
        )

    def _rerunnable(self) -> list[str]:
        return [kind.name for kind in self._registry if kind.rerun_on_restart]

    def _unfinished_here(self, task_id: str) -> bool:
        task = self.board.get(task_id) if self.board.exclusive else None
        return task is not None and not task.state.is_terminal

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Reap what a previous run left (exclusive boards: all of it), store the task types' own limits, then
        serve."""
        self._watchdog.reap()
        self.limits.declare([spec for kind in self._registry if (spec := kind.default_limit()) is not None])
        self.presence.announce()
        queued = self.board.queued_tasks()
        with self._table.lock:
            for listener in self._listeners:
                recovered = getattr(listener, "tasks_recovered", None)  # optional: older listeners lack it
                try:
                    if recovered is not None:
                        recovered(queued)
                except Exception:
                    log.exception("task listener %r failed", listener)
            self._phase = Phase.SERVING
        if self._processes is not None:
            self._processes.start()
        self._workers.start()
        self._watchdog.start()
        self._ended.start()
        self.schedules.start()
        if self._relay is not None:
            self._relay.start()

    def begin_shutdown(self) -> None:
        """Refuse new Submits and claim nothing more; running tasks go on. Safe to call twice."""
        with self._table.lock:
            if self._phase is Phase.SERVING:
                self._phase = Phase.DRAINING
        self._workers.wake()

    def drain(self, timeout: float, *, until_shown: bool = False) -> bool:
        """Wait up to `timeout` seconds for running tasks to end; True when none is left.

        until_shown=True waits until their ends are also written and shown to watchers, not only reached.
        """
        deadline = self._clock.monotonic() + timeout
        with self._table.lock:
            while self._table.runs if until_shown else self._table.active():
                remaining = deadline - self._clock.monotonic()
                if remaining <= 0:
                    return False
                self._finisher.gone.wait(min(remaining, 0.5))
            return True

    def stop_running(self, why: str = "the server shut down while this task ran") -> bool:
        """End a drain: stop every running task as Stop would, and wait out the stop grace (after which the
        watchdog abandons handlers that ignore it). True when every task ended.

        A planned shutdown is not a crash: a task ends REVOKED with error type ServerShutdown, or goes back to
        PENDING when its type is safe to re-run (the next start runs it). Only a real crash leaves LOST.
        """
        self.begin_shutdown()
        rerunnable = set(self._rerunnable())
        with self._table.lock:
            for run in self._table.active():
                if run.task.task_type in rerunnable:
                    state, then = TaskState.PENDING, "it runs again from the start when the server starts"
                else:
                    state, then = TaskState.REVOKED, "submit it again to run it"
                self._finisher.stop(run, state, TaskError(ErrorType.SERVER_SHUTDOWN, f"{why}; {then}"))
        # Until shown: watchers must get each end before the server closes their streams.
        return self.drain(self.config.stop_grace + SHUTDOWN_ABANDON_MARGIN, until_shown=True)

    def close(self, drain_timeout: float = 0.0) -> None:
        """Ordered, bounded shutdown: stop accepting, drain, stop what is left (stop_running), flush.

        Safe to call twice. Closes the board only when it made it (over a bare store); the store stays open.
        """
        self.begin_shutdown()
        if drain_timeout > 0:
            self.drain(drain_timeout)
        if self._phase is not Phase.CLOSED and self._phase is not Phase.NEW:
            self.stop_running()
        with self._table.lock:
            if self._phase is Phase.CLOSED:
                return
            self._phase = Phase.CLOSED
            for run in self._table.runs.values():
                run.stop_event.set()
            self._watchdog.wake()
        self._workers.wake()
        self.presence.retire()
        self.schedules.close()
        self._ended.close()
        self._children.close()
        self._workers.join(1.0)
        self._watchdog.join(1.0)
        if self._processes is not None:
            self._processes.close()
        if self._relay is not None:
            self._relay.close()

    @property
    def accepting(self) -> bool:
        return self._phase is Phase.SERVING

    def on_store_health(self, listener: Callable[[bool], None]) -> None:
        """Call `listener(False)` when the store stops taking writes and `listener(True)` once it takes them
        again; on the store's thread, so it must be quick."""
        self._health_listeners.append(listener)

    @property
    def store_writable(self) -> bool:
        """False from a refused write until a write succeeds again."""
        return self.board.writable

    def _ended_by_board(self, changed: list[tuple[Task, TaskState]]) -> None:
        """Tasks the board ended by itself (dependents of a task that did not succeed), shown like any end."""
        with self._table.lock:
            for task, previous in changed:
                self._table.show(task, previous)

    def _store_health_changed(self, healthy: bool) -> None:
        for listener in self._health_listeners:
            listener(healthy)

    def wake_timers(self) -> None:
        """Make the watchdog and idle workers look at the clock now (after a test's clock moved)."""
        with self._table.lock:
            self._watchdog.wake()
        self._workers.wake()

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
        not_before: float | None = None,
        delay: float | None = None,
        retention: float | None = None,
        after: Sequence[str] = (),
        trace_context: dict[str, str] | None = None,
    ) -> Future[SubmitOutcome]:
        """Check and queue a task; the Future resolves once it is durable. With `not_before` (Unix seconds) or
        `delay` (seconds) it is claimed no earlier than that; with `after` (task ids), only once they all succeeded.

        Raises at once (nothing stored) for requests that cannot be accepted: InvalidRequest, ShuttingDown;
        the Future fails with TaskConflict or QueueFull.
        """
        now = self._clock.time()
        spec = SubmitSpec(
            task_type, args or {}, task_id or "", time_limit, priority, labels or {}, not_before, delay, retention,
            tuple(after), trace_context or {},
        )  # fmt: skip
        new = self._admission.check(spec, now)
        self._refuse_when_draining()
        answer: Future[SubmitOutcome] = Future()
        self.board.submit([new], now, then=lambda answers: self._submitted([new], answers, [answer]))
        return answer

    def submit_reads_storage(self, requests: Sequence[SubmitSpec]) -> bool:
        """Whether submitting these waits for storage (see Admission.reads_storage): call it off an event loop."""
        return self._admission.reads_storage(requests)

    def submit_many(self, requests: Sequence[SubmitSpec]) -> Future[list[Answer]]:
        """Submit each request as submit_async() would, all new tasks in one durable commit.

        The Future resolves to one answer per request, in order: a SubmitOutcome, or the error that
        request alone was refused with (one bad request does not fail the others).
        """
        now = self._clock.time()
        checked = self._admission.check_each(requests, now)
        if self._phase is not Phase.SERVING:
            checked = [item if isinstance(item, TaskServiceError) else ShuttingDown() for item in checked]
        result: Future[list[Answer]] = Future()
        new = [item for item in checked if isinstance(item, NewTask)]

        def answered(answers: list[Answer]) -> None:
            self._submitted(new, answers, [])
            told = iter(answers)
            settle(result, [item if isinstance(item, TaskServiceError) else next(told) for item in checked])

        if new:
            self.board.submit(new, now, then=answered)
        else:
            result.set_result(list(checked))  # type: ignore[arg-type]
        return result

    def _refuse_when_draining(self) -> None:
        if self._phase is not Phase.SERVING:
            raise ShuttingDown()

    def _submitted(self, new: list[NewTask], answers: list[Answer], futures: list[Future[SubmitOutcome]]) -> None:
        """On the board's thread: tell the listeners of the tasks created, then the callers."""
        with self._table.lock:
            for answer in answers:
                if isinstance(answer, SubmitOutcome) and answer.created:
                    self._table.notify(answer.task, None)
        for future, answer in zip(futures, answers, strict=False):
            settle(future, answer)

    # ----------------------------------------------------------------- read

    def get(self, task_id: str) -> Task:
        task = self._table.copy_of(task_id) or self.board.get(task_id)
        if task is None:
            raise TaskNotFound(task_id)
        return task

    def get_now(self, task_id: str) -> Task | None:
        """get() when it needs no read of storage (a task running here, or held in the board's memory); else None.
        For callers on an event loop, which must not wait on a disk or a network."""
        return self._table.copy_of(task_id) or self.board.peek(task_id)

    def list(self, task_filter: TaskFilter, page_size: int, after: ListPosition | None = None,
             order: TaskOrder = NEWEST_FIRST) -> TaskPage:  # fmt: skip
        """A page of tasks in `order`; those this node runs as they are now. The next starts after the last read."""
        found = self.board.list(task_filter, order=order, after=after, limit=page_size + 1)
        following = order.after(found[page_size - 1]) if len(found) > page_size else None
        tasks = [t for t in self._table.overlay(found[:page_size]) if task_filter.matches(t)]  # they may move on
        return TaskPage(tasks, following)

    # ----------------------------------------------------------------- watch

    def watch(self, task_id: str, watcher: Watcher, after_sequence: int = 0) -> bool:
        """Attach a watcher (see watching.py); False when nothing will come (resumed after the task's end)."""
        return self._watching.watch(task_id, watcher, after_sequence)

    def watch_now(self, task_id: str, watcher: Watcher, after_sequence: int = 0) -> bool | None:
        """watch() when it needs no read of storage; else None (the caller calls watch() where it may wait)."""
        return self._watching.watch_now(task_id, watcher, after_sequence)

    def unwatch(self, task_id: str, watcher: Watcher) -> None:
        self.events.unsubscribe(task_id, watcher)

    def snapshot(self, task: Task) -> TaskEvent:
        return self._table.snapshot(task)

    # ----------------------------------------------------------------- stop

    def stop(self, task_id: str, reason: str = "") -> Task:
        """Stop a task and wait until a PENDING one is durably REVOKED. See stop_async()."""
        return self.stop_async(task_id, reason).result()

    def stop_async(self, task_id: str, reason: str = "") -> Future[Task]:
        """PENDING -> REVOKED (never runs); RUNNING -> STOPPING, REVOKED when the handler ends;
        finished: unchanged. The Future resolves to the task as it is after the request (see stopping.py).
        """
        return self._stopping.stop_async(task_id, reason)

    def stop_matching(self, task_filter: TaskFilter, reason: str = "") -> StopCount:
        """Stop every unfinished task matching `task_filter` when this starts; see Stopping.stop_matching()."""
        return self._stopping.stop_matching(task_filter, reason, self.list)

    def retry_async(self, task_id: str, reason: str = "") -> Future[Task]:
        """Run an ended task again as its next attempt; see EndedTasks.retry_async()."""
        self._refuse_when_draining()
        return self._ended.retry_async(task_id, reason)

    def delete_async(self, task_id: str) -> Future[Task]:
        """Delete an ended task now; see EndedTasks.delete_async()."""
        return self._ended.delete_async(task_id)

    def delete_matching(self, task_filter: TaskFilter, ended_before: float | None) -> int:
        """Delete every ended task matching the filter (ended before `ended_before`, if given); how many."""
        return self._ended.delete_matching(task_filter, ended_before)

    # ----------------------------------------------------------------- introspection

    def task_types(self) -> builtins.list[TypeInfo]:
        """The registered task types, by name, with what each takes."""
        return [describe(kind) for kind in sorted(self._registry, key=lambda kind: kind.name)]

    def stats(self) -> ManagerStats:
        busy, running = self._workers.busy(), len(self._table.runs)  # a count: no lock needed
        queued = self.board.queued()
        return ManagerStats(
            workers=self._workers.alive(), busy_workers=busy, abandoned_handlers=self._workers.abandoned(),
            queued=queued, live=queued + running, watchers=self.events.watcher_count(),
            store_commits=self.board.commits(),
            worker_pids=tuple(self._processes.pids()) if self._processes is not None else (),
            processes_replaced=self._processes.replaced if self._processes is not None else 0,
        )  # fmt: skip
