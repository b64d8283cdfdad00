"""Limits as the board stores them: definitions in a table every server reads at each claim (limiting.py); and
what holds a PENDING task back, as far as this server knows."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import Any

from taskservice.core.board.sql.limiting import Limiter
from taskservice.core.board.sql.queries import Cursor, Queries
from taskservice.core.model.limits import Limit
from taskservice.core.model.models import Task, TaskState, WaitingFor


class LimitStore:
    _q: Queries
    _limiter: Limiter

    # SqlBoard's: a write in a transaction of its own, and a read.
    _write: Callable[[Callable[[Cursor], Any]], Any]
    _read: Callable[[Callable[[Cursor], Any]], Any]

    def add_limit(self, limit: Limit) -> tuple[Limit, bool]:
        def add(cur: Cursor) -> tuple[Limit, bool]:
            if self._q.insert_limit(cur, limit):
                return limit, True
            return self._q.limits(cur, limit.limit_id, "", 1)[0], False

        added: tuple[Limit, bool] = self._write(add)
        return added

    def get_limit(self, limit_id: str) -> Limit | None:
        found: list[Limit] = self._read(lambda cur: self._q.limits(cur, limit_id, "", 1))
        return found[0] if found else None

    def list_limits(self, after_id: str, limit: int) -> builtins.list[Limit]:
        page: list[Limit] = self._read(lambda cur: self._q.limits(cur, None, after_id, limit))
        return page

    def save_limit(self, limit: Limit) -> bool:
        return bool(self._write(lambda cur: self._q.update_limit(cur, limit)))

    def remove_limit(self, limit_id: str) -> Limit | None:
        removed: Limit | None = self._write(lambda cur: self._q.delete_limit(cur, limit_id))
        return removed

    def waiting_for(self, tasks: Sequence[Task]) -> dict[str, WaitingFor]:
        pending = [task for task in tasks if task.state is TaskState.PENDING]
        dependent = [task.task_id for task in pending if task.after]
        unmet: dict[str, list[str]] = self._read(lambda cur: self._q.waits_of(cur, dependent)) if dependent else {}
        found = {}
        for task in pending:
            limits, deps = self._limiter.holding(task), unmet.get(task.task_id, [])
            if limits or deps:
                found[task.task_id] = WaitingFor(tuple(limits), tuple(deps))
        return found

    def held_back_counts(self) -> dict[str, int]:
        """Per limit that held groups back at this server's last claim, how many PENDING tasks those groups have."""
        held = self._limiter.held
        if not held:
            return {}
        counts: dict[str, int] = self._read(lambda cur: {h[0].limit_id: self._q.held_back_count(cur, h) for h in held})
        return counts

    def oldest_ready(self, now: float) -> float | None:
        """See Queries.oldest_ready: with the groups this server's last claim found held back left out."""
        held = self._limiter.held
        oldest: float | None = self._read(lambda cur: self._q.oldest_ready(cur, held, now))
        return oldest
