"""The board: the one place task state changes (base.Board).

- sql/: the lifecycle written once (SqlBoard) above a dialect per database: postgres/ (servers sharing one
  database) and sqlite/ (one file; what --procs and --sqlite-lifecycle sql run).
- local.py, embedded.py, memory.py: the in-memory queue over the store (the embedded default until the SQLite
  dialect replaces it), and its in-memory twin for tests.
- answers.py, dependencies.py: what every board answers and decides alike.
"""

from taskservice.core.board.answers import DEFAULT_MAX_QUEUE_BYTES
from taskservice.core.board.base import (
    Board,
    Claim,
    ClaimBatch,
    DatabaseUnreachable,
    NewTask,
    Renewal,
    StopEffect,
    StopResult,
)
from taskservice.core.board.embedded import SQLiteBoard, StoreInUse
from taskservice.core.board.local import LocalBoard
from taskservice.core.board.memory import MemoryBoard
from taskservice.core.board.sqlite.siblings import Siblings
from taskservice.core.store.base import StoreOpenError


def is_database_url(db: str) -> bool:
    return db.startswith(("postgresql://", "postgres://"))


def open_board(
    db: str,
    *,
    sqlite_lifecycle: str = "sql",
    siblings: Siblings | None = None,
    max_queue: int = 100_000,
    max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
    pool_size: int = 16,
) -> Board:
    """The board `--db` names: a postgresql:// URL is a database that several servers share; a file path (or
    nothing) is the embedded SQLite file of one server, whose lifecycle runs in memory or in SQL: always in SQL
    for one of the engine processes of a server (`siblings`: see sqlite/siblings.py)."""
    if is_database_url(db):
        try:
            from taskservice.core.board.postgres.board import PostgresBoard
        except ImportError as exc:
            raise StoreOpenError(
                f"--db {db.split('://')[0]}://... needs PostgreSQL support: pip install 'taskservice[postgres]' ({exc})"
            ) from None
        return PostgresBoard(db, max_queue=max_queue, max_queue_bytes=max_queue_bytes, pool_size=pool_size)
    if sqlite_lifecycle == "sql" or siblings is not None:
        from taskservice.core.board.sqlite.board import SharedSQLiteBoard

        return SharedSQLiteBoard(
            db, max_queue=max_queue, max_queue_bytes=max_queue_bytes, lock=siblings is None, siblings=siblings
        )
    return SQLiteBoard(db, max_queue=max_queue, max_queue_bytes=max_queue_bytes)


__all__ = [
    "Board",
    "Claim",
    "ClaimBatch",
    "DatabaseUnreachable",
    "LocalBoard",
    "MemoryBoard",
    "NewTask",
    "Renewal",
    "SQLiteBoard",
    "StopEffect",
    "StopResult",
    "StoreInUse",
    "is_database_url",
    "open_board",
]
