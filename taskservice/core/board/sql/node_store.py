"""The servers of a database as the board stores them: a row each, which its server writes at start and at each
lease renewal (engine/presence.py), and removes when it stops."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

from taskservice.core.board.sql.queries import Cursor, Queries
from taskservice.core.board.sql.writer import GroupWriter
from taskservice.core.model.nodes import NodeInfo


def _best_effort(result: Any, error: BaseException | None) -> None:
    """A row missed now is written at the next renewal."""


class NodeStore:
    _q: Queries
    _writer: GroupWriter

    _read: Callable[[Callable[[Cursor], Any]], Any]  # SqlBoard's

    def announce(self, node: NodeInfo) -> None:
        self._writer.submit(lambda cur: self._q.save_node(cur, node), _best_effort)

    def nodes(self, seen_after: float) -> builtins.list[NodeInfo]:
        found: list[NodeInfo] = self._read(lambda cur: self._q.nodes(cur, seen_after))
        return found

    def retire(self, name: str) -> None:
        self._writer.submit(lambda cur: self._q.delete_node(cur, name), _best_effort)
