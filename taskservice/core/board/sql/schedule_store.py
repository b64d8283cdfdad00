"""Schedules as the board stores them: a row each, which every server reads for the due ones (engine/scheduling.py
fires them)."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

from taskservice.core.board.sql.queries import Cursor, Queries
from taskservice.core.model.schedules import Schedule


class ScheduleStore:
    _q: Queries

    # SqlBoard's: a write in a transaction of its own, and a read.
    _write: Callable[[Callable[[Cursor], Any]], Any]
    _read: Callable[[Callable[[Cursor], Any]], Any]

    def add_schedule(self, schedule: Schedule) -> tuple[Schedule, bool]:
        def add(cur: Cursor) -> tuple[Schedule, bool]:
            if self._q.insert_schedule(cur, schedule):
                return schedule.copy(), True
            return self._q.schedules(cur, schedule.schedule_id, "", 1)[0], False

        added: tuple[Schedule, bool] = self._write(add)
        return added

    def get_schedule(self, schedule_id: str) -> Schedule | None:
        found: list[Schedule] = self._read(lambda cur: self._q.schedules(cur, schedule_id, "", 1))
        return found[0] if found else None

    def list_schedules(self, after_id: str, limit: int) -> builtins.list[Schedule]:
        page: list[Schedule] = self._read(lambda cur: self._q.schedules(cur, None, after_id, limit))
        return page

    def save_schedule(self, schedule: Schedule, expected: Schedule) -> bool:
        return bool(self._write(lambda cur: self._q.update_schedule(cur, schedule, expected)))

    def remove_schedule(self, schedule_id: str) -> Schedule | None:
        removed: Schedule | None = self._write(lambda cur: self._q.delete_schedule(cur, schedule_id))
        return removed

    def due_schedules(self, now: float, limit: int) -> builtins.list[Schedule]:
        due: list[Schedule] = self._read(lambda cur: self._q.due_schedules(cur, now, limit))
        return due
