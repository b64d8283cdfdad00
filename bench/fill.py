"""Databases with many tasks already in them, written straight into SQLite (the server is not running)."""

from __future__ import annotations

import time
from pathlib import Path

from taskservice.core.board.sqlite.board import SQLiteBoard
from taskservice.core.board.sqlite.schema import COLUMNS, task_row
from taskservice.core.model.models import Task, TaskState

CHUNK = 50_000


def fill(path: Path, count: int, state: TaskState) -> list[str]:
    """`count` demo tasks in `state`, ids t0..t{count-1}; returns the ids."""
    SQLiteBoard(path).close()  # creates the schema
    import sqlite3

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")  # a bench fixture, not an acknowledged Submit
    now = time.time()
    ids = [f"t{i}" for i in range(count)]
    for start in range(0, count, CHUNK):
        rows = []
        for i in range(start, min(count, start + CHUNK)):
            finished = state.is_terminal
            task = Task(
                task_id=ids[i],
                task_type="demo",
                args={"steps": 0},
                state=state,
                submitted_at=now,
                started_at=now if finished else None,
                ended_at=now if finished else None,
                result={"steps": 0} if state is TaskState.SUCCESS else None,
                attempt=1 if finished else 0,
                submit_order=i + 1,
                event_sequence=3 if finished else 1,
                request_digest="bench",
            )
            rows.append(task_row(task))
        conn.execute("BEGIN")
        conn.executemany(f"INSERT INTO tasks ({COLUMNS}) VALUES ({', '.join('?' * len(rows[0]))})", rows)
        conn.execute("COMMIT")
    conn.close()
    return ids
