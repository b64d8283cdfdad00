"""Databases with many tasks already in them, written straight into SQLite (the server is not running)."""

from __future__ import annotations

import time
from pathlib import Path

from taskservice.core.board.sqlite.board import SQLiteBoard
from taskservice.core.board.sqlite.schema import COLUMNS, task_row
from taskservice.core.model.models import Task, TaskState

CHUNK = 50_000


def fill(path: Path, count: int, state: TaskState, *, over_seconds: float = 0.0) -> list[str]:
    """`count` demo tasks in `state`, ids t0..t{count-1}, submitted (and ended, if `state` is an end) evenly over
    the last `over_seconds` (0: all now); returns the ids."""
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
            at = now - over_seconds * (count - i) / count
            task = Task(
                task_id=ids[i],
                task_type="demo",
                args={"steps": 0},
                state=state,
                submitted_at=at,
                started_at=at if finished else None,
                ended_at=at if finished else None,
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
