"""The SQLite file's schema: versioned, migrated from older servers' files, and foreign files refused untouched."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from taskservice.core.board import SQLiteBoard
from taskservice.core.board.sqlite.schema import MIGRATIONS, SCHEMA_VERSION
from taskservice.core.model.errors import StoreOpenError
from taskservice.core.model.models import TaskState
from tests.board.contract import new, submit


def test_the_schema_is_versioned_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    first = SQLiteBoard(path)
    submit(first, [new("t1")])
    first.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    second = SQLiteBoard(path)
    try:
        assert second.get("t1") is not None
    finally:
        second.close()


def test_a_file_of_an_older_schema_is_migrated_and_keeps_its_tasks(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # as a server of schema 2 left it
        conn.executescript(MIGRATIONS[1] + MIGRATIONS[2])
        conn.execute(
            "INSERT INTO tasks (seq, task_id, task_type, args, state, priority, labels, submitted_at, attempt, "
            "sequence, request_digest) VALUES (1, 'old', 'demo', '{}', 'SUCCESS', 0, '{}', 1.0, 1, 3, 'd')"
        )
        conn.execute("PRAGMA user_version = 2")
    board = SQLiteBoard(path)
    try:
        old = board.get("old")
        assert old is not None and old.state is TaskState.SUCCESS and old.retention is None
        assert [(c.task_type, c.state, c.count) for c in board.task_counts()] == [("demo", TaskState.SUCCESS, 1)]
    finally:
        board.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_file_that_is_not_a_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreOpenError, match="not a usable taskservice database"):
        SQLiteBoard(path)
    assert path.read_bytes().startswith(b"this is not sqlite"), "never reset silently"


def test_another_applications_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(StoreOpenError, match="invoices"):
        SQLiteBoard(path)


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    SQLiteBoard(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreOpenError, match="newer"):
        SQLiteBoard(path)
