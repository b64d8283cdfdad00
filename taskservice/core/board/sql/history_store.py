"""GetTaskHistory on the SQL boards: the rows each dialect's triggers write in the transaction of every change (see
the migrations that made them), read on the caller's thread like every read."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

from taskservice.core.board.sql.queries import Cursor, HistoryRow, Queries
from taskservice.core.model.history import HistoryEntry
from taskservice.core.model.models import TaskState


class HistoryStore:
    _q: Queries
    _read: Callable[[Callable[[Cursor], Any]], Any]

    def history(self, task_id: str) -> builtins.list[HistoryEntry] | None:
        rows: builtins.list[HistoryRow] | None = self._read(lambda cur: self._q.history(cur, task_id))
        if rows is None:
            return None
        return [HistoryEntry(at, TaskState(state), attempt, percent, message or "")
                for at, state, attempt, percent, message in rows]  # fmt: skip
