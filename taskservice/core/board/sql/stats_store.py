"""GetStats on the SQL boards: counts the dialects' queries make (Queries.task_counts, started_by_minute,
ended_by_minute), read on the caller's thread like every read."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

from taskservice.core.board.sql.queries import Cursor, Queries
from taskservice.core.model.models import TaskState
from taskservice.core.model.stats import STATS_MINUTES, LimitCount, MinuteCounts, TaskCount, per_minute


class StatsStore:
    _q: Queries
    _read: Callable[[Callable[[Cursor], Any]], Any]

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
        """The last STATS_MINUTES minutes up to now's: starts and ends in each."""
        since = (int(now // 60) - STATS_MINUTES + 1) * 60.0

        def read(cur: Cursor) -> builtins.list[MinuteCounts]:
            started = {int(minute): int(n) for minute, n in self._q.started_by_minute(cur, since)}
            ended = {(int(minute), state): int(n) for minute, state, n in self._q.ended_by_minute(cur, since)}
            return per_minute(started, ended, now)

        counts: builtins.list[MinuteCounts] = self._read(read)
        return counts
