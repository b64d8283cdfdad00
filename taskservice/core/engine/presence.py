"""This server as the others on its database see it: the task types it claims and the labels it needs, said at
start and at each lease renewal, withdrawn when it stops; and which servers claim each type, for ListTaskTypes and
the dashboard. A server not heard of for a lease is left out: it has stopped, or lost its leases."""

from __future__ import annotations

from collections.abc import Collection

from taskservice.core.board.base import Board, ClaimScope
from taskservice.core.engine.clock import Clock
from taskservice.core.model.nodes import NodeInfo


class Presence:
    def __init__(
        self, board: Board, clock: Clock, node: str, scope: ClaimScope, loaded: Collection[str], lease_seconds: float
    ) -> None:
        self._board = board
        self._clock = clock
        self._node = node
        self._types = tuple(sorted(scope.types if scope.types is not None else loaded))
        self._labels = scope.labels
        self._lease_seconds = lease_seconds
        self._started_at = clock.time()

    def announce(self) -> None:
        now = self._clock.time()
        self._board.announce(NodeInfo(self._node, self._types, self._labels, self._started_at, now))

    def retire(self) -> None:
        self._board.retire(self._node)

    def serving(self) -> dict[str, list[NodeInfo]]:
        """The servers that claim each task type, by type; reads storage."""
        by_type: dict[str, list[NodeInfo]] = {}
        for node in self._board.nodes(self._clock.time() - self._lease_seconds):
            for task_type in node.types:
                by_type.setdefault(task_type, []).append(node)
        return by_type
