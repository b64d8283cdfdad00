"""This server as the others on its database see it: the task types it claims and the labels it needs, said at
start and at each lease renewal, withdrawn when it stops; and which servers claim each type, for ListTaskTypes and
the dashboard. A server not heard of for a lease is left out: it has stopped, or lost its leases."""

from __future__ import annotations

from collections.abc import Callable, Collection

from taskservice.core.board.base import Board, ClaimScope
from taskservice.core.engine.clock import Clock
from taskservice.core.model.nodes import NodeInfo


class Presence:
    def __init__(
        self,
        board: Board,
        clock: Clock,
        node: str,
        scope: ClaimScope,
        loaded: Collection[str],
        lease_seconds: float,
        load: Callable[[], tuple[int, int, int]] = lambda: (0, 0, 0),
    ) -> None:
        """`load()`: this server's worker threads, how many run a task now, and how many handlers it abandoned
        still run (said with each announcement)."""
        self._load = load
        self._board = board
        self._clock = clock
        self._node = node
        self._types = tuple(sorted(scope.types if scope.types is not None else loaded))
        self._labels = scope.labels
        self._lease_seconds = lease_seconds
        self._started_at = clock.time()

    def announce(self) -> None:
        now = self._clock.time()
        workers, busy, abandoned = self._load()
        self._board.announce(NodeInfo(self._node, self._types, self._labels, self._started_at, now, workers, busy,
                                      abandoned))  # fmt: skip

    def nodes(self) -> list[NodeInfo]:
        """Every server heard of within a lease, by name; reads storage."""
        return self._board.nodes(self._clock.time() - self._lease_seconds)

    def retire(self) -> None:
        self._board.retire(self._node)

    def serving(self) -> dict[str, list[NodeInfo]]:
        """The servers that claim each task type, by type; reads storage."""
        by_type: dict[str, list[NodeInfo]] = {}
        for node in self.nodes():
            for task_type in node.types:
                by_type.setdefault(task_type, []).append(node)
        return by_type
