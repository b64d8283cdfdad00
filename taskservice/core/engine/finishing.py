"""How a run ends: decided once (by its handler, a stop, the watchdog, a shutdown or a lost lease), written on the
board, and shown to watchers and listeners only once the board made it durable.

Nobody waits for an end's write: the worker goes on with its next task. Ends of handlers that return at once are
held a moment and written together (up to MAX_HELD_ENDS, or HOLD_ENDS_SECONDS, or when a worker has nothing
else to do), so that a deep queue of short tasks costs one board write per batch rather than one per task. A
write the storage refuses is tried again every second (a full disk) and shown when it succeeds.
"""

from __future__ import annotations

import logging
import random
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from taskservice.core.board.base import Board
from taskservice.core.engine.clock import Clock
from taskservice.core.engine.runs import Phase, Run, RunTable
from taskservice.core.engine.throttle import ThrottledLog
from taskservice.core.handlers.execution import Outcome
from taskservice.core.handlers.logs import Logs
from taskservice.core.handlers.registry import TaskRegistry
from taskservice.core.model.models import ErrorType, Task, TaskError, TaskState

log = logging.getLogger("taskservice.core.engine.manager")

# How long to wait between tries when the storage refuses an end.
END_WRITE_RETRY_SECONDS = 1.0
# Ends held to be written together: at most this many, for at most this long (the watchdog writes them then).
MAX_HELD_ENDS = 256
HOLD_ENDS_SECONDS = 0.005


def ended_copy(task: Task, state: TaskState, now: float, *, result: Any = None, error: TaskError | None = None) -> Task:
    """The task as it ends (`state` terminal), or as a shutdown or retry sends it back (PENDING)."""
    final = task.copy()
    final.state = state
    final.result = result
    final.error = error
    final.ended_at = now if state.is_terminal else None
    final.event_sequence = task.event_sequence + 1
    return final


class Finisher:
    def __init__(
        self,
        table: RunTable,
        board: Board,
        registry: TaskRegistry,
        clock: Clock,
        *,
        phase: Callable[[], Phase],
        stop_grace: float,
        logs: Logs | None,
        replace_worker: Callable[[], None],
        wake_watchdog: Callable[[], None],
    ) -> None:
        self._table = table
        self._board = board
        self._registry = registry
        self._clock = clock
        self._phase = phase
        self._stop_grace = stop_grace
        self._logs = logs
        self._replace_worker = replace_worker
        self._wake_watchdog = wake_watchdog
        self._rng = random.Random()
        self._refused = ThrottledLog(log)
        # Tells drain() that a run left the table.
        self.gone = threading.Condition(table.lock)
        # Ends decided and not yet handed to the board, with the monotonic time the first was held.
        self._held: list[tuple[Run, Task]] = []
        self.held_since: float | None = None
        # Ends and requeues the storage refused, tried again together once a second by one timer (a long outage
        # must not make a thread per end, nor lose the batching of ends).
        self._refused_lock = threading.Lock()
        self._refused_ends: list[tuple[Run, Task]] = []
        self._refused_requeues: list[tuple[Run, Task, float]] = []
        self._retry_timer: threading.Timer | None = None

    # ------------------------------------------------------------------ deciding

    def conclude(self, run: Run, outcome: Outcome) -> bool:
        """The handler returned: decide the end (or a retry) and write it, or hold it to be written with others.
        True when held ends should be written now (enough of them)."""
        with self._table.lock:
            if run.finalized or self._phase() is Phase.CLOSED:
                return False
            run.finalized = True
            try:
                pending, due = self._decide(run, outcome)
            except Exception as exc:  # a bug deciding must end the run all the same, never leave it owned by nobody
                log.exception("task %s: the server failed deciding how its run ended", run.task_id)
                self._log_failure(run.task_id, exc)
                error = TaskError(ErrorType.SERVER_ERROR, f"the server failed ending this run ({type(exc).__name__}: "
                                  f"{exc}); the traceback is in the task's log")  # fmt: skip
                pending, due = ended_copy(run.task, TaskState.FAILURE, self._clock.time(), error=error), None
            if pending.state is not TaskState.PENDING and not run.stop_event.is_set():
                if not self._held:
                    self.held_since = self._clock.monotonic()
                    self._wake_watchdog()  # it writes them if nobody else does soon
                self._held.append((run, pending))
                return len(self._held) >= MAX_HELD_ENDS
        if pending.state is TaskState.PENDING:
            self.requeue(run, pending, due if due is not None else self._clock.time())
        else:  # a stopped run: someone waits for its end (a Stop's caller, a shutdown), so it is written at once
            self.write_end(run, pending)
        return False

    def write_held(self) -> None:
        """Hand the held ends to the board, together."""
        with self._table.lock:
            held, self._held, self.held_since = self._held, [], None
        if held:
            self.write_ends(held)

    def _decide(self, run: Run, outcome: Outcome) -> tuple[Task, float | None]:
        """The task as this run leaves it, and when it runs again if it is retried. Holds lock."""
        due = self._retry_due(run, outcome)
        if due is not None:
            log.info("task %s failed on attempt %d; retrying in %.2f s", run.task_id, run.task.attempt,
                     due - self._clock.time())  # fmt: skip
            return ended_copy(run.task, TaskState.PENDING, self._clock.time(), error=outcome.error), due
        if outcome.state is None or run.stop_event.is_set():
            state = run.stop_state or TaskState.REVOKED
            error = run.stop_error or TaskError(ErrorType.REVOKED, "stopped")
            return ended_copy(run.task, state, self._clock.time(), error=error), None
        return ended_copy(run.task, outcome.state, self._clock.time(), result=outcome.result, error=outcome.error), None

    def _log_failure(self, task_id: str, exc: BaseException) -> None:
        if self._logs is not None:
            text = "".join(traceback.format_exception(exc))
            self._logs.append(task_id, f"the server failed ending this run:\n{text}".encode("utf-8", "replace"))

    def _retry_due(self, run: Run, outcome: Outcome) -> float | None:
        """When a failed run is tried again, by its type's retry policy; None: it is not. Holds lock."""
        kind = self._registry.get(run.task.task_type)
        if (
            outcome.state is not TaskState.FAILURE
            or run.stop_event.is_set()
            or kind is None
            or kind.retry is None
            or not kind.retry.should_retry(outcome.exception, run.task.attempt)
        ):
            return None
        return self._clock.time() + kind.retry.delay(run.task.attempt, self._rng)

    def stop(self, run: Run, state: TaskState, error: TaskError) -> None:
        """Ask a running handler to stop (STOPPING now, `state` once it returns); the watchdog abandons it after
        the grace. Holds lock."""
        if run.finalized or run.stop_event.is_set():
            return
        run.stop_state = state
        run.stop_error = error
        run.stop_event.set()
        run.grace_deadline = self._clock.monotonic() + self._stop_grace
        self._table.change_state(run, TaskState.STOPPING)
        self._board.mark_stopping(run.claim, run.task.copy(), then=_ignore_fenced)
        self._wake_watchdog()

    def abandon(self, run: Run) -> None:
        """The handler ignored a stop past the grace: end the task without it and replace its worker."""
        with self._table.lock:
            if run.finalized or self._phase() is Phase.CLOSED:
                return
            run.finalized = True
            if run.worker is not None:
                run.worker.retired = True
            if self._phase() is Phase.SERVING:
                self._replace_worker()
            state = run.stop_state or TaskState.REVOKED
            base = run.stop_error.message if run.stop_error else "stopped"
            error = TaskError(
                run.stop_error.type if run.stop_error else ErrorType.REVOKED,
                f"{base}; the handler did not return within the {self._stop_grace:g} s stop grace "
                "and was abandoned (its late result is discarded)",
            )
            final = ended_copy(run.task, state, self._clock.time(), error=error)
        log.warning("task %s: handler ignored the stop and was abandoned", run.task_id)
        if state is TaskState.PENDING:
            self.requeue(run, final, self._clock.time())
        else:
            self.write_end(run, final)

    def fail(self, run: Run, error: TaskError) -> None:
        """End a run whose worker broke around it (never expected: see execution.py)."""
        with self._table.lock:
            if run.finalized:
                return
            run.finalized = True
            final = ended_copy(run.task, TaskState.FAILURE, self._clock.time(), error=error)
        self.write_end(run, final)

    def lose(self, run: Run) -> None:
        """Its lease is gone (another node may own the task now): stop the handler, write and show nothing."""
        with self._table.lock:
            run.lost = True
            run.finalized = True
            run.stop_event.set()
            self._table.runs.pop(run.task_id, None)
            self.gone.notify_all()
        log.warning("task %s: this server lost its lease on attempt %d; its outcome is discarded",
                    run.task_id, run.task.attempt)  # fmt: skip

    # ------------------------------------------------------------------ writing and showing

    def write_end(self, run: Run, final: Task) -> None:
        self.write_ends([(run, final)])

    def write_ends(self, ends: list[tuple[Run, Task]]) -> None:
        def written(applied: list[bool], error: BaseException | None) -> None:
            if error is not None:
                self._write_later(error, ends=ends)
            else:
                self._shown_many(
                    [(run, final if mine else None) for (run, final), mine in zip(ends, applied, strict=True)]
                )

        self._board.finish_many([(run.claim, final) for run, final in ends], then=written)

    def requeue(self, run: Run, pending: Task, due: float) -> None:
        def written(applied: bool, error: BaseException | None) -> None:
            if error is not None:
                self._write_later(error, requeues=[(run, pending, due)])
            else:
                self._shown(run, pending if applied else None)

        self._board.retry_at(run.claim, pending, due, then=written)

    def _write_later(
        self,
        error: BaseException,
        *,
        ends: Sequence[tuple[Run, Task]] = (),
        requeues: Sequence[tuple[Run, Task, float]] = (),
    ) -> None:
        if self._phase() is Phase.CLOSED:
            return  # the next start reaps the tasks
        first = (ends or requeues)[0][1]
        more = f" (and {len(ends) + len(requeues) - 1} more)" if len(ends) + len(requeues) > 1 else ""
        self._refused.log(
            "task %s: cannot record %s yet%s, retrying: %s", first.task_id, first.state.value, more, error
        )
        with self._refused_lock:
            self._refused_ends.extend(ends)
            self._refused_requeues.extend(requeues)
            if self._retry_timer is None:
                self._retry_timer = threading.Timer(END_WRITE_RETRY_SECONDS, self._write_refused)
                self._retry_timer.daemon = True
                self._retry_timer.start()

    def _write_refused(self) -> None:
        """The timer's turn: every refused end in one batch, and the refused requeues."""
        with self._refused_lock:
            ends, self._refused_ends = self._refused_ends, []
            requeues, self._refused_requeues = self._refused_requeues, []
            self._retry_timer = None
        if ends:
            self.write_ends(ends)
        for run, pending, due in requeues:
            self.requeue(run, pending, due)

    def _shown(self, run: Run, written: Task | None) -> None:
        self._shown_many([(run, written)])

    def _shown_many(self, ends: list[tuple[Run, Task | None]]) -> None:
        """On the board's thread: the writes are durable (written), or were refused by the fence (None)."""
        refused = []
        with self._table.lock:
            for run, written in ends:
                if self._table.runs.get(run.task_id) is run:
                    del self._table.runs[run.task_id]
                if written is not None:
                    self._table.show(written, run.task.state)
                    if self._logs is not None and written.state.is_terminal:
                        self._logs.finish(written.task_id)
                else:
                    refused.append(run)
            self.gone.notify_all()
        for run in refused:
            log.warning("task %s: its end was not written: this server no longer owns attempt %d", run.task_id,
                        run.task.attempt)  # fmt: skip


def _ignore_fenced(applied: bool, error: BaseException | None) -> None:
    """For writes whose loss changes no outcome (STOPPING: the end that follows is written anyway)."""
