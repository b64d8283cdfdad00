"""Retention: ended tasks, with their logs and what watchers could replay of them, are deleted once kept long
enough (their own retention, else --retention; 0 keeps for ever).

One thread per server sweeps now and then, in batches with a pause between them, so that a backlog (a restart after
a long stop, a retention made shorter) never holds the writer for long: Submits go on meanwhile. A sweep starts
with batches of EXPIRE_BATCH and doubles them, up to MAX_EXPIRE_BATCH, while they come back full: under a steady
load of short tasks (thousands a second) deletion must keep pace with ends, and each batch waits its turn with the
Submits at the writer. On a shared database every server sweeps; a row one server is deleting, the others skip.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from taskservice.core.board.base import Board
from taskservice.core.engine.clock import Clock
from taskservice.core.engine.throttle import ThrottledLog
from taskservice.core.model.errors import TaskServiceError

log = logging.getLogger("taskservice.core.engine.retention")

# Tasks deleted per commit: first, and at most (about 40 ms of the writer's time on SQLite), and the pause between
# two batches of one sweep.
EXPIRE_BATCH = 500
MAX_EXPIRE_BATCH = 4000
BATCH_PAUSE_SECONDS = 0.02
# How often a sweep runs: a tenth of the retention, within these bounds.
SWEEP_MIN_SECONDS = 0.2
SWEEP_MAX_SECONDS = 60.0


def sweep_interval(retention: float) -> float:
    return min(SWEEP_MAX_SECONDS, max(SWEEP_MIN_SECONDS, retention / 10))


class RetentionSweeper:
    def __init__(self, board: Board, clock: Clock, retention: float, forget: Callable[[list[str]], None]) -> None:
        """`forget(task_ids)` removes what else this server keeps of deleted tasks (logs, replayable events)."""
        self._board = board
        self._clock = clock
        self._retention = retention
        self._forget = forget
        self._stop = threading.Event()
        self._failures = ThrottledLog(log, logging.WARNING)
        self._thread: threading.Thread | None = None
        self.deleted = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="taskservice-retention", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        # Tasks with a retention of their own may expire even when the server keeps the others for ever.
        interval = sweep_interval(self._retention) if self._retention > 0 else SWEEP_MAX_SECONDS
        while not self._stop.wait(interval):
            try:
                self.sweep()
            except TaskServiceError as exc:  # the database is away: the next sweep tries again
                self._failures.log("retention: ended tasks not deleted now: %s", exc)
            except Exception:
                log.exception("retention sweep failed")

    def sweep(self) -> int:
        """Delete every ended task kept long enough now, a batch at a time; how many."""
        total = 0
        batch = EXPIRE_BATCH
        while not self._stop.is_set():
            gone = self._board.expire(self._clock.time(), self._retention, batch)
            if gone:
                self._forget(gone)
                total += len(gone)
            if len(gone) < batch:
                break
            batch = min(MAX_EXPIRE_BATCH, batch * 2)
            self._stop.wait(BATCH_PAUSE_SECONDS)
        if total:
            self.deleted += total
            log.info("retention: deleted %d ended tasks", total)
        return total

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
