"""The board in memory, for fast unit tests of the engine: the local board over a store that keeps nothing."""

from __future__ import annotations

from taskservice.core.board.answers import DEFAULT_MAX_QUEUE_BYTES
from taskservice.core.board.local import LocalBoard
from taskservice.core.store.memory import MemoryStore


class MemoryBoard(LocalBoard):
    """exclusive=False stands for a board several nodes share (tests of claims and stops across servers)."""

    def __init__(
        self,
        store: MemoryStore | None = None,
        *,
        max_queue: int = 100_000,
        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
        exclusive: bool = True,
    ) -> None:
        self.memory = store if store is not None else MemoryStore()
        super().__init__(self.memory, max_queue=max_queue, max_queue_bytes=max_queue_bytes, exclusive=exclusive)
