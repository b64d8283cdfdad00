"""The embedded SQLite file's schema: its versions and their migrations, its columns, and what a damaged file
looks like. The board that reads and writes it is board.py beside this, in the statements of queries.py.

Durability: every commit is synchronous=FULL in WAL mode, so an acknowledged Submit and every state change survive
a crash of the process or of the machine.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from taskservice.core.board.sql.rows import dumps
from taskservice.core.model.errors import StoreDamaged, StoreOpenError
from taskservice.core.model.history import PROGRESS_STEP_PERCENT
from taskservice.core.model.models import Task
from taskservice.telemetry.context import dump_carrier

_DAMAGED = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)

# Bump with a migration in MIGRATIONS when the schema changes; old files are migrated on open.
SCHEMA_VERSION = 14

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
    # Flow control: limits, their groups' token buckets, and fair turns (a task's place among its group's, in
    # claim order; each group's next turn in `turns`).
    7: """
    CREATE TABLE limits (
        limit_id   TEXT PRIMARY KEY,
        definition TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE limit_buckets (
        limit_id TEXT NOT NULL,
        grp      TEXT NOT NULL,
        tokens   REAL NOT NULL,
        at       REAL NOT NULL,
        PRIMARY KEY (limit_id, grp)
    ) WITHOUT ROWID;
    CREATE TABLE turns (
        grp       TEXT PRIMARY KEY,
        next_turn REAL NOT NULL
    ) WITHOUT ROWID;
    ALTER TABLE tasks ADD COLUMN turn REAL NOT NULL DEFAULT 0;
    DROP INDEX tasks_ready;
    CREATE INDEX tasks_ready ON tasks (priority DESC, turn, seq) WHERE state = 'PENDING' AND waiting = 0;
    """,
    # The servers of the file (the engine processes of --procs): what each claims, as it last said.
    8: """
    CREATE TABLE nodes (
        node       TEXT PRIMARY KEY,
        types      TEXT NOT NULL,
        labels     TEXT NOT NULL,
        started_at REAL NOT NULL,
        seen_at    REAL NOT NULL
    );
    """,
    # Tracing: the trace context of the call that submitted a task (JSON propagation headers; NULL: none).
    9: """
    ALTER TABLE tasks ADD COLUMN trace_context TEXT;
    """,
    # Child tasks: the task whose handler submitted one (NULL: none), and whether its Stop leaves the child be.
    10: """
    ALTER TABLE tasks ADD COLUMN parent_id TEXT;
    ALTER TABLE tasks ADD COLUMN detached INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX tasks_parent ON tasks (parent_id, seq) WHERE parent_id IS NOT NULL;
    """,
    # ListNodes: each server's worker threads and how many were busy when it last said.
    11: """
    ALTER TABLE nodes ADD COLUMN workers INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE nodes ADD COLUMN busy INTEGER NOT NULL DEFAULT 0;
    """,
    # GetStats: how many tasks of each type are in each state, kept by triggers in the transaction of each change
    # (a count of 100,000 rows took 70 ms at every overview refresh; a trigger's upsert costs microseconds).
    12: """
    CREATE TABLE task_counts (
        task_type TEXT NOT NULL,
        state     TEXT NOT NULL,
        n         INTEGER NOT NULL,
        PRIMARY KEY (task_type, state)
    ) WITHOUT ROWID;
    INSERT INTO task_counts SELECT task_type, state, count(*) FROM tasks GROUP BY task_type, state;
    CREATE TRIGGER task_counts_insert AFTER INSERT ON tasks BEGIN
        INSERT INTO task_counts VALUES (NEW.task_type, NEW.state, 1) ON CONFLICT DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER task_counts_update AFTER UPDATE OF state ON tasks WHEN OLD.state <> NEW.state BEGIN
        UPDATE task_counts SET n = n - 1 WHERE task_type = OLD.task_type AND state = OLD.state;
        INSERT INTO task_counts VALUES (NEW.task_type, NEW.state, 1) ON CONFLICT DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER task_counts_delete AFTER DELETE ON tasks BEGIN
        UPDATE task_counts SET n = n - 1 WHERE task_type = OLD.task_type AND state = OLD.state;
    END;
    """,
    # GetTaskHistory: each state change and a progress sample at each tenth of the way, written by triggers in the
    # transaction of the change. A run's start is kept when its time is written (a claim has none yet); a change
    # without a time of its own (STOPPING, PENDING again) takes the database's clock. Deleted with the task.
    13: f"""
    CREATE TABLE task_history (
        seq     INTEGER NOT NULL,  -- the task's
        at      REAL NOT NULL,
        state   TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        percent REAL,              -- a progress sample; NULL for a state change
        message TEXT
    );
    CREATE INDEX task_history_by_task ON task_history (seq);
    INSERT INTO task_history SELECT seq, submitted_at, 'PENDING', 0, NULL, NULL FROM tasks;
    INSERT INTO task_history SELECT seq, started_at, 'RUNNING', attempt, NULL, NULL FROM tasks WHERE started_at > 0;
    INSERT INTO task_history SELECT seq, ended_at, state, attempt, NULL, NULL FROM tasks WHERE ended_at > 0;
    CREATE TRIGGER task_history_insert AFTER INSERT ON tasks BEGIN
        INSERT INTO task_history VALUES (NEW.seq, NEW.submitted_at, NEW.state, NEW.attempt, NULL, NULL);
    END;
    CREATE TRIGGER task_history_update AFTER UPDATE ON tasks
    WHEN OLD.state <> NEW.state OR OLD.attempt <> NEW.attempt OR (OLD.started_at IS NULL AND NEW.started_at IS NOT NULL)
        OR CAST(NEW.progress_percent / {PROGRESS_STEP_PERCENT} AS INTEGER)
            > CAST(OLD.progress_percent / {PROGRESS_STEP_PERCENT} AS INTEGER)
    BEGIN
        INSERT INTO task_history SELECT NEW.seq, NEW.started_at, 'RUNNING', NEW.attempt, NULL, NULL
            WHERE OLD.started_at IS NULL AND NEW.started_at IS NOT NULL;
        INSERT INTO task_history
            SELECT NEW.seq, COALESCE(NEW.ended_at, (julianday('now') - 2440587.5) * 86400.0), NEW.state, NEW.attempt,
                NULL, NULL
            WHERE (OLD.state <> NEW.state OR OLD.attempt <> NEW.attempt) AND NEW.state <> 'RUNNING';
        INSERT INTO task_history
            SELECT NEW.seq, COALESCE(NEW.progress_updated_at, (julianday('now') - 2440587.5) * 86400.0), NEW.state,
                NEW.attempt, NEW.progress_percent, NEW.progress_message
            WHERE OLD.state = NEW.state AND OLD.attempt = NEW.attempt
                AND CAST(NEW.progress_percent / {PROGRESS_STEP_PERCENT} AS INTEGER)
                    > CAST(OLD.progress_percent / {PROGRESS_STEP_PERCENT} AS INTEGER);
    END;
    CREATE TRIGGER task_history_delete AFTER DELETE ON tasks BEGIN
        DELETE FROM task_history WHERE seq = OLD.seq;
    END;
    """,
    # ListNodes: the handlers each server abandoned after a stop that still run, when it last said.
    14: """
    ALTER TABLE nodes ADD COLUMN abandoned INTEGER NOT NULL DEFAULT 0;
    """,
}

# In the order task_from_row reads.
COLUMNS = (
    "seq, task_id, task_type, args, state, priority, labels, time_limit, submitted_at, started_at, ended_at, "
    "attempt, progress_percent, progress_message, progress_current, progress_total, progress_updated_at, "
    "result, error_type, error_message, error_traceback, sequence, request_digest, run_after, retention, after_ids, "
    "trace_context, parent_id, detached"
)


def task_row(task: Task) -> tuple[Any, ...]:
    """A whole task as a row of COLUMNS (tools and tests that write a file straight, with no server)."""
    p = task.progress
    e = task.error
    return (
        task.submit_order, task.task_id, task.task_type, dumps(task.args), task.state.value, task.priority,
        dumps(task.labels), task.time_limit, task.submitted_at, task.started_at, task.ended_at,
        task.attempt, p.percent, p.message, p.current, p.total, p.updated_at,
        None if task.result is None else dumps(task.result),
        e.type if e else None, e.message if e else None, e.traceback if e else None,
        task.event_sequence, task.request_digest, task.run_after, task.retention,
        dumps(list(task.after)) if task.after else None, dump_carrier(task.trace_context), task.parent_id or None,
        int(task.detached),
    )  # fmt: skip


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
            # Statements run one by one inside this transaction (executescript commits).
            for statement in _statements(MIGRATIONS[target]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {target}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _statements(script: str) -> list[str]:
    """A script's statements: split at each ';' that ends one (a trigger's body holds several)."""
    statements, pending = [], ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending)
            pending = ""
    return statements


def damage(exc: sqlite3.DatabaseError, path: Path) -> StoreDamaged | None:
    """StoreDamaged when a read failed with `exc` because the file's pages are not what SQLite wrote."""
    if getattr(exc, "sqlite_errorcode", None) not in _DAMAGED:
        return None
    return StoreDamaged(
        f"the task database {path} is damaged ({exc}); stop the server and restore the file from a backup, or "
        "recover what is readable with `sqlite3 FILE .recover`"
    )
