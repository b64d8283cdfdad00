"""The board: the one place task state changes (base.Board).

- sql/: the lifecycle written once (SqlBoard) above a dialect per database: sqlite/ (the embedded default: one
  file, one server, or the engine processes of one server) and postgres/ (servers sharing one database).
- answers.py, dependencies.py: what every board answers and decides alike.
"""

from taskservice.core.board.answers import DEFAULT_MAX_QUEUE_BYTES
from taskservice.core.board.base import (
    Board,
    Claim,
    ClaimBatch,
    ClaimScope,
    DatabaseUnreachable,
    NewTask,
    Renewal,
    StopEffect,
    StopResult,
)
from taskservice.core.board.sql.turns import Fairness
from taskservice.core.board.sqlite.board import SQLiteBoard
from taskservice.core.board.sqlite.lock import StoreInUse
from taskservice.core.board.sqlite.siblings import Siblings
from taskservice.core.model.errors import StoreOpenError


def is_database_url(db: str) -> bool:
    return db.startswith(("postgresql://", "postgres://"))


def open_board(
    db: str,
    *,
    siblings: Siblings | None = None,
    max_queue: int = 100_000,
    max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
    pool_size: int = 16,
    fairness: Fairness | None = None,
) -> Board:
    """The board `--db` names: a postgresql:// URL is a database that several servers share; a file path (or
    nothing) is the embedded SQLite file of one server, or of one of its engine processes (`siblings`: see
    sqlite/siblings.py)."""
    if is_database_url(db):
        try:
            from taskservice.core.board.postgres.board import PostgresBoard
        except ImportError as exc:
            raise StoreOpenError(
                f"--db {db.split('://')[0]}://... needs PostgreSQL support: pip install 'taskservice[postgres]' ({exc})"
            ) from None
        return PostgresBoard(db, max_queue=max_queue, max_queue_bytes=max_queue_bytes, pool_size=pool_size,
                             fairness=fairness)  # fmt: skip
    return SQLiteBoard(db, max_queue=max_queue, max_queue_bytes=max_queue_bytes, lock=siblings is None,
                       siblings=siblings, fairness=fairness)  # fmt: skip


__all__ = [
    "Board",
    "Claim",
    "ClaimBatch",
    "ClaimScope",
    "DatabaseUnreachable",
    "NewTask",
    "Renewal",
    "SQLiteBoard",
    "StopEffect",
    "StopResult",
    "StoreInUse",
    "is_database_url",
    "open_board",
]
