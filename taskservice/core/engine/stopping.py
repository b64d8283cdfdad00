"""Stop requests. A task this node runs is stopped here at once (STOPPING, then REVOKED when its handler returns);
any other is asked of the board: a PENDING one is revoked there, a running one is flagged for its owner, who
finds the flag through Board.stops_for() (the watchdog looks on a hint and at every poll).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import replace
from typing import Any

from taskservice.core.board.base import Board, StopEffect, StopResult
from taskservice.core.engine.clock import Clock
from taskservice.core.engine.finishing import Finisher
from taskservice.core.engine.runs import Run, RunTable
from taskservice.core.engine.validation import MAX_STOP_REASON
from taskservice.core.model.errors import TaskNotFound
from taskservice.core.model.listing import ListPage, every_match
from taskservice.core.model.models import ErrorType, StopCount, Task, TaskError, TaskFilter, TaskState

# A bulk stop: the states it stops, and how many tasks it lists at a time.
STOPPABLE_STATES = frozenset({TaskState.PENDING, TaskState.RUNNING})
STOP_PAGE_SIZE = 1000


def settle(future: Future[Any], outcome: Any) -> None:
    """Resolve a caller's Future, unless the caller cancelled it (an RPC whose client gave up)."""
    try:
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
    except InvalidStateError:
        pass


class Stopping:
    def __init__(
        self,
        table: RunTable,
        board: Board,
        finisher: Finisher,
        clock: Clock,
        on_stopped: Callable[[str, Future[Task]], None] = lambda task_id, stopped: None,
    ) -> None:
        """`on_stopped(task_id, future)`: told of every Stop asked (the future resolves to the task after it); the
        children of a stopped task are stopped through it (engine/children.py)."""
        self._on_stopped = on_stopped
        self._table = table
        self._board = board
        self._finisher = finisher
        self._clock = clock
        # Stops the board asked of tasks this node claimed but had not registered yet (claimed that moment).
        self._early: dict[str, str] = {}

    def stop_async(self, task_id: str, reason: str = "") -> Future[Task]:
        """PENDING -> REVOKED (never runs); RUNNING -> STOPPING, REVOKED when the handler ends;
        finished: unchanged. The Future resolves to the task as it is after the request.
        """
        reason = reason[:MAX_STOP_REASON]
        return self.stop_because(task_id, f"stopped by a client: {reason}" if reason else "stopped by a client")

    def stop_displaced(self, stops: list[tuple[str, str]]) -> None:
        """Older tasks a STOP_OLDEST limit gives up for newer ones (task id, why): stopped as a Stop would."""
        for task_id, why in stops:
            self.stop_because(task_id, why)

    def stop_because(self, task_id: str, why: str) -> Future[Task]:
        """stop_async() with the task's error message `why` (a limit's STOP_OLDEST names itself)."""
        result: Future[Task] = Future()
        with self._table.lock:
            run = self._table.runs.get(task_id)
            if run is not None:
                self._finisher.stop(run, TaskState.REVOKED, TaskError(ErrorType.REVOKED, why))
                snapshot = run.task.copy()
        if run is not None:
            result.set_result(snapshot)
        else:
            self._board.request_stop(
                task_id, why, self._clock.time(), then=lambda done, error: self._asked(task_id, done, error, result)
            )
        self._on_stopped(task_id, result)
        return result

    def stop_matching(self, task_filter: TaskFilter, reason: str, list_page: ListPage) -> StopCount:
        """Stop every unfinished task matching `task_filter` when this starts (PENDING and RUNNING ones when it
        names no state), as stop_async() each, newest first, a page at a time; waits until the PENDING ones are
        durably REVOKED. Tasks submitted meanwhile are left alone."""
        states = (task_filter.states or STOPPABLE_STATES) & STOPPABLE_STATES
        wanted = replace(task_filter, states=frozenset(states))
        asked = [self.stop_async(task.task_id, reason) for task in every_match(list_page, wanted, STOP_PAGE_SIZE)]
        # A task another server runs comes back RUNNING, its stop flagged for its owner.
        states_after = [future.result().state for future in asked]
        stopping = sum(1 for state in states_after if state in (TaskState.RUNNING, TaskState.STOPPING))
        return StopCount(revoked=states_after.count(TaskState.REVOKED), stopping=stopping)

    def _asked(self, task_id: str, done: StopResult | None, error: BaseException | None, result: Future[Task]) -> None:
        """On the board's thread: what the board did with a Stop of a task this node did not hold."""
        if error is not None or done is None:
            settle(result, error if error is not None else TaskNotFound(task_id))
            return
        if done.effect is StopEffect.REVOKED:
            with self._table.lock:
                self._table.show(done.task, TaskState.PENDING)
        settle(result, done.task)

    def act_on(self, asked: list[tuple[str, int, str]]) -> None:
        """Stops the board passed on for this node's runs (Board.stops_for)."""
        with self._table.lock:
            for task_id, attempt, reason in asked:
                run = self._table.runs.get(task_id)
                if run is None:
                    self._early[task_id] = reason  # registered in a moment: see registered()
                elif run.task.attempt == attempt:
                    self._finisher.stop(run, TaskState.REVOKED, TaskError(ErrorType.REVOKED, reason))

    def registered(self, run: Run) -> None:
        """A run just joined the table: stop it if a Stop came while it was being claimed. Holds lock."""
        why = self._early.pop(run.task_id, None)
        if why is not None:
            self._finisher.stop(run, TaskState.REVOKED, TaskError(ErrorType.REVOKED, why))
