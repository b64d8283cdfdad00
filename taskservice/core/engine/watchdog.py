"""The watchdog: one thread for everything that happens because time passed.

- a run's time limit passes: it is stopped (TIMED_OUT once its handler returns);
- a stopped handler ignores the stop past the grace: it is abandoned (the finisher ends it without it);
- the leases of this node's runs are renewed; a run whose lease was lost is stopped and its outcome discarded;
- expired leases on the board are reaped (LOST, or PENDING again for types safe to re-run);
- stops asked of this node's runs through the board (a Stop sent to another server) are acted on, at once on a
  hint and at every poll;
- the latest progress of the runs that moved is handed to the board.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection

from taskservice.core.board.base import Board
from taskservice.core.engine.clock import Clock
from taskservice.core.engine.finishing import HOLD_ENDS_SECONDS, Finisher
from taskservice.core.engine.runs import Phase, Run, RunTable
from taskservice.core.engine.throttle import ThrottledLog
from taskservice.core.model.errors import TaskServiceError
from taskservice.core.model.models import ErrorType, TaskError, TaskState

log = logging.getLogger("taskservice.core.engine.manager")


class Watchdog:
    def __init__(
        self,
        table: RunTable,
        board: Board,
        finisher: Finisher,
        clock: Clock,
        *,
        node: str,
        phase: Callable[[], Phase],
        lease_seconds: float,
        renew_seconds: float,
        reap_seconds: float,
        progress_seconds: float,
        poll_seconds: float,
        rerunnable: Callable[[], Collection[str]],
        dirty: Callable[[], list[Run]],
        act_on_stops: Callable[[list[tuple[str, int, str]]], None],
        heartbeat: Callable[[], None] = lambda: None,
    ) -> None:
        self._table = table
        self._board = board
        self._finisher = finisher
        self._clock = clock
        self._node = node
        self._phase = phase
        self._lease_seconds = lease_seconds
        self._renew_seconds = renew_seconds
        self._reap_seconds = reap_seconds
        self._progress_seconds = progress_seconds
        self._poll_seconds = poll_seconds
        self._rerunnable = rerunnable
        self._dirty = dirty
        self._act_on_stops = act_on_stops
        self._heartbeat = heartbeat
        self._wake = threading.Condition(table.lock)
        self._thread: threading.Thread | None = None
        now = clock.monotonic()
        self._next_renew = now + renew_seconds
        self._next_reap = now + reap_seconds
        self._next_progress = now + progress_seconds
        self._next_stops = now + poll_seconds
        self._failures = ThrottledLog(log, logging.WARNING)
        board.on_stop(self.stop_hint)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="taskservice-watchdog", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look at the clock now (a new deadline, a stop, a test's clock moved). Holds lock."""
        self._wake.notify()

    def stop_hint(self) -> None:
        """A stop may have been asked of a run here through the board: look now (any thread, no lock held)."""
        with self._table.lock:
            self._next_stops = 0.0
            self._wake.notify()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._table.lock:
                if self._phase() is Phase.CLOSED:
                    return
                abandoned = self._limits_and_graces()
            for run in abandoned:
                self._finisher.abandon(run)
            held_since = self._finisher.held_since
            if held_since is not None and self._clock.monotonic() >= held_since + HOLD_ENDS_SECONDS:
                self._finisher.write_held()
            try:
                self._periodic()
            except TaskServiceError as exc:  # the storage is away: the next round tries again
                self._failures.log("watchdog: %s", exc)
                # No server could renew while the storage was away: reaping at once when it is back would take
                # the tasks of servers that are alive and about to renew. Give them a lease's time first.
                self._next_reap = max(self._next_reap, self._clock.monotonic() + self._lease_seconds)
            except Exception:
                log.exception("watchdog round failed")
            with self._table.lock:
                if self._phase() is not Phase.CLOSED and not abandoned:
                    self._wake.wait(self._until_next())

    def _limits_and_graces(self) -> list[Run]:
        """Stop the runs past their time limit; return those past their stop grace. Holds lock."""
        now = self._clock.monotonic()
        abandoned = []
        for run in self._table.active():
            if run.grace_deadline is not None:
                if now >= run.grace_deadline:
                    abandoned.append(run)
            elif run.deadline is not None and now >= run.deadline:
                limit = run.task.time_limit or 0.0
                self._finisher.stop(
                    run,
                    TaskState.TIMED_OUT,
                    TaskError(ErrorType.TIME_LIMIT_EXCEEDED, f"time limit of {limit:g} s passed"),
                )
        return abandoned

    def _until_next(self) -> float:
        """Seconds to the next thing due. Holds lock."""
        due = [self._next_renew, self._next_reap, self._next_progress, self._next_stops]
        if self._finisher.held_since is not None:
            due.append(self._finisher.held_since + HOLD_ENDS_SECONDS)
        for run in self._table.active():
            deadline = run.grace_deadline if run.grace_deadline is not None else run.deadline
            if deadline is not None:
                due.append(deadline)
        return max(0.0, min(due) - self._clock.monotonic())

    def _periodic(self) -> None:
        now = self._clock.monotonic()
        if now >= self._next_progress:
            self._next_progress = now + self._progress_seconds
            runs = self._dirty()
            if runs:
                with self._table.lock:
                    updates = [(run.claim, run.task.progress, run.task.event_sequence) for run in runs]
                self._board.save_progress(updates)
        if now >= self._next_stops:
            self._next_stops = now + self._poll_seconds
            self.act_on_stops()
        if now >= self._next_renew:
            self._next_renew = now + self._renew_seconds
            self.renew()
        if now >= self._next_reap:
            self._next_reap = now + self._reap_seconds
            self.reap()

    def renew(self) -> None:
        """Extend this node's leases (and say it is alive); stop the runs whose lease was lost."""
        self._heartbeat()
        with self._table.lock:
            runs = {run.task_id: run for run in self._table.runs.values() if not run.lost}
        if not runs:
            return
        renewal = self._board.renew(
            self._node, [run.claim for run in runs.values()], self._clock.time() + self._lease_seconds
        )
        for claim in renewal.lost:
            run = runs.get(claim.task_id)
            if run is not None:
                self._finisher.lose(run)

    def act_on_stops(self) -> None:
        """Stop the runs here that a Stop sent through the board asked for."""
        asked = self._board.stops_for(self._node)
        if asked:
            self._act_on_stops(asked)

    def reap(self) -> None:
        """Take the tasks whose lease expired (here: of servers that died) and show what became of them."""
        changed = self._board.reap(self._clock.time(), self._rerunnable())
        if changed:
            with self._table.lock:
                for task, previous in changed:
                    self._table.show(task, previous)
