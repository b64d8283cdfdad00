"""GetStats on the SQL boards: counts the dialects' queries make (Queries.task_counts, started_by_minute,
ended_by_minute), read on the caller's thread like every read."""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable
from typing import Any

from taskservice.core.board.sql.queries import Cursor, Queries
from taskservice.core.model.models import TaskState
from taskservice.core.model.stats import STATS_MINUTES, LimitCount, MinuteCounts, TaskCount, per_minute


class StatsStore:
    _q: Queries
    _read: Callable[[Callable[[Cursor], Any]], Any]
    _minutes: SettledMinutes  # SqlBoard's

    def task_counts(self) -> builtins.list[TaskCount]:
        """How many tasks of each type are in each state now (only the pairs that have any)."""
        rows = self._read(lambda cur: self._q.task_counts(cur))
        return [TaskCount(task_type, TaskState(state), int(count)) for task_type, state, count in rows]

    def limit_counts(self) -> builtins.list[LimitCount]:
        """Each limit's running tasks, and those its full groups hold back (this server's last claim's view)."""
        waiting = self.held_back_counts()  # type: ignore[attr-defined]  # LimitStore's, beside this in SqlBoard
        limits = self.list_limits("", 1000)  # type: ignore[attr-defined]
        running = self._read(lambda cur: {limit.limit_id: self._q.running_covered(cur, limit.spec) for limit in limits})
        return [LimitCount(limit.limit_id, running[limit.limit_id], waiting.get(limit.limit_id, 0)) for limit in limits]

    def minute_counts(self, now: float) -> builtins.list[MinuteCounts]:
        """The last STATS_MINUTES minutes up to now's: starts and ends in each (minutes settled are counted once)."""

        def read(since: float) -> Counted:
            def counted(cur: Cursor) -> Counted:
                started = {int(minute): int(n) for minute, n in self._q.started_by_minute(cur, since)}
                ended = {(int(minute), state): int(n) for minute, state, n in self._q.ended_by_minute(cur, since)}
                return started, ended

            found: Counted = self._read(counted)
            return found

        return self._minutes.counts(now, read)


# Starts by minute, and ends by (minute, state).
Counted = tuple[dict[int, int], dict[tuple[int, str], int]]
# A minute's counts are kept once this long past its end: a start or end is written well within it (the commit of
# a run that ended), so a later count would find the same.
SETTLE_SECONDS = 30.0


class SettledMinutes:
    """The counts of the settled minutes of the last hour, so that each GetStats reads only the minutes since: with
    100,000 tasks ended in the hour, counting all of them took 0.1 s at every overview refresh."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._through: int | None = None  # the last minute counted and kept
        self._started: dict[int, int] = {}
        self._ended: dict[tuple[int, str], int] = {}

    def counts(self, now: float, read_since: Callable[[float], Counted]) -> builtins.list[MinuteCounts]:
        first = int(now // 60) - STATS_MINUTES + 1
        settled = int((now - SETTLE_SECONDS) // 60) - 1
        with self._lock:
            through = self._through
            if through is None or through < first - 1 or through > settled:  # none yet, an hour old, or time went back
                through, self._started, self._ended = first - 1, {}, {}
            started, ended = read_since((through + 1) * 60.0)
            started.update(self._started)
            ended.update(self._ended)
            self._started = {m: n for m, n in started.items() if first <= m <= settled}
            self._ended = {key: n for key, n in ended.items() if first <= key[0] <= settled}
            self._through = max(settled, first - 1)
        return per_minute(started, ended, now)
