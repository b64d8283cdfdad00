"""The watchers on this server of tasks that other servers run (a shared database): their changes are read from
the board twenty times a second, or at once when a sibling process says a task moved on (board.on_moved), and
shown here as if this server had made them.

Every state change reaches them (the board keeps each task's last few, with their sequences), in sequence order;
progress arrives as the owner writes it (every 0.1 s), latest wins. The stream of a watcher ends right after the
terminal event, as for a task run here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from taskservice.core.board.base import Board
from taskservice.core.engine.runs import Phase, RunTable
from taskservice.core.model.errors import TaskServiceError
from taskservice.core.model.models import Task, TaskEvent, TaskState

log = logging.getLogger(__name__)

# How often the board is asked: the progress a watcher sees lags the owner's by about this much more.
RELAY_SECONDS = 0.05


class Relay:
    def __init__(self, table: RunTable, board: Board, phase: Callable[[], Phase], now: Callable[[], float]) -> None:
        self._table = table
        self._board = board
        self._phase = phase
        self._now = now
        self._stop = threading.Event()
        self._moved = threading.Event()
        board.on_moved(self._moved.set)
        self._thread = threading.Thread(target=self._loop, name="taskservice-relay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._moved.set()
        self._thread.join(timeout=2)

    def _loop(self) -> None:
        while True:
            # A hint that a task another process runs moved on (its siblings' channel) brings the round forward.
            self._moved.wait(RELAY_SECONDS)
            self._moved.clear()
            if self._stop.is_set():
                return
            try:
                self.relay_once()
            except TaskServiceError as exc:  # the database is away: the next round tries again
                log.debug("relay: %s", exc)
            except Exception:
                log.exception("relay round failed")

    def relay_once(self) -> None:
        with self._table.lock:
            followed = self._table.events.followed_at()
            known = {task_id: seq for task_id, seq in followed.items() if task_id not in self._table.runs}
        if not known:
            return
        changed = self._board.changed_since(known)
        with self._table.lock:
            for task, transitions in changed:
                if task.task_id in self._table.runs:
                    continue  # this server took it meanwhile: it shows it itself
                shown = self._table.events.followed_at().get(task.task_id)
                if shown is not None:
                    self._show(task, transitions, shown)

    def _show(self, task: Task, transitions: list[tuple[int, str]], shown: int) -> None:
        """What happened to `task` after sequence `shown`. Holds lock."""
        for sequence, state in sorted(transitions):
            if shown < sequence < task.event_sequence:
                passed = task.copy()
                passed.state, passed.event_sequence = TaskState(state), sequence
                self._table.events.publish(self._table.snapshot(passed))
        if any(sequence == task.event_sequence for sequence, _ in transitions):
            self._table.show_elsewhere(task)  # a state change: its snapshot
        else:
            progress = task.progress
            self._table.events.publish(
                TaskEvent(task.task_id, task.event_sequence, task.state, progress, progress.updated_at or self._now())
            )
