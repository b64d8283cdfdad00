"""The PostgreSQL board's schema: created and migrated at start, under an advisory lock so that nodes starting
together migrate once; a newer schema than this server knows, or tables of ours without our version, refuse to
start (exit code 3, as with SQLite).

Tables are prefixed `taskservice_`, so the database may hold other things. Finished tasks do not slow the hot
path: claims and reaps read partial indexes over the unfinished tasks only.
"""

from __future__ import annotations

from typing import Any

from taskservice.core.model.errors import StoreOpenError
from taskservice.core.model.history import PROGRESS_STEP_PERCENT

SCHEMA_VERSION = 12
TASKS = "taskservice_tasks"
LOGS = "taskservice_logs"
# Dependencies not met yet: (a task, one it waits for); its `waiting` counts them.
WAITS = "taskservice_waits"
SCHEDULES = "taskservice_schedules"
LIMITS = "taskservice_limits"
# Each limit group's token bucket (limits with a rate).
BUCKETS = "taskservice_limit_buckets"
# Each fairness group's next turn (board/sql/turns.py).
TURNS = "taskservice_turns"
# The servers of the database: what each claims, as it last said.
NODES = "taskservice_nodes"
# Each task's state changes and progress samples (GetTaskHistory).
HISTORY = "taskservice_history"
# GetStats' tasks by type and state: the totals folded so far, and the changes since (each change's own rows, never
# a row two nodes' transactions would wait on each other for).
COUNTS = "taskservice_task_counts"
COUNT_CHANGES = "taskservice_task_count_changes"
# The key of the advisory lock a fold of the changes into the totals holds (one node folds at a time; the others
# skip, their reads add the changes not folded yet).
FOLD_LOCK = 0x636E7473  # "cnts"
VERSION_TABLE = "taskservice_schema"
# Any number: the key of the advisory lock migrations hold.
MIGRATION_LOCK = 0x7461736B  # "task"
# The key of the advisory lock claims hold while limits exist: a claim counts a group's running tasks, and the
# count holds until it commits.
CLAIM_LOCK = 0x6C696D74  # "limt"
CHANNEL = "taskservice"

MIGRATIONS: dict[int, list[str]] = {
    1: [
        f"""CREATE TABLE {TASKS} (
            submit_order        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            task_id             text NOT NULL UNIQUE,
            task_type           text NOT NULL,
            args                jsonb NOT NULL,
            state               text NOT NULL,
            priority            integer NOT NULL,
            labels              jsonb NOT NULL,
            time_limit          double precision,
            submitted_at        double precision NOT NULL,
            started_at          double precision,
            ended_at            double precision,
            attempt             integer NOT NULL DEFAULT 0,
            progress_percent    double precision NOT NULL DEFAULT 0,
            progress_message    text NOT NULL DEFAULT '',
            progress_current    bigint NOT NULL DEFAULT 0,
            progress_total      bigint NOT NULL DEFAULT 0,
            progress_updated_at double precision,
            result              jsonb,
            error_type          text,
            error_message       text,
            error_traceback     text,
            event_sequence      bigint NOT NULL,
            request_digest      text NOT NULL,
            run_after           double precision,  -- a PENDING task is claimed no earlier (Unix seconds)
            owner               text,              -- the node running it
            lease_until         double precision,  -- its owner's lease (Unix seconds)
            stop_reason         text,              -- a Stop asked of it while it runs elsewhere
            transitions         jsonb NOT NULL DEFAULT '[]'  -- its last state changes, [[sequence, state], ...]
        )""",
        # Claims: PENDING only, in claim order.
        f"CREATE INDEX taskservice_ready ON {TASKS} (priority DESC, submit_order) WHERE state = 'PENDING'",
        # Reaps and each node's own runs: unfinished only.
        f"CREATE INDEX taskservice_leased ON {TASKS} (lease_until) WHERE state IN ('RUNNING', 'STOPPING')",
        f"CREATE INDEX taskservice_owned ON {TASKS} (owner) WHERE state IN ('RUNNING', 'STOPPING')",
        # ListTasks filters.
        f"CREATE INDEX taskservice_by_state ON {TASKS} (state, submit_order DESC)",
        f"CREATE INDEX taskservice_by_type ON {TASKS} (task_type, submit_order DESC)",
        f"CREATE INDEX taskservice_by_labels ON {TASKS} USING gin (labels jsonb_path_ops)",
        # Task logs: chunks at absolute offsets; the oldest give way past the cap.
        f"""CREATE TABLE {LOGS} (
            task_id text NOT NULL,
            byte_offset bigint NOT NULL,
            data bytea NOT NULL,
            PRIMARY KEY (task_id, byte_offset)
        )""",
    ],
    # Retention: a task's own (seconds; NULL: the server's, 0: for ever), and ended tasks found by their end.
    2: [
        f"ALTER TABLE {TASKS} ADD COLUMN retention double precision",
        f"CREATE INDEX taskservice_by_end ON {TASKS} (ended_at) WHERE ended_at IS NOT NULL",
    ],
    # Dependencies: the ids a task was submitted after, how many of them it still waits for, and which. Claims read
    # only the tasks that wait for none.
    3: [
        f"ALTER TABLE {TASKS} ADD COLUMN after_ids jsonb",
        f"ALTER TABLE {TASKS} ADD COLUMN waiting integer NOT NULL DEFAULT 0",
        f"""CREATE TABLE {WAITS} (
            dep_id  text NOT NULL,
            task_id text NOT NULL,
            PRIMARY KEY (dep_id, task_id)
        )""",
        f"CREATE INDEX taskservice_waits_by_task ON {WAITS} (task_id)",
        "DROP INDEX taskservice_ready",
        f"""CREATE INDEX taskservice_ready ON {TASKS} (priority DESC, submit_order)
            WHERE state = 'PENDING' AND waiting = 0""",
    ],
    # Schedules: a definition and where it stands; every server looks for the due ones.
    4: [
        f"""CREATE TABLE {SCHEDULES} (
            schedule_id  text PRIMARY KEY,
            definition   jsonb NOT NULL,
            paused       boolean NOT NULL,
            next_due     double precision NOT NULL,
            created_at   double precision NOT NULL,
            last_due     double precision,
            last_task_id text NOT NULL DEFAULT '',
            last_error   text NOT NULL DEFAULT ''
        )""",
        f"CREATE INDEX taskservice_schedules_due ON {SCHEDULES} (next_due) WHERE NOT paused",
    ],
    # Flow control: limits, their groups' token buckets, and fair turns (a task's place among its group's).
    5: [
        f"""CREATE TABLE {LIMITS} (
            limit_id    text PRIMARY KEY,
            definition  jsonb NOT NULL,
            created_at  double precision NOT NULL,
            updated_at  double precision NOT NULL
        )""",
        f"""CREATE TABLE {BUCKETS} (
            limit_id text NOT NULL,
            grp      text NOT NULL,
            tokens   double precision NOT NULL,
            at       double precision NOT NULL,
            PRIMARY KEY (limit_id, grp)
        )""",
        f"""CREATE TABLE {TURNS} (
            grp       text PRIMARY KEY,
            next_turn double precision NOT NULL
        )""",
        f"ALTER TABLE {TASKS} ADD COLUMN turn double precision NOT NULL DEFAULT 0",
        "DROP INDEX taskservice_ready",
        f"""CREATE INDEX taskservice_ready ON {TASKS} (priority DESC, turn, submit_order)
            WHERE state = 'PENDING' AND waiting = 0""",
    ],
    6: [
        f"""CREATE TABLE {NODES} (
            node       text PRIMARY KEY,
            types      jsonb NOT NULL,
            labels     jsonb NOT NULL,
            started_at double precision NOT NULL,
            seen_at    double precision NOT NULL
        )""",
    ],
    # Tracing: the trace context of the call that submitted a task (JSON propagation headers; NULL: none).
    7: [f"ALTER TABLE {TASKS} ADD COLUMN trace_context text"],
    # Child tasks: the task whose handler submitted one (NULL: none), and whether its Stop leaves the child be.
    8: [
        f"ALTER TABLE {TASKS} ADD COLUMN parent_id text",
        f"ALTER TABLE {TASKS} ADD COLUMN detached boolean NOT NULL DEFAULT false",
        f"CREATE INDEX taskservice_parent ON {TASKS} (parent_id, submit_order) WHERE parent_id IS NOT NULL",
    ],
    # ListNodes: each server's worker threads and how many were busy when it last said.
    9: [
        f"ALTER TABLE {NODES} ADD COLUMN workers integer NOT NULL DEFAULT 0",
        f"ALTER TABLE {NODES} ADD COLUMN busy integer NOT NULL DEFAULT 0",
    ],
    # GetTaskHistory: as SQLite's migration 13 (its comment says what is kept, and when), by a trigger that runs
    # only for the updates that change a state, write a start, or pass a tenth of the way.
    10: [
        f"""CREATE TABLE {HISTORY} (
            id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            submit_order bigint NOT NULL REFERENCES {TASKS} ON DELETE CASCADE,
            at           double precision NOT NULL,
            state        text NOT NULL,
            attempt      integer NOT NULL,
            percent      double precision,
            message      text
        )""",
        f"CREATE INDEX taskservice_history_by_task ON {HISTORY} (submit_order)",
        f"""INSERT INTO {HISTORY} (submit_order, at, state, attempt)
            SELECT submit_order, submitted_at, 'PENDING', 0 FROM {TASKS}
            UNION ALL SELECT submit_order, started_at, 'RUNNING', attempt FROM {TASKS} WHERE started_at > 0
            UNION ALL SELECT submit_order, ended_at, state, attempt FROM {TASKS} WHERE ended_at > 0""",
        f"""CREATE FUNCTION taskservice_history() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                INSERT INTO {HISTORY} (submit_order, at, state, attempt)
                    VALUES (NEW.submit_order, NEW.submitted_at, NEW.state, NEW.attempt);
                RETURN NULL;
            END IF;
            IF OLD.started_at IS NULL AND NEW.started_at IS NOT NULL THEN
                INSERT INTO {HISTORY} (submit_order, at, state, attempt)
                    VALUES (NEW.submit_order, NEW.started_at, 'RUNNING', NEW.attempt);
            END IF;
            IF (OLD.state <> NEW.state OR OLD.attempt <> NEW.attempt) AND NEW.state <> 'RUNNING' THEN
                INSERT INTO {HISTORY} (submit_order, at, state, attempt)
                    VALUES (NEW.submit_order, COALESCE(NEW.ended_at, extract(epoch FROM clock_timestamp())),
                            NEW.state, NEW.attempt);
            ELSIF OLD.state = NEW.state AND OLD.attempt = NEW.attempt
                    AND floor(NEW.progress_percent / {PROGRESS_STEP_PERCENT})
                        > floor(OLD.progress_percent / {PROGRESS_STEP_PERCENT}) THEN
                INSERT INTO {HISTORY} (submit_order, at, state, attempt, percent, message)
                    VALUES (NEW.submit_order, COALESCE(NEW.progress_updated_at, extract(epoch FROM clock_timestamp())),
                            NEW.state, NEW.attempt, NEW.progress_percent, NEW.progress_message);
            END IF;
            RETURN NULL;
        END $$""",
        f"""CREATE TRIGGER taskservice_history_insert AFTER INSERT ON {TASKS}
            FOR EACH ROW EXECUTE FUNCTION taskservice_history()""",
        f"""CREATE TRIGGER taskservice_history_update AFTER UPDATE ON {TASKS} FOR EACH ROW
            WHEN (OLD.state <> NEW.state OR OLD.attempt <> NEW.attempt
                  OR (OLD.started_at IS NULL AND NEW.started_at IS NOT NULL)
                  OR floor(NEW.progress_percent / {PROGRESS_STEP_PERCENT})
                     > floor(OLD.progress_percent / {PROGRESS_STEP_PERCENT}))
            EXECUTE FUNCTION taskservice_history()""",
    ],
    # GetStats without a GROUP BY over every task (0.2 s with 1,000,000 stored, at each node's every overview
    # refresh): triggers add each change's +1/-1 rows to COUNT_CHANGES in its own transaction (a statement's inserts
    # and deletes as one row per type and state), and a node's periodic reap folds them into COUNTS. A counter row
    # updated by every transition would have made every claim and end of a type wait on each other.
    11: [
        f"""CREATE TABLE {COUNTS} (
            task_type text NOT NULL,
            state     text NOT NULL,
            n         bigint NOT NULL,
            PRIMARY KEY (task_type, state)
        )""",
        f"""CREATE TABLE {COUNT_CHANGES} (task_type text NOT NULL, state text NOT NULL, n bigint NOT NULL)""",
        # No change slips between the count and the triggers (the migration's transaction holds the lock).
        f"LOCK TABLE {TASKS} IN SHARE ROW EXCLUSIVE MODE",
        f"INSERT INTO {COUNTS} SELECT task_type, state, count(*) FROM {TASKS} GROUP BY task_type, state",
        f"""CREATE FUNCTION taskservice_count_added() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO {COUNT_CHANGES} SELECT task_type, state, count(*) FROM added GROUP BY task_type, state;
            RETURN NULL;
        END $$""",
        f"""CREATE FUNCTION taskservice_count_removed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO {COUNT_CHANGES} SELECT task_type, state, -count(*) FROM removed GROUP BY task_type, state;
            RETURN NULL;
        END $$""",
        f"""CREATE FUNCTION taskservice_count_moved() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO {COUNT_CHANGES} VALUES (OLD.task_type, OLD.state, -1), (NEW.task_type, NEW.state, 1);
            RETURN NULL;
        END $$""",
        f"""CREATE TRIGGER taskservice_count_insert AFTER INSERT ON {TASKS} REFERENCING NEW TABLE AS added
            FOR EACH STATEMENT EXECUTE FUNCTION taskservice_count_added()""",
        f"""CREATE TRIGGER taskservice_count_delete AFTER DELETE ON {TASKS} REFERENCING OLD TABLE AS removed
            FOR EACH STATEMENT EXECUTE FUNCTION taskservice_count_removed()""",
        f"""CREATE TRIGGER taskservice_count_update AFTER UPDATE ON {TASKS} FOR EACH ROW
            WHEN (OLD.state <> NEW.state OR OLD.task_type <> NEW.task_type)
            EXECUTE FUNCTION taskservice_count_moved()""",
    ],
    # ListNodes: the handlers each server abandoned after a stop that still run, when it last said.
    12: [f"ALTER TABLE {NODES} ADD COLUMN abandoned integer NOT NULL DEFAULT 0"],
}


def migrate(conn: Any, where: str) -> None:
    """Bring the schema to SCHEMA_VERSION; StoreOpenError for a schema this server must not touch."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
        if VERSION_TABLE in tables:
            version = conn.execute(f"SELECT max(version) FROM {VERSION_TABLE}").fetchone()[0] or 0
        elif tables & {TASKS, LOGS, WAITS, SCHEDULES, LIMITS}:
            raise StoreOpenError(
                f"{where} holds taskservice tables without a schema version (a foreign or damaged schema); point --db "
                "at another database"
            )
        else:
            conn.execute(f"CREATE TABLE {VERSION_TABLE} (version integer NOT NULL)")
            version = 0
        if version > SCHEMA_VERSION:
            raise StoreOpenError(
                f"{where} has taskservice schema version {version}, newer than this server knows ({SCHEMA_VERSION}); "
                "run a newer taskservice, or point --db at another database"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[target]:
                conn.execute(statement)
            conn.execute(f"INSERT INTO {VERSION_TABLE} (version) VALUES (%s)", (target,))
