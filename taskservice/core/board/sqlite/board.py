"""The SQLite dialect of the lifecycle, the embedded default: one file, the database the only truth, as on
PostgreSQL.

Every write goes through the group-commit writer's connection (`BEGIN IMMEDIATE`: the file's write lock, so
claims need no row locks); reads go on a connection per reading thread, which WAL lets read while the writer
writes. Hints (work is there, a stop was asked) are told to this process's listeners after the commit that sent
them.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from taskservice.core.board.answers import DEFAULT_MAX_QUEUE_BYTES
from taskservice.core.board.sql.lifecycle import SqlBoard
from taskservice.core.board.sql.queries import Cursor
from taskservice.core.board.sql.settle import settle
from taskservice.core.board.sql.turns import Fairness
from taskservice.core.board.sql.writer import GroupWriter, Op
from taskservice.core.board.sqlite.lock import lock_file
from taskservice.core.board.sqlite.queries import UNFINISHED, SQLiteQueries
from taskservice.core.board.sqlite.schema import COLUMNS, damage, migrate
from taskservice.core.board.sqlite.siblings import Siblings
from taskservice.core.board.task_rows import task_from_row
from taskservice.core.model.errors import StoreOpenError, StoreUnavailable

BUSY_TIMEOUT_SECONDS = 30

# How long close() waits for the reads under way before it closes their connections.
CLOSE_WAIT_SECONDS = 5.0


def _connect(path: Path, *, settings: bool = True) -> sqlite3.Connection:
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT) and cover a whole batch.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_SECONDS)
    if settings:
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
    return conn


class SQLiteSession:
    """The writer's connection: a batch in one `BEGIN IMMEDIATE` transaction; its hints told after the commit."""

    lost_errors: tuple[type[BaseException], ...] = (sqlite3.OperationalError,)
    op_errors: tuple[type[BaseException], ...] = (sqlite3.Error,)

    def __init__(self, path: Path, told: Callable[[list[str]], None], *, shared: bool) -> None:
        self._path = path
        self._told = told
        self._conn: sqlite3.Connection | None = None
        # Between the engine processes of one server, writers take turns on a lock file first: the kernel hands it
        # to the next waiter at once, where SQLite's own busy wait sleeps 1, 2, 5... ms between looks.
        self._turns = os.open(f"{path}.writer", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644) if shared else -1

    def transaction(self, ops: list[Op], hints: list[str]) -> list[Any]:
        if self._conn is None:
            self._conn = _connect(self._path)
        conn = self._conn
        if self._turns >= 0:
            fcntl.flock(self._turns, fcntl.LOCK_EX)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                cur = conn.cursor()
                results = [op(cur) for op in ops]
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        finally:
            if self._turns >= 0:
                fcntl.flock(self._turns, fcntl.LOCK_UN)
        if hints:
            self._told(hints)
        return results

    def reset(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def close(self) -> None:
        self.reset()
        if self._turns >= 0:
            os.close(self._turns)
            self._turns = -1


class SQLiteDriver:
    def __init__(self, path: Path, *, siblings: Siblings | None = None, expire_leases: bool = True) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = _connect(path, settings=False)
        except sqlite3.Error as exc:
            raise StoreOpenError(f"cannot open {path}: {exc}") from exc
        try:
            migrate(conn, path)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreOpenError(f"{path} is not a usable taskservice database: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        try:
            # What is unfinished is read whole (as a recovery would): damage where the queue lives is found now,
            # not by the first claim.
            conn.execute(f"SELECT {COLUMNS} FROM tasks WHERE state IN ('PENDING', 'RUNNING', 'STOPPING')").fetchall()
            # A file the server cannot write is refused now, not at the first Submit; after the reads above, so
            # that a damaged file is found before anything is written to it. The leases of whoever held the file
            # before ended with it (unless this is one of several processes of one server): the first reap takes
            # their tasks.
            conn.execute("BEGIN IMMEDIATE")
            if expire_leases:
                conn.execute(f"UPDATE tasks SET lease_until = 0 WHERE {UNFINISHED}")
            conn.execute("PRAGMA user_version = " + str(conn.execute("PRAGMA user_version").fetchone()[0]))
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            raise StoreOpenError(
                f"{path} cannot be used ({exc}); restore it from a backup, make it writable, or point --db at "
                "another file"
            ) from exc
        finally:
            conn.close()
        self.queries = SQLiteQueries()
        self._listeners: dict[str, list[Callable[[], None]]] = {}
        self._siblings = siblings
        if siblings is not None:
            siblings.start(self._tell_here)
        self.writer = GroupWriter(
            SQLiteSession(path, self._tell, shared=siblings is not None), name="taskservice-sqlite-writer"
        )
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Condition()
        # Reads under way, and whether close() has begun: a connection is closed only once no thread reads on it (a
        # late read, say a stop cascade's, on a connection closed under it crashed the process in SQLite's C code).
        self._reading = 0
        self._closed = False

    def transact(self, op: Op) -> Any:
        return self.writer.call(op)

    def read(self, op: Op) -> Any:
        with self._readers_lock:
            if self._closed:
                raise StoreUnavailable(f"the task database {self.path} is closed: the server is shutting down")
            self._reading += 1
        try:
            conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._local.conn = _connect(self.path)
                with self._readers_lock:
                    self._readers.append(conn)
            return op(conn.cursor())
        except sqlite3.DatabaseError as exc:
            damaged = damage(exc, self.path)
            if damaged is not None:
                raise damaged from exc
            raise StoreUnavailable(f"the task database {self.path} cannot be read: {exc}") from exc
        finally:
            with self._readers_lock:
                self._reading -= 1
                if self._closed:  # only close() waits for the reads to end
                    self._readers_lock.notify_all()

    def on_hint(self, hint: str, listener: Callable[[], None]) -> None:
        self._listeners.setdefault(hint, []).append(listener)

    def _tell(self, hints: list[str]) -> None:
        """A commit here sent `hints`: to this process's listeners and its siblings'."""
        if self._siblings is not None:
            self._siblings.send(hints)
        self._tell_here(hints)

    def _tell_here(self, hints: Iterable[str]) -> None:
        for hint in hints:
            for listener in self._listeners.get(hint, []):
                listener()

    def task_logs(self) -> None:
        return None

    def close(self) -> None:
        self.writer.close()
        if self._siblings is not None:
            self._siblings.close()
        with self._readers_lock:
            self._closed = True
            # A read is one statement or a few: it ends soon. One that does not is left its connection (leaked).
            if self._readers_lock.wait_for(lambda: self._reading == 0, timeout=CLOSE_WAIT_SECONDS):
                for conn in self._readers:
                    conn.close()
            self._readers.clear()


class SQLiteBoard(SqlBoard):
    """The lifecycle in SQL over one SQLite file, which one server holds (`<db>.lock`: lock.py). What a previous
    server left running is its to reap when it opens.

    With `siblings`, this is one of the engine processes of one server (`--procs`): their supervisor holds the
    lock and reaped at start; they share the file as nodes share PostgreSQL (leases, fenced writes), and tell each
    other of work and stops through `siblings`."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_queue: int = 100_000,
        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
        lock: bool = True,
        siblings: Siblings | None = None,
        fairness: Fairness | None = None,
    ) -> None:
        self.path = Path(path)
        self._lock_fd = lock_file(self.path) if lock else -1
        try:
            driver = SQLiteDriver(self.path, siblings=siblings, expire_leases=siblings is None)
        except BaseException:
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
            raise
        super().__init__(
            driver, max_queue=max_queue, max_queue_bytes=max_queue_bytes, exclusive=siblings is None, fairness=fairness
        )
        self.writes_wake_siblings = siblings is not None
        if siblings is None:
            try:
                self._recount_waits()
            except BaseException:
                self.close()
                raise

    def _recount_waits(self) -> None:
        """The waits of the tasks that wait for others, as rows: the board that keeps its queue in memory (which
        may have written this file) kept them in memory only. A dependency that ended other than SUCCESS revokes
        its dependents now, down the chain."""

        def recount(cur: Cursor) -> None:
            cur.execute(
                """INSERT OR IGNORE INTO waits (task_id, dep_id)
                   SELECT t.task_id, d.value FROM tasks t, json_each(t.after_ids) d
                   WHERE t.state = 'PENDING' AND t.after_ids IS NOT NULL
                       AND EXISTS (SELECT 1 FROM tasks x WHERE x.task_id = d.value AND x.state != 'SUCCESS')"""
            )
            cur.execute(
                """UPDATE tasks SET waiting = (SELECT count(*) FROM waits w WHERE w.task_id = tasks.task_id)
                   WHERE state = 'PENDING' AND after_ids IS NOT NULL"""
            )
            cur.execute(
                f"""SELECT {COLUMNS} FROM tasks WHERE task_id IN (SELECT dep_id FROM waits)
                    AND state IN ('FAILURE', 'TIMED_OUT', 'REVOKED', 'LOST')"""
            )
            failed = [task_from_row(row) for row in cur.fetchall()]
            if failed:
                settle(self._q, cur, failed, time.time())

        self._write(recount)

    def close(self) -> None:
        super().close()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = -1
