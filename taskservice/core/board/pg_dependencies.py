"""Dependencies on the PostgreSQL board (see dependencies.py for what they mean): the SQL that runs inside the
transactions of Submit, ends, stops, reaps and retries.

A waiting task has one row in taskservice_waits per dependency not ended yet, and `waiting` counts them; claims
read only tasks with waiting = 0 (a partial index). Who reads a dependency to decide takes its row FOR SHARE, and
who ends one updates that row first: so an end and a Submit that names it never miss each other (whichever commits
second sees the other's work).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg

from taskservice.core.board.dependencies import failure_of
from taskservice.core.board.pg_rows import COLUMNS, T_COLUMNS, task_from_row, transition_sql
from taskservice.core.board.pg_schema import TASKS, WAITS
from taskservice.core.models import Task, TaskState

Cascade = list[tuple[Task, TaskState]]
# What settle() found: the tasks it revoked, and whether any stopped waiting.
Settled = tuple[Cascade, bool]


def dependencies_of(cur: psycopg.Cursor[Any], ids: Iterable[str]) -> dict[str, Task]:
    """The stored tasks among `ids`, their rows locked against ends until this transaction commits."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    cur.execute(f"SELECT {COLUMNS} FROM {TASKS} WHERE task_id = ANY(%s) ORDER BY submit_order FOR SHARE", (wanted,))
    return {row[1]: task_from_row(row) for row in cur.fetchall()}


def add_waits(cur: psycopg.Cursor[Any], waits: Sequence[tuple[str, str]]) -> None:
    """Rows of (task id, a dependency it waits for)."""
    if waits:
        cur.execute(
            f"INSERT INTO {WAITS} (task_id, dep_id) SELECT * FROM unnest(%s::text[], %s::text[])",
            ([task_id for task_id, _ in waits], [dep for _, dep in waits]),
        )


def settle(cur: psycopg.Cursor[Any], ended: Sequence[Task]) -> Settled:
    """These tasks ended: release their dependents (SUCCESS) or revoke them, down the chain (any other end).
    Returns the tasks revoked, each with the state it had, and whether any task stopped waiting."""
    released = False
    succeeded = [task.task_id for task in ended if task.state is TaskState.SUCCESS]
    if succeeded:
        cur.execute(
            f"""WITH met AS (DELETE FROM {WAITS} WHERE dep_id = ANY(%s) RETURNING task_id),
                    counted AS (SELECT task_id, count(*) AS n FROM met GROUP BY task_id)
                UPDATE {TASKS} t SET waiting = greatest(t.waiting - counted.n, 0) FROM counted
                WHERE t.task_id = counted.task_id RETURNING t.waiting""",
            (succeeded,),
        )
        released = any(row[0] == 0 for row in cur.fetchall())
    cascade: Cascade = []
    failed = {task.task_id: task for task in ended if task.state is not TaskState.SUCCESS}
    while failed:
        cur.execute(
            f"""WITH gone AS (DELETE FROM {WAITS} WHERE dep_id = ANY(%s) RETURNING task_id, dep_id)
                SELECT DISTINCT ON (task_id) task_id, dep_id FROM gone ORDER BY task_id, dep_id""",
            (list(failed),),
        )
        doomed = cur.fetchall()
        if not doomed:
            break
        errors = [failure_of(failed[dep]) for _, dep in doomed]
        cur.execute(
            f"""UPDATE {TASKS} t SET state = 'REVOKED', error_type = v.etype, error_message = v.emsg,
                    error_traceback = NULL, ended_at = %s, run_after = NULL, waiting = 0,
                    event_sequence = t.event_sequence + 1,
                    transitions = {transition_sql("t.event_sequence + 1", "'REVOKED'")}
                FROM unnest(%s::text[], %s::text[], %s::text[]) AS v(id, etype, emsg)
                WHERE t.task_id = v.id AND t.state = 'PENDING'
                RETURNING {T_COLUMNS}""",
            (time.time(), [task_id for task_id, _ in doomed], [e.type for e in errors], [e.message for e in errors]),
        )
        revoked = [task_from_row(row) for row in cur.fetchall()]
        stop_waiting(cur, [task.task_id for task in revoked])
        cascade.extend((task, TaskState.PENDING) for task in revoked)
        failed = {task.task_id: task for task in revoked}
    return cascade, released


def stop_waiting(cur: psycopg.Cursor[Any], task_ids: Sequence[str]) -> None:
    """These tasks ended while they waited: they wait for nothing any more."""
    if task_ids:
        cur.execute(f"DELETE FROM {WAITS} WHERE task_id = ANY(%s)", (list(task_ids),))
