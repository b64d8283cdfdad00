"""Limits by hand: create (idempotent), read, list, change and delete, checked before the board stores them.

The board enforces them at every claim (board/sql/limiting.py); a change wakes this server's idle workers, since
a raised cap or a deleted limit may let a waiting task start now.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from taskservice.core.board.base import Board
from taskservice.core.engine.clock import Clock
from taskservice.core.model.errors import LimitNotFound, TaskConflict, TaskServiceError
from taskservice.core.model.limits import Limit, LimitSpec, check_limit

log = logging.getLogger(__name__)


class LimitConflict(TaskConflict):
    """Another definition is stored under the id."""


class LimitBook:
    def __init__(self, board: Board, clock: Clock, wake: Callable[[], None]) -> None:
        self._board = board
        self._clock = clock
        self._wake = wake

    def create(self, spec: LimitSpec) -> tuple[Limit, bool]:
        """Store a new limit; the same definition again is the limit there (created=False), another one under its
        id LimitConflict. InvalidRequest naming the field to blame."""
        check_limit(spec)
        now = self._clock.time()
        stored, created = self._board.add_limit(Limit(spec, created_at=now, updated_at=now))
        if stored.spec.digest() != spec.digest():
            raise LimitConflict(
                f"limit {spec.limit_id!r} exists with another definition; update it, or delete it first"
            )
        return stored, created

    def declare(self, specs: list[LimitSpec]) -> None:
        """The task types' own limits (TaskType.default_limit), created or brought up to date: the code that runs
        says what they are. A database that cannot be written now keeps them as they were (logged)."""
        for spec in specs:
            try:
                found = self._board.get_limit(spec.limit_id)
                if found is None:
                    self.create(spec)
                elif found.spec != spec:
                    self.update(spec)
            except TaskServiceError as exc:
                log.warning("the default limit %r of task type %r is not stored: %s", spec.limit_id, spec.task_type,
                            exc)  # fmt: skip

    def get(self, limit_id: str) -> Limit:
        found = self._board.get_limit(limit_id)
        if found is None:
            raise LimitNotFound(limit_id)
        return found

    def list(self, page_size: int, after_id: str = "") -> tuple[list[Limit], str]:
        """A page of limits in id order, and the id to continue after ("" on the last page)."""
        found = self._board.list_limits(after_id, page_size + 1)
        more = len(found) > page_size
        page = found[:page_size]
        return page, page[-1].limit_id if more and page else ""

    def update(self, spec: LimitSpec) -> Limit:
        """The limit's new definition, in force from the next claim of every server."""
        check_limit(spec)
        before = self.get(spec.limit_id)
        changed = Limit(spec, created_at=before.created_at, updated_at=self._clock.time())
        if not self._board.save_limit(changed):
            raise LimitNotFound(spec.limit_id)
        self._wake()
        return changed

    def delete(self, limit_id: str) -> Limit:
        removed = self._board.remove_limit(limit_id)
        if removed is None:
            raise LimitNotFound(limit_id)
        self._wake()
        return removed
