"""The board: the one place task state changes (base.Board), over SQLite (the default) or memory (tests)."""

from taskservice.core.board.base import (
    Board,
    Claim,
    ClaimBatch,
    NewTask,
    Renewal,
    StopEffect,
    StopResult,
)
from taskservice.core.board.local import LocalBoard
from taskservice.core.board.memory import MemoryBoard
from taskservice.core.board.sqlite import SQLiteBoard, StoreInUse


def open_board(db: str, *, max_queue: int = 100_000) -> Board:
    """The board `--db` names: a file path (or nothing) is the embedded SQLite file."""
    return SQLiteBoard(db, max_queue=max_queue)


__all__ = [
    "Board",
    "Claim",
    "ClaimBatch",
    "LocalBoard",
    "MemoryBoard",
    "NewTask",
    "Renewal",
    "SQLiteBoard",
    "StopEffect",
    "StopResult",
    "StoreInUse",
    "open_board",
]
