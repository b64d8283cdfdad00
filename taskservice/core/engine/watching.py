"""Attaching a watcher to a task: a snapshot (or a replay after a sequence), then every event, none twice or missed.

The snapshot and the subscription must see the same moment. For a task this node runs, both happen under the run
table's lock, which every publication takes. For another task the board is read without the lock (the read may
wait on a disk or a network), and whatever this node showed of the task meanwhile is found in RunTable.recent.
"""

from __future__ import annotations

from taskservice.core.board.base import Board
from taskservice.core.engine.runs import RunTable
from taskservice.core.model.errors import SequenceOutOfRange, TaskNotFound
from taskservice.core.model.events import EventHub, Watcher
from taskservice.core.model.models import Task


def _ahead(task_id: str, after_sequence: int, latest: int) -> SequenceOutOfRange:
    return SequenceOutOfRange(
        f"after_sequence {after_sequence} is ahead of task {task_id!r}'s latest event ({latest}); watch again from 0"
    )


class Watching:
    def __init__(self, table: RunTable, board: Board, events: EventHub) -> None:
        self._table = table
        self._board = board
        self._events = events

    def watch(self, task_id: str, watcher: Watcher, after_sequence: int = 0) -> bool:
        """Attach a watcher. With after_sequence=0 it first gets a snapshot event of the task as it is now,
        then every later event; otherwise the events after that sequence. A watcher of a finished task
        gets its terminal snapshot. Raises TaskNotFound or SequenceOutOfRange.

        False when nothing will come: the task ended at exactly `after_sequence` (a watcher that saw the
        terminal event but not the end of its stream, resuming).
        """
        watcher.last_sequence = after_sequence
        with self._table.lock:
            run = self._table.runs.get(task_id)
            if run is not None:  # this node runs it: everything shown of it passes under this lock
                self._attach(run.task, watcher, after_sequence)
                return True
        stored = self._board.get(task_id)  # read without the lock: it may take a round trip
        with self._table.lock:
            run = self._table.runs.get(task_id)
            if run is not None:  # claimed meanwhile
                self._attach(run.task, watcher, after_sequence)
                return True
            shown = self._table.recent.get(task_id)  # changed meanwhile, by something this node showed
            if shown is not None and (stored is None or shown.event_sequence > stored.event_sequence):
                stored = shown.copy()
            if stored is None:
                raise TaskNotFound(task_id)
            if not stored.state.is_terminal:
                self._attach(stored, watcher, after_sequence)
                return True
        return self._watch_ended(stored, watcher, after_sequence)

    def watch_now(self, task_id: str, watcher: Watcher, after_sequence: int = 0) -> bool | None:
        """watch() when it needs no read of storage (an unfinished task held in memory, or one whose end this node
        showed a moment ago); else None, and the caller calls watch() where waiting is allowed."""
        watcher.last_sequence = after_sequence
        with self._table.lock:
            run = self._table.runs.get(task_id)
            task = run.task if run is not None else self._board.peek(task_id)
            if task is not None and not task.state.is_terminal:
                self._attach(task, watcher, after_sequence)
                return True
            # On a board of its own, what this node showed last is the task's latest state; another node sharing the
            # board may have retried it since, so there the board is read.
            shown = self._table.recent.get(task_id) if run is None and self._board.exclusive else None
            if shown is not None and shown.state.is_terminal:  # its end, durable: only a retry here changes it
                return self._watch_ended(shown.copy(), watcher, after_sequence)
            return None

    def _attach(self, task: Task, watcher: Watcher, after_sequence: int) -> None:
        """A watcher of an unfinished task, from a snapshot or after a sequence. Holds lock."""
        if after_sequence > task.event_sequence:
            raise _ahead(task.task_id, after_sequence, task.event_sequence)
        if after_sequence == 0:
            watcher.push(self._table.snapshot(task))
        self._events.subscribe(task.task_id, watcher, after_sequence, live_sequence=task.event_sequence)

    def _watch_ended(self, stored: Task, watcher: Watcher, after_sequence: int) -> bool:
        if after_sequence == 0:
            watcher.push(self._table.snapshot(stored))
            return True
        if after_sequence == stored.event_sequence:
            return False
        if after_sequence > stored.event_sequence:
            raise _ahead(stored.task_id, after_sequence, stored.event_sequence)
        replay = self._events.subscribe(stored.task_id, watcher, after_sequence)
        if not replay:
            raise SequenceOutOfRange(
                f"task {stored.task_id!r} ended at sequence {stored.event_sequence} and no events after "
                f"{after_sequence} are kept; watch again from 0 for its final state"
            )
        return True
