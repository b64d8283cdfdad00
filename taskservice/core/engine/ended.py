"""What happens to a task once it has ended: run again by hand, deleted by hand, or deleted once kept long enough.

A deleted task leaves nothing behind on this server: its row (the board), its log, the events a reconnecting
watcher could have replayed, and the copy kept of recent changes. Other servers of a shared database keep no
copy of tasks they did not run but the events their watchers saw, which go as those channels age out.
"""

from __future__ import annotations

from concurrent.futures import Future

from taskservice.core.board.base import Board
from taskservice.core.engine.clock import Clock
from taskservice.core.engine.retention import EXPIRE_BATCH, RetentionSweeper
from taskservice.core.engine.runs import RunTable
from taskservice.core.engine.stopping import settle
from taskservice.core.engine.validation import MAX_STOP_REASON, one_line
from taskservice.core.handlers.logs import Logs
from taskservice.core.model.errors import TaskNotFound
from taskservice.core.model.events import EventHub
from taskservice.core.model.models import Task, TaskFilter, TaskState


class EndedTasks:
    def __init__(
        self, table: RunTable, board: Board, clock: Clock, logs: Logs | None, events: EventHub, retention: float
    ) -> None:
        self._table = table
        self._board = board
        self._clock = clock
        self._logs = logs
        self._events = events
        self._sweeper = RetentionSweeper(board, clock, retention, self.forget)

    def start(self) -> None:
        self._sweeper.start()

    def close(self) -> None:
        self._sweeper.close()

    def retry_async(self, task_id: str, reason: str = "") -> Future[Task]:
        """A task that ended FAILURE, TIMED_OUT, REVOKED or LOST runs again: PENDING now, its next claim is its next
        attempt. The Future resolves to the PENDING task once durable; fails with WrongState (another state) or
        TaskNotFound. `reason` goes to the task's log, where its next attempt's output follows."""
        reason = reason[:MAX_STOP_REASON]
        result: Future[Task] = Future()

        def done(answer: tuple[Task, TaskState] | None, error: BaseException | None) -> None:
            if error is not None or answer is None:
                settle(result, error if error is not None else TaskNotFound(task_id))
                return
            task, previous = answer
            if self._logs is not None:
                why = f": {one_line(reason)}" if reason else ""
                self._logs.append(task_id, f"[taskservice: retried by hand after {previous.value}{why}]\n".encode())
            with self._table.lock:
                self._table.show(task, previous)
            settle(result, task)

        self._board.retry(task_id, self._clock.time(), then=done)
        return result

    def delete_async(self, task_id: str) -> Future[Task]:
        """Delete an ended task now, with its log. The Future resolves to the task as it was; fails with
        WrongState for an unfinished task (stop it first) or TaskNotFound."""
        result: Future[Task] = Future()

        def done(task: Task | None, error: BaseException | None) -> None:
            if error is None and task is not None:
                self.forget([task_id])
            settle(result, error if error is not None else task or TaskNotFound(task_id))

        self._board.delete(task_id, then=done)
        return result

    def delete_matching(self, task_filter: TaskFilter, ended_before: float | None) -> int:
        """Delete every ended task matching the filter (that ended before `ended_before`, if given), a batch at a
        time; how many. Waits for the disk: call it off the event loop."""
        total = 0
        while True:
            gone = self._board.delete_ended(task_filter, ended_before, EXPIRE_BATCH)
            self.forget(gone)
            total += len(gone)
            if len(gone) < EXPIRE_BATCH:
                return total

    def forget(self, task_ids: list[str]) -> None:
        """Drop what this server keeps of deleted tasks besides their rows."""
        if not task_ids:
            return
        if self._logs is not None:
            self._logs.delete(task_ids)
        self._events.forget(task_ids)
        with self._table.lock:
            for task_id in task_ids:
                self._table.recent.pop(task_id, None)
