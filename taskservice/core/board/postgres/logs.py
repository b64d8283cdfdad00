"""Task logs in the shared database, so that WatchLogs answers on any server, whichever ran the task.

Why the database and not a shared folder: the servers share it already, and it needs no shared file system to
set up, mount and keep consistent. A log is chunks at absolute byte offsets; the server running a task buffers
what it writes and flushes every FLUSH_SECONDS (a reader on any server is that much behind). Each task keeps its
last MAX_LOG_BYTES, as with files: older chunks give way, and a reader behind them gets a marker saying so, then
goes on where the kept bytes start. Logging never fails a task: what cannot be written is dropped and said so.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
import psycopg_pool

from taskservice.core.board.postgres.schema import LOGS
from taskservice.core.engine.throttle import ThrottledLog
from taskservice.core.handlers.logs import DEFAULT_MAX_LOG_BYTES, MAX_CHUNK_BYTES, LogChunk

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.2


class DatabaseLogs:
    """The logs of all tasks, in the taskservice_logs table (same interface as core.logs.TaskLogs)."""

    def __init__(self, pool: psycopg_pool.ConnectionPool[Any], *, max_bytes: int = DEFAULT_MAX_LOG_BYTES) -> None:
        self._pool = pool
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._pending: dict[str, list[bytes]] = {}
        self._ends: dict[str, int] = {}  # where this server's next chunk of a task goes
        # One flush at a time (the flusher's, or a task's end), so that a task's chunks are written in order.
        self._flushing = threading.Lock()
        self._refusals = ThrottledLog(log, logging.WARNING)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="taskservice-pg-logs", daemon=True)
        self._thread.start()

    def protect(self, is_live: Callable[[str], bool]) -> None:
        """Logs in the database are removed with their task (retention), not by a folder cap."""

    def append(self, task_id: str, data: bytes) -> None:
        if data:
            with self._lock:
                self._pending.setdefault(task_id, []).append(data)

    def finish(self, task_id: str) -> None:
        self._flush([task_id])

    def delete(self, task_ids: Sequence[str]) -> None:
        """Remove the logs of these tasks (deleted tasks); never raises."""
        with self._flushing:
            with self._lock:
                for task_id in task_ids:
                    self._pending.pop(task_id, None)
                    self._ends.pop(task_id, None)
            try:
                with self._pool.connection() as conn:
                    conn.execute(f"DELETE FROM {LOGS} WHERE task_id = ANY(%s)", (list(task_ids),))
            except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
                self._refusals.log("task logs of %d deleted tasks left in the database: %s", len(task_ids), exc)

    def _loop(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            self._flush(None)

    def _flush(self, only: list[str] | None) -> None:
        with self._flushing:
            self._flush_now(only)

    def _flush_now(self, only: list[str] | None) -> None:
        with self._lock:
            ids = list(self._pending) if only is None else [t for t in only if t in self._pending]
            taken = {task_id: b"".join(self._pending.pop(task_id)) for task_id in ids}
        if not taken:
            return
        try:
            with self._pool.connection() as conn, conn.transaction():
                for task_id, data in taken.items():
                    self._write(conn, task_id, data)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            self._refusals.log("task logs: %d bytes of %d tasks dropped: %s", sum(map(len, taken.values())),
                               len(taken), exc)  # fmt: skip

    def _write(self, conn: psycopg.Connection[Any], task_id: str, data: bytes) -> None:
        start = self._ends.get(task_id)
        if start is None:  # the first chunk this server writes: after what others wrote (an earlier attempt)
            start = self._end(conn, task_id)
        conn.execute(f"INSERT INTO {LOGS} (task_id, byte_offset, data) VALUES (%s, %s, %s)", (task_id, start, data))
        end = start + len(data)
        self._ends[task_id] = end
        # Keep the last max_bytes: drop whole chunks that end before the cut.
        conn.execute(
            f"DELETE FROM {LOGS} WHERE task_id = %s AND byte_offset + length(data) <= %s",
            (task_id, end - self.max_bytes),
        )

    @staticmethod
    def _end(conn: psycopg.Connection[Any], task_id: str) -> int:
        row = conn.execute(
            f"SELECT coalesce(max(byte_offset + length(data)), 0) FROM {LOGS} WHERE task_id = %s", (task_id,)
        ).fetchone()
        return int(row[0]) if row else 0

    def read(self, task_id: str, offset: int, max_bytes: int = MAX_CHUNK_BYTES) -> LogChunk:
        """Bytes from `offset` on; a reader behind what was dropped gets a marker, then the kept bytes."""
        with self._pool.connection() as conn:
            rows = conn.execute(
                f"""SELECT byte_offset, data FROM {LOGS} WHERE task_id = %s AND byte_offset + length(data) > %s
                    ORDER BY byte_offset LIMIT 64""",
                (task_id, offset),
            ).fetchall()
            end = self._end(conn, task_id)
        if not rows:
            return LogChunk(offset, b"", max(end, offset) if end else offset)
        first = rows[0][0]
        if first > offset:  # dropped: say so (the marker ends where the kept bytes start), or just go on there
            marker = f"[taskservice: log bytes {offset} to {first} were dropped]\n".encode()
            if first - offset >= len(marker):
                return LogChunk(first - len(marker), marker, end)
            offset = first
        data = b"".join(bytes(chunk) for _, chunk in rows)[offset - first :][:max_bytes]
        return LogChunk(offset, data, end)

    def end(self, task_id: str) -> int:
        with self._pool.connection() as conn:
            return self._end(conn, task_id)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._flush(None)
