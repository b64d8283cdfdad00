"""The embedded default store: one SQLite file in WAL mode, durable commits, a versioned schema.

Durability: every apply() commits with synchronous=FULL, so an acknowledged Submit and every state
change survive a crash of the process or of the machine. Progress is written in the same way but at a
throttled rate (the manager batches it), so the last fraction of a second of progress can be lost.
"""

from __future__ import annotations

import builtins
import functools
import itertools
import json
import operator
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from taskservice.core.errors import StoreDamaged
from taskservice.core.models import Task, TaskFilter
from taskservice.core.schedules import SCHEDULE_COLUMNS, Schedule, schedule_from_row, schedule_row
from taskservice.core.store.base import (
    ENDED_STATES,
    UNFINISHED_STATES,
    DeleteTasks,
    InsertTask,
    SaveProgress,
    SaveTask,
    StoreOpenError,
    TaskStore,
    Write,
)
from taskservice.core.task_rows import task_from_row

# SQLITE_CORRUPT and SQLITE_NOTADB: the file's pages are not what SQLite wrote.
_DAMAGED = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)

# Bump with a migration in MIGRATIONS when the schema changes; old files are migrated on open.
SCHEMA_VERSION = 6

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE tasks (
        seq                 INTEGER PRIMARY KEY,   -- submission order
        task_id             TEXT NOT NULL UNIQUE,
        task_type           TEXT NOT NULL,
        args                TEXT NOT NULL,         -- JSON object
        state               TEXT NOT NULL,
        priority            INTEGER NOT NULL,
        labels              TEXT NOT NULL,         -- JSON object, also in task_labels for filtering
        time_limit          REAL,
        submitted_at        REAL NOT NULL,
        started_at          REAL,
        ended_at            REAL,
        attempt             INTEGER NOT NULL,
        progress_percent    REAL NOT NULL DEFAULT 0,
        progress_message    TEXT NOT NULL DEFAULT '',
        progress_current    INTEGER NOT NULL DEFAULT 0,
        progress_total      INTEGER NOT NULL DEFAULT 0,
        progress_updated_at REAL,
        result              TEXT,                  -- JSON value, NULL when none
        error_type          TEXT,
        error_message       TEXT,
        error_traceback     TEXT,
        sequence            INTEGER NOT NULL,      -- latest event sequence
        request_digest      TEXT NOT NULL
    );
    CREATE INDEX tasks_by_state ON tasks (state, seq);
    CREATE INDEX tasks_by_type ON tasks (task_type, seq);
    CREATE TABLE task_labels (
        seq   INTEGER NOT NULL REFERENCES tasks (seq),
        key   TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (seq, key)
    );
    CREATE INDEX task_labels_by_pair ON task_labels (key, value, seq);
    """,
    # A retry's backoff is durable: the task is not claimed again before run_after (Unix seconds).
    2: """
    ALTER TABLE tasks ADD COLUMN run_after REAL;
    """,
    # Retention: a task's own (seconds; NULL: the server's, 0: for ever), and ended tasks found by their end.
    3: """
    ALTER TABLE tasks ADD COLUMN retention REAL;
    CREATE INDEX tasks_by_end ON tasks (ended_at) WHERE ended_at IS NOT NULL;
    """,
    # Dependencies: the ids a task was submitted to run after (JSON array; NULL: none).
    4: """
    ALTER TABLE tasks ADD COLUMN after_ids TEXT;
    """,
    # Schedules: a definition (JSON) and where it stands.
    5: """
    CREATE TABLE schedules (
        schedule_id  TEXT PRIMARY KEY,
        definition   TEXT NOT NULL,
        paused       INTEGER NOT NULL,
        next_due     REAL NOT NULL,
        created_at   REAL NOT NULL,
        last_due     REAL,
        last_task_id TEXT NOT NULL DEFAULT '',
        last_error   TEXT NOT NULL DEFAULT ''
    );
    """,
    # The lifecycle in SQL (board/sqlite/queries.py), which several engine processes share: who runs a task and
    # until when, a stop asked of it, its unmet dependencies (waits, and their count), its last state changes.
    # Claims and reaps read partial indexes over the unfinished tasks only.
    6: """
    ALTER TABLE tasks ADD COLUMN owner TEXT;
    ALTER TABLE tasks ADD COLUMN lease_until REAL;
    ALTER TABLE tasks ADD COLUMN stop_reason TEXT;
    ALTER TABLE tasks ADD COLUMN waiting INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tasks ADD COLUMN transitions TEXT NOT NULL DEFAULT '[]';
    CREATE TABLE waits (
        dep_id  TEXT NOT NULL,
        task_id TEXT NOT NULL,
        PRIMARY KEY (dep_id, task_id)
    ) WITHOUT ROWID;
    CREATE INDEX waits_by_task ON waits (task_id);
    CREATE INDEX tasks_ready ON tasks (priority DESC, seq) WHERE state = 'PENDING' AND waiting = 0;
    CREATE INDEX tasks_leased ON tasks (lease_until) WHERE state IN ('RUNNING', 'STOPPING');
    CREATE INDEX tasks_owned ON tasks (owner) WHERE state IN ('RUNNING', 'STOPPING');
    """,
}

# In the order task_from_row reads.
COLUMNS = (
    "seq, task_id, task_type, args, state, priority, labels, time_limit, submitted_at, started_at, ended_at, "
    "attempt, progress_percent, progress_message, progress_current, progress_total, progress_updated_at, "
    "result, error_type, error_message, error_traceback, sequence, request_digest, run_after, retention, after_ids"
)

_UPDATE_TASK_COLUMNS = (
    "state", "started_at", "ended_at", "attempt", "progress_percent", "progress_message", "progress_current",
    "progress_total", "progress_updated_at", "result", "error_type", "error_message", "error_traceback", "sequence",
    "run_after",
)  # fmt: skip
_UPDATE_PROGRESS_COLUMNS = (
    "progress_percent", "progress_message", "progress_current", "progress_total", "progress_updated_at",
)  # fmt: skip

# A statement is one sqlite3_step, and the sqlite3 module lets go of the GIL around each; while the event loop
# and the workers keep the GIL busy, every step can wait to get it back. So a run of writes of one kind goes in
# statements of many rows each, in a few sizes that the statement cache keeps (bulk no-op tasks: 8.5k -> 9.4k/s).
# Multi-row UPDATE ... FROM needs SQLite 3.33; older ones write row by row.
_ROWS_PER_STATEMENT = (256, 64, 16, 4, 1) if sqlite3.sqlite_version_info >= (3, 33, 0) else (1,)
_MOST_COLUMNS = 26  # of any multi-row statement: a task row


def _rows_per_statement(conn: sqlite3.Connection) -> tuple[int, ...]:
    """The statement sizes this SQLite allows: each statement's parameters stay within its variable limit."""
    limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return tuple(size for size in _ROWS_PER_STATEMENT if size * _MOST_COLUMNS <= limit) or (1,)


def _placeholders(columns: int, rows: int) -> str:
    row = f"({', '.join('?' * columns)})"
    return ", ".join([row] * rows)


@functools.cache
def _insert_sql(rows: int) -> str:
    return f"INSERT INTO tasks ({COLUMNS}) VALUES {_placeholders(_MOST_COLUMNS, rows)}"


@functools.cache
def _insert_labels_sql(rows: int) -> str:
    return f"INSERT INTO task_labels (seq, key, value) VALUES {_placeholders(3, rows)}"


@functools.cache
def _update_task_sql(rows: int) -> str:
    return _update_by_id_sql([(column, "{}") for column in _UPDATE_TASK_COLUMNS], rows)


@functools.cache
def _update_progress_sql(rows: int) -> str:
    # A late progress write never takes a task's sequence backwards.
    assignments = [(column, "{}") for column in _UPDATE_PROGRESS_COLUMNS]
    return _update_by_id_sql([*assignments, ("sequence", "max(tasks.sequence, {})")], rows)


def _update_by_id_sql(assignments: Sequence[tuple[str, str]], rows: int) -> str:
    """An UPDATE of `rows` tasks found by task_id, each row's last parameter. An assignment is a column and
    its new value, with {} where the row's parameter goes."""
    if rows == 1:
        sets = ", ".join(f"{column} = {value.format('?')}" for column, value in assignments)
        return f"UPDATE tasks SET {sets} WHERE task_id = ?"
    sets = ", ".join(f"{column} = {value.format(f'v.column{i}')}" for i, (column, value) in enumerate(assignments, 1))
    key = len(assignments) + 1
    return f"UPDATE tasks SET {sets} FROM (VALUES {_placeholders(key, rows)}) AS v WHERE tasks.task_id = v.column{key}"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def _insert_row(task: Task) -> tuple[Any, ...]:
    p = task.progress
    e = task.error
    return (
        task.submit_order, task.task_id, task.task_type, _dumps(task.args), task.state.value, task.priority,
        _dumps(task.labels), task.time_limit, task.submitted_at, task.started_at, task.ended_at,
        task.attempt, p.percent, p.message, p.current, p.total, p.updated_at,
        None if task.result is None else _dumps(task.result),
        e.type if e else None, e.message if e else None, e.traceback if e else None,
        task.event_sequence, task.request_digest, task.run_after, task.retention,
        _dumps(list(task.after)) if task.after else None,
    )  # fmt: skip


def _update_row(task: Task) -> tuple[Any, ...]:
    p = task.progress
    e = task.error
    return (
        task.state.value, task.started_at, task.ended_at, task.attempt,
        p.percent, p.message, p.current, p.total, p.updated_at,
        None if task.result is None else _dumps(task.result),
        e.type if e else None, e.message if e else None, e.traceback if e else None,
        task.event_sequence, task.run_after, task.task_id,
    )  # fmt: skip


def _statement(write: Write) -> tuple[Callable[[int], str], tuple[Any, ...]]:
    """The SQL of a write (for a number of rows) and its parameters."""
    if isinstance(write, InsertTask):
        return _insert_sql, _insert_row(write.task)
    if isinstance(write, SaveTask):
        return _update_task_sql, _update_row(write.task)
    if isinstance(write, SaveProgress):
        p = write.progress
        row = (p.percent, p.message, p.current, p.total, p.updated_at, write.event_sequence, write.task_id)
        return _update_progress_sql, row
    raise TypeError(f"not a write: {write!r}")


def _write_rows(
    conn: sqlite3.Connection, sql: Callable[[int], str], rows: list[tuple[Any, ...]], sizes: tuple[int, ...]
) -> None:
    """All of `rows`, with statements of as many rows each as `sizes` (largest first) allows."""
    done = 0
    for size in sizes:
        statements = (len(rows) - done) // size
        if not statements:
            continue
        chunk = rows[done : done + statements * size]
        if size == 1:
            conn.executemany(sql(1), chunk)
        else:
            conn.executemany(
                sql(size),
                [tuple(itertools.chain.from_iterable(chunk[i : i + size])) for i in range(0, len(chunk), size)],
            )
        done += statements * size


def filter_sql(task_filter: TaskFilter) -> tuple[list[str], list[Any]]:
    """The WHERE conditions of a ListTasks filter, and their parameters."""
    where: list[str] = []
    params: list[Any] = []
    if task_filter.states:
        where.append(f"state IN ({', '.join('?' * len(task_filter.states))})")
        params.extend(sorted(s.value for s in task_filter.states))
    if task_filter.task_type:
        where.append("task_type = ?")
        params.append(task_filter.task_type)
    if task_filter.scheduled:
        where.append("state = 'PENDING' AND run_after IS NOT NULL")
    for key, value in task_filter.labels:
        where.append("EXISTS (SELECT 1 FROM task_labels l WHERE l.seq = tasks.seq AND l.key = ? AND l.value = ?)")
        params.extend((key, value))
    return where, params


_DELETE_LABELS_SQL = "DELETE FROM task_labels WHERE seq = (SELECT seq FROM tasks WHERE task_id = ?)"
_DELETE_TASK_SQL = "DELETE FROM tasks WHERE task_id = ?"


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """WAL mode, durable commits, and the schema at SCHEMA_VERSION; StoreOpenError for a file this server must
    not touch."""
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode.lower() != "wal":
        raise StoreOpenError(f"{path}: cannot switch to WAL mode (got {mode!r})")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreOpenError(
            f"{path} has schema version {version}, newer than this taskservice knows "
            f"({SCHEMA_VERSION}); run a newer taskservice or point --db at another file"
        )
    if version == 0:
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        if tables:
            names = ", ".join(sorted(t[0] for t in tables))
            raise StoreOpenError(
                f"{path} is an SQLite database of something else (tables: {names}); point --db at a new file"
            )
    for target in range(version + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Statements are split on ';' so that they run inside this transaction (executescript commits).
            for statement in MIGRATIONS[target].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {target}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def damage(exc: sqlite3.DatabaseError, path: Path) -> StoreDamaged | None:
    """StoreDamaged when a read failed with `exc` because the file's pages are not what SQLite wrote."""
    if getattr(exc, "sqlite_errorcode", None) not in _DAMAGED:
        return None
    return StoreDamaged(
        f"the task database {path} is damaged ({exc}); stop the server and restore the file from a backup, or "
        "recover what is readable with `sqlite3 FILE .recover`"
    )


class SQLiteStore(TaskStore):
    """Tasks in one SQLite file. One connection writes (the manager's writer thread), one reads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        try:
            self._writer = self._connect()
        except sqlite3.Error as exc:
            raise StoreOpenError(f"cannot open {self.path}: {exc}") from exc
        try:
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._writer.close()
            raise StoreOpenError(f"{self.path} is not a usable taskservice database: {exc}") from exc
        except StoreOpenError:
            self._writer.close()
            raise
        self._rows_per_statement = _rows_per_statement(self._writer)
        try:
            self._reader = self._connect()
        except sqlite3.Error as exc:
            self._writer.close()
            raise StoreOpenError(f"cannot open {self.path}: {exc}") from exc
        self._closed = False

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT) and cover a whole batch.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        return conn

    def _migrate(self) -> None:
        migrate(self._writer, self.path)

    def apply(self, writes: Sequence[Write]) -> None:
        if not writes:
            return
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                for deleting, group in itertools.groupby(writes, key=lambda write: isinstance(write, DeleteTasks)):
                    if deleting:
                        ids = [(task_id,) for write in group for task_id in write.task_ids]  # type: ignore[union-attr]
                        conn.executemany(_DELETE_LABELS_SQL, ids)
                        conn.executemany(_DELETE_TASK_SQL, ids)
                        continue
                    for sql, run in itertools.groupby(map(_statement, group), key=operator.itemgetter(0)):
                        _write_rows(conn, sql, [row for _, row in run], self._rows_per_statement)
                # Labels last: their tasks' rows (which they reference) are all in by now.
                labels = [
                    (write.task.submit_order, key, value)
                    for write in writes
                    if isinstance(write, InsertTask)
                    for key, value in write.task.labels.items()
                ]
                _write_rows(conn, _insert_labels_sql, labels, self._rows_per_statement)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def probe_write(self) -> None:
        """Rewrite the schema version with its own value: a real commit (a WAL frame, an fsync), no change."""
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                conn.execute(f"PRAGMA user_version = {int(version)}")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._read_lock:
            try:
                return self._reader.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                damaged = damage(exc, self.path)
                if damaged is None:
                    raise
                raise damaged from exc

    def get(self, task_id: str) -> Task | None:
        rows = self._query(f"SELECT {COLUMNS} FROM tasks WHERE task_id = ?", (task_id,))
        return task_from_row(rows[0]) if rows else None

    def list(self, task_filter: TaskFilter, *, before_order: int | None, limit: int) -> list[Task]:
        where, params = filter_sql(task_filter)
        if before_order is not None:
            where.append("seq < ?")
            params.append(before_order)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._query(f"SELECT {COLUMNS} FROM tasks {clause} ORDER BY seq DESC LIMIT ?", [*params, limit])
        return [task_from_row(row) for row in rows]

    def ended_ids(self, task_filter: TaskFilter, ended_before: float | None, limit: int) -> builtins.list[str]:
        where, params = filter_sql(task_filter)
        where.append(f"ended_at IS NOT NULL AND state IN ({', '.join('?' * len(ENDED_STATES))})")
        params.extend(state.value for state in ENDED_STATES)
        if ended_before is not None:
            where.append("ended_at < ?")
            params.append(ended_before)
        sql = f"SELECT task_id FROM tasks WHERE {' AND '.join(where)} ORDER BY ended_at LIMIT ?"
        return [row[0] for row in self._query(sql, [*params, limit])]

    def expired_ids(self, now: float, retention: float, limit: int) -> builtins.list[str]:
        # As store.base.expired(): a task's own retention, else the server's; 0 keeps for ever. Read in the order
        # of tasks_by_end, stopping at `limit`: `+state` keeps the planner off tasks_by_state, through which it
        # would sort every ended task at each sweep (70 ms for 300,000, and more as a backlog grows).
        states = ", ".join("?" * len(ENDED_STATES))
        sql = f"""SELECT task_id FROM tasks WHERE ended_at IS NOT NULL AND +state IN ({states})
                  AND ((retention IS NULL AND ? > 0 AND ended_at < ?) OR (retention > 0 AND ended_at + retention < ?))
                  ORDER BY ended_at LIMIT ?"""
        params = [*(state.value for state in ENDED_STATES), retention, now - retention, now, limit]
        return [row[0] for row in self._query(sql, params)]

    def load_unfinished(self) -> builtins.list[Task]:
        states = [s.value for s in UNFINISHED_STATES]
        rows = self._query(
            f"SELECT {COLUMNS} FROM tasks WHERE state IN ({', '.join('?' * len(states))}) ORDER BY seq",
            states,
        )
        return [task_from_row(row) for row in rows]

    def max_order(self) -> int:
        return int(self._query("SELECT coalesce(max(seq), 0) FROM tasks")[0][0])

    def count(self) -> int:
        return int(self._query("SELECT count(*) FROM tasks")[0][0])

    def load_schedules(self) -> builtins.list[Schedule]:
        return [schedule_from_row(row) for row in self._query(f"SELECT {SCHEDULE_COLUMNS} FROM schedules")]

    def put_schedule(self, schedule: Schedule) -> None:
        self._write_now(f"INSERT OR REPLACE INTO schedules ({SCHEDULE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        schedule_row(schedule))  # fmt: skip

    def delete_schedule(self, schedule_id: str) -> None:
        self._write_now("DELETE FROM schedules WHERE schedule_id = ?", (schedule_id,))

    def _write_now(self, sql: str, params: Sequence[Any]) -> None:
        """One statement in a transaction of its own (a rare write that needs no group commit)."""
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(sql, params)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._write_lock:
            self._writer.close()
        with self._read_lock:
            self._reader.close()
