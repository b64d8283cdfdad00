"""The lifecycle's statements in PostgreSQL (see sql/queries.py for what each one means).

Sets travel as arrays (`unnest`, `= ANY`), JSON as jsonb; claims and deletions take rows `FOR UPDATE SKIP LOCKED`,
so nodes never take the same task and never wait for each other; who reads a dependency to decide takes its row
`FOR SHARE`. Every write by an owner is fenced on (owner, attempt).
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from taskservice.core.board.base import REAP_SEQUENCE_GAP, Claim, ClaimScope, NewTask
from taskservice.core.board.postgres.filters import filter_sql
from taskservice.core.board.postgres.limit_queries import PgLimitQueries
from taskservice.core.board.postgres.rows import CLAIMED, COLUMNS, T_COLUMNS, task_from_row, transition_sql
from taskservice.core.board.postgres.schema import HISTORY, SCHEDULES, TASKS, WAITS
from taskservice.core.board.sql.listing import order_sql
from taskservice.core.board.sql.queries import Birth, Cursor, HistoryRow
from taskservice.core.board.sql.rows import RETRYABLE, dumps, end_row, progress_row
from taskservice.core.model.listing import ListPosition, TaskOrder
from taskservice.core.model.models import ErrorType, Progress, Task, TaskError, TaskFilter, TaskState
from taskservice.core.model.schedules import SCHEDULE_COLUMNS, Schedule, schedule_from_row, schedule_row
from taskservice.telemetry.context import dump_carrier

ENDED = sorted(state.value for state in TaskState if state.is_terminal)
# A schedule row with its definition as text, as schedule_from_row() reads it.
_SCHEDULE_ROW = SCHEDULE_COLUMNS.replace("definition", "definition::text")


class PgQueries(PgLimitQueries):
    # ------------------------------------------------------------------ submission and dependencies

    def insert(
        self, cur: Cursor, tasks: Sequence[NewTask], births: Mapping[str, Birth], waiting: Mapping[str, int], now: float
    ) -> dict[str, Task]:
        cur.execute(
            f"""INSERT INTO {TASKS} (task_id, task_type, args, state, priority, labels, time_limit, submitted_at,
                    event_sequence, request_digest, transitions, run_after, retention, after_ids, waiting,
                    ended_at, error_type, error_message, turn, trace_context, parent_id, detached)
                SELECT i, ty, a::jsonb, st, p, l::jsonb, tl, %s, 1, d, jsonb_build_array(jsonb_build_array(1, st)),
                    ra, rt, af::jsonb, w, CASE WHEN st = 'PENDING' THEN NULL ELSE %s END, et, em, tu, tc, pa, dt
                FROM unnest(%s::text[], %s::text[], %s::text[], %s::int[], %s::text[], %s::float8[], %s::text[],
                    %s::float8[], %s::float8[], %s::text[], %s::text[], %s::int[], %s::text[], %s::text[],
                    %s::float8[], %s::text[], %s::text[], %s::bool[])
                    AS v(i, ty, a, p, l, tl, d, ra, rt, af, st, w, et, em, tu, tc, pa, dt)
                ON CONFLICT (task_id) DO NOTHING
                RETURNING {COLUMNS}""",
            (
                now,
                now,
                [t.task_id for t in tasks],
                [t.task_type for t in tasks],
                [dumps(t.args) for t in tasks],
                [t.priority for t in tasks],
                [dumps(t.labels) for t in tasks],
                [t.time_limit for t in tasks],
                [t.request_digest for t in tasks],
                [t.run_after for t in tasks],
                [t.retention for t in tasks],
                [dumps(list(t.after)) if t.after else None for t in tasks],
                [births[t.task_id][0] for t in tasks],
                [waiting.get(t.task_id, 0) for t in tasks],
                [births[t.task_id][1] for t in tasks],
                [births[t.task_id][2] for t in tasks],
                [t.turn for t in tasks],
                [dump_carrier(t.trace_context) for t in tasks],
                [t.parent_id or None for t in tasks],
                [t.detached for t in tasks],
            ),
        )
        return {row[1]: task_from_row(row) for row in cur.fetchall()}

    def tasks(self, cur: Cursor, task_ids: Collection[str], *, lock: bool = False) -> dict[str, Task]:
        wanted = sorted(set(task_ids))
        if not wanted:
            return {}
        locked = " ORDER BY submit_order FOR SHARE" if lock else ""
        cur.execute(f"SELECT {COLUMNS} FROM {TASKS} WHERE task_id = ANY(%s){locked}", (wanted,))
        return {row[1]: task_from_row(row) for row in cur.fetchall()}

    def add_waits(self, cur: Cursor, waits: Sequence[tuple[str, str]]) -> None:
        if waits:
            cur.execute(
                f"INSERT INTO {WAITS} (task_id, dep_id) SELECT * FROM unnest(%s::text[], %s::text[])",
                ([task_id for task_id, _ in waits], [dep for _, dep in waits]),
            )

    def release(self, cur: Cursor, succeeded: Sequence[str]) -> bool:
        cur.execute(
            f"""WITH met AS (DELETE FROM {WAITS} WHERE dep_id = ANY(%s) RETURNING task_id),
                    counted AS (SELECT task_id, count(*) AS n FROM met GROUP BY task_id)
                UPDATE {TASKS} t SET waiting = greatest(t.waiting - counted.n, 0) FROM counted
                WHERE t.task_id = counted.task_id RETURNING t.waiting""",
            (list(succeeded),),
        )
        return any(row[0] == 0 for row in cur.fetchall())

    def take_waits(self, cur: Cursor, failed: Sequence[str]) -> list[tuple[str, str]]:
        cur.execute(
            f"""WITH gone AS (DELETE FROM {WAITS} WHERE dep_id = ANY(%s) RETURNING task_id, dep_id)
                SELECT DISTINCT ON (task_id) task_id, dep_id FROM gone ORDER BY task_id, dep_id""",
            (list(failed),),
        )
        return [(task_id, dep) for task_id, dep in cur.fetchall()]

    def revoke_waiting(self, cur: Cursor, doomed: Sequence[tuple[str, TaskError]], now: float) -> list[Task]:
        cur.execute(
            f"""UPDATE {TASKS} t SET state = 'REVOKED', error_type = v.etype, error_message = v.emsg,
                    error_traceback = NULL, ended_at = %s, run_after = NULL, waiting = 0,
                    event_sequence = t.event_sequence + 1,
                    transitions = {transition_sql("t.event_sequence + 1", "'REVOKED'")}
                FROM unnest(%s::text[], %s::text[], %s::text[]) AS v(id, etype, emsg)
                WHERE t.task_id = v.id AND t.state = 'PENDING'
                RETURNING {T_COLUMNS}""",
            (now, [task_id for task_id, _ in doomed], [e.type for _, e in doomed], [e.message for _, e in doomed]),
        )
        return [task_from_row(row) for row in cur.fetchall()]

    def waits_of(self, cur: Cursor, task_ids: Collection[str]) -> dict[str, builtins.list[str]]:
        cur.execute(f"SELECT task_id, dep_id FROM {WAITS} WHERE task_id = ANY(%s) ORDER BY dep_id", (list(task_ids),))
        found: dict[str, list[str]] = {}
        for task_id, dep in cur.fetchall():
            found.setdefault(task_id, []).append(dep)
        return found

    def stop_waiting(self, cur: Cursor, task_ids: Sequence[str]) -> None:
        if task_ids:
            cur.execute(f"DELETE FROM {WAITS} WHERE task_id = ANY(%s)", (list(task_ids),))

    # ------------------------------------------------------------------ running

    def claim(self, cur: Cursor, node: str, scope: ClaimScope, n: int, lease_until: float, now: float) -> list[Task]:
        types_clause = "AND task_type = ANY(%(types)s)" if scope.types is not None else ""
        labels_clause = "AND labels @> %(labels)s::jsonb" if scope.labels else ""
        cur.execute(
            f"""WITH picked AS (
                    SELECT submit_order FROM {TASKS}
                    WHERE state = 'PENDING' AND waiting = 0 AND (run_after IS NULL OR run_after <= %(now)s)
                        {types_clause} {labels_clause}
                    ORDER BY priority DESC, turn, submit_order LIMIT %(n)s
                    FOR UPDATE SKIP LOCKED)
                UPDATE {TASKS} t SET {CLAIMED}
                FROM picked WHERE t.submit_order = picked.submit_order
                RETURNING {T_COLUMNS}""",
            {"now": now, "n": n, "node": node, "lease": lease_until, "types": sorted(scope.types or []),
             "labels": dumps(dict(scope.labels))},
        )  # fmt: skip
        return [task_from_row(row) for row in cur.fetchall()]

    def start(self, cur: Cursor, claim: Claim, started_at: float) -> None:
        cur.execute(
            f"""UPDATE {TASKS} SET started_at = %s
                WHERE task_id = %s AND owner = %s AND attempt = %s AND started_at IS NULL""",
            (started_at, claim.task_id, claim.node, claim.attempt),
        )

    def renew(self, cur: Cursor, node: str, task_ids: Sequence[str], lease_until: float) -> set[tuple[str, int]]:
        cur.execute(
            f"""UPDATE {TASKS} SET lease_until = %s
                WHERE owner = %s AND state IN ('RUNNING', 'STOPPING') AND task_id = ANY(%s)
                RETURNING task_id, attempt""",
            (lease_until, node, list(task_ids)),
        )
        return {(task_id, attempt) for task_id, attempt in cur.fetchall()}

    def mark_stopping(self, cur: Cursor, claim: Claim, sequence: int) -> bool:
        cur.execute(
            f"""UPDATE {TASKS} t SET state = 'STOPPING', event_sequence = %(seq)s, stop_reason = NULL,
                    transitions = {transition_sql("%(seq)s", "'STOPPING'")}
                WHERE task_id = %(id)s AND owner = %(node)s AND attempt = %(attempt)s AND state = 'RUNNING'""",
            {"seq": sequence, "id": claim.task_id, "node": claim.node, "attempt": claim.attempt},
        )
        return bool(cur.rowcount == 1)

    def finish(self, cur: Cursor, ends: Sequence[tuple[Claim, Task]]) -> set[str]:
        columns = [list(column) for column in zip(*(end_row(claim, final) for claim, final in ends), strict=True)]
        cur.execute(
            f"""UPDATE {TASKS} t SET state = v.state, result = v.result::jsonb, error_type = v.etype,
                    error_message = v.emsg, error_traceback = v.etb, ended_at = v.ended, started_at = v.started,
                    progress_percent = v.pp, progress_message = v.pm, progress_current = v.pc,
                    progress_total = v.pt, progress_updated_at = v.pu, event_sequence = v.seq,
                    owner = NULL, lease_until = NULL, stop_reason = NULL,
                    transitions = {transition_sql("v.seq", "v.state")}
                FROM unnest(%s::text[], %s::int[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
                            %s::text[], %s::float8[], %s::float8[], %s::text[], %s::int8[], %s::int8[],
                            %s::float8[], %s::int8[], %s::float8[])
                    AS v(id, attempt, node, state, result, etype, emsg, etb, ended, pp, pm, pc, pt, pu, seq,
                         started)
                WHERE t.task_id = v.id AND t.owner = v.node AND t.attempt = v.attempt
                    AND t.state IN ('RUNNING', 'STOPPING')
                RETURNING t.task_id""",
            columns,
        )
        return {row[0] for row in cur.fetchall()}

    def retry_at(self, cur: Cursor, claim: Claim, task: Task, due: float) -> bool:
        error = task.error
        cur.execute(
            f"""UPDATE {TASKS} t SET state = 'PENDING', run_after = %(due)s, owner = NULL, lease_until = NULL,
                    stop_reason = NULL, ended_at = NULL, event_sequence = %(seq)s, error_type = %(etype)s,
                    error_message = %(emsg)s, error_traceback = %(etb)s,
                    transitions = {transition_sql("%(seq)s", "'PENDING'")}
                WHERE task_id = %(id)s AND owner = %(node)s AND attempt = %(attempt)s
                    AND state IN ('RUNNING', 'STOPPING')""",
            {"due": due, "seq": task.event_sequence, "etype": error.type if error else None,
             "emsg": error.message if error else None, "etb": error.traceback if error else None,
             "id": claim.task_id, "node": claim.node, "attempt": claim.attempt},
        )  # fmt: skip
        return bool(cur.rowcount == 1)

    def save_progress(self, cur: Cursor, updates: Sequence[tuple[Claim, Progress, int]]) -> None:
        cur.execute(
            f"""UPDATE {TASKS} t SET progress_percent = v.pp, progress_message = v.pm, progress_current = v.pc,
                    progress_total = v.pt, progress_updated_at = v.pu,
                    event_sequence = greatest(t.event_sequence, v.seq)
                FROM unnest(%s::text[], %s::text[], %s::int[], %s::float8[], %s::text[], %s::int8[], %s::int8[],
                            %s::float8[], %s::int8[]) AS v(id, node, attempt, pp, pm, pc, pt, pu, seq)
                WHERE t.task_id = v.id AND t.owner = v.node AND t.attempt = v.attempt
                    AND t.state IN ('RUNNING', 'STOPPING')""",
            [list(column) for column in zip(*(progress_row(c, p, seq) for c, p, seq in updates), strict=True)],
        )

    def revoke_pending(self, cur: Cursor, task_id: str, reason: str, now: float) -> Task | None:
        cur.execute(
            f"""UPDATE {TASKS} t SET state = 'REVOKED', error_type = %(etype)s, error_message = %(reason)s,
                    error_traceback = NULL, ended_at = %(now)s, run_after = NULL,
                    event_sequence = t.event_sequence + 1,
                    transitions = {transition_sql("t.event_sequence + 1", "'REVOKED'")}
                WHERE task_id = %(id)s AND state = 'PENDING' RETURNING {T_COLUMNS}""",
            {"etype": ErrorType.REVOKED, "reason": reason, "now": now, "id": task_id},
        )
        row = cur.fetchone()
        return None if row is None else task_from_row(row)

    def flag_stop(self, cur: Cursor, task_id: str, reason: str) -> Task | None:
        cur.execute(
            f"UPDATE {TASKS} SET stop_reason = %s WHERE task_id = %s AND state = 'RUNNING' RETURNING {COLUMNS}",
            (reason, task_id),
        )
        row = cur.fetchone()
        return None if row is None else task_from_row(row)

    def stops_for(self, cur: Cursor, node: str) -> list[tuple[str, int, str]]:
        cur.execute(
            f"""SELECT task_id, attempt, stop_reason FROM {TASKS}
                WHERE owner = %s AND state IN ('RUNNING', 'STOPPING') AND stop_reason IS NOT NULL""",
            (node,),
        )
        return [(task_id, attempt, reason) for task_id, attempt, reason in cur.fetchall()]

    def reap(self, cur: Cursor, now: float, rerunnable: Collection[str]) -> list[tuple[Task, TaskState]]:
        cur.execute(
            f"""WITH old AS (
                    SELECT submit_order, state FROM {TASKS}
                    WHERE state IN ('RUNNING', 'STOPPING') AND lease_until < %(now)s
                    FOR UPDATE SKIP LOCKED),
                changed AS (
                    SELECT old.submit_order, old.state AS before, t.started_at IS NULL AS unstarted,
                        CASE WHEN t.task_type = ANY(%(rerun)s) OR t.started_at IS NULL THEN 'PENDING' ELSE 'LOST'
                        END AS after
                    FROM old JOIN {TASKS} t USING (submit_order))
                UPDATE {TASKS} t SET state = c.after, owner = NULL, lease_until = NULL, stop_reason = NULL,
                    attempt = CASE WHEN c.unstarted THEN t.attempt - 1 ELSE t.attempt END,
                    ended_at = CASE WHEN c.after = 'LOST' THEN %(now)s END,
                    error_type = CASE WHEN c.after = 'LOST' THEN %(etype)s ELSE t.error_type END,
                    error_message = CASE WHEN c.after = 'LOST' THEN
                        'the server running attempt ' || t.attempt || ' of this task stopped (a crash, or it lost '
                        || 'contact with the database), and task type ''' || t.task_type
                        || ''' is not re-run after a crash' ELSE t.error_message END,
                    error_traceback = CASE WHEN c.after = 'LOST' THEN NULL ELSE t.error_traceback END,
                    event_sequence = t.event_sequence + %(gap)s,
                    transitions = {transition_sql("t.event_sequence + %(gap)s", "c.after")}
                FROM changed c WHERE t.submit_order = c.submit_order
                RETURNING {T_COLUMNS}, c.before""",
            {"now": now, "rerun": list(rerunnable), "etype": ErrorType.SERVER_RESTARTED, "gap": REAP_SEQUENCE_GAP},
        )
        reaped = [(task_from_row(row), TaskState(row[-1])) for row in cur.fetchall()]
        # Every node reaps every few seconds: the housekeeping of GetStats' counts goes with it.
        self.fold_task_counts(cur)
        return reaped

    def end_leases(self, cur: Cursor, owner_prefix: str) -> int:
        cur.execute(
            f"""UPDATE {TASKS} SET lease_until = 0
                WHERE state IN ('RUNNING', 'STOPPING') AND left(owner, length(%s)) = %s""",
            (owner_prefix, owner_prefix),
        )
        return int(cur.rowcount)

    def retryable_after(self, cur: Cursor, task_id: str) -> list[str] | None:
        cur.execute(
            f"SELECT after_ids::text FROM {TASKS} WHERE task_id = %s AND state = ANY(%s) FOR UPDATE",
            (task_id, RETRYABLE),
        )
        row = cur.fetchone()
        if row is None:
            return None
        return [] if row[0] is None else [str(dep) for dep in json.loads(row[0])]

    def retry(self, cur: Cursor, task_id: str, waiting: int) -> tuple[Task, TaskState] | None:
        # As retried() makes it; the row's lock makes two racing retries one.
        cur.execute(
            f"""WITH old AS (
                    SELECT submit_order, state FROM {TASKS} WHERE task_id = %s AND state = ANY(%s) FOR UPDATE)
                UPDATE {TASKS} t SET state = 'PENDING', result = NULL, error_type = NULL, error_message = NULL,
                    error_traceback = NULL, started_at = NULL, ended_at = NULL, run_after = NULL,
                    owner = NULL, lease_until = NULL, stop_reason = NULL, progress_percent = 0,
                    progress_message = '', progress_current = 0, progress_total = 0, progress_updated_at = NULL,
                    event_sequence = t.event_sequence + 1, waiting = %s,
                    transitions = {transition_sql("t.event_sequence + 1", "'PENDING'")}
                FROM old WHERE t.submit_order = old.submit_order RETURNING {T_COLUMNS}, old.state""",
            (task_id, RETRYABLE, waiting),
        )
        row = cur.fetchone()
        return None if row is None else (task_from_row(row), TaskState(row[-1]))

    # ------------------------------------------------------------------ removal

    def delete(self, cur: Cursor, task_id: str) -> Task | None:
        cur.execute(f"DELETE FROM {TASKS} WHERE task_id = %s AND state = ANY(%s) RETURNING {COLUMNS}", (task_id, ENDED))
        row = cur.fetchone()
        return None if row is None else task_from_row(row)

    def delete_ended(self, cur: Cursor, task_filter: TaskFilter, ended_before: float | None, limit: int) -> list[str]:
        where, params = filter_sql(task_filter)
        if ended_before is not None:
            where.append("ended_at < %s")
            params.append(ended_before)
        return self._delete_where(cur, " AND ".join(where), params, limit)

    def expire(self, cur: Cursor, now: float, retention: float, limit: int) -> list[str]:
        # As store.base.expired(): a task's own retention, else the server's; 0 keeps for ever.
        where = "((retention IS NULL AND %s > 0 AND ended_at < %s) OR (retention > 0 AND ended_at + retention < %s))"
        return self._delete_where(cur, where, [retention, now - retention, now], limit)

    def _delete_where(self, cur: Cursor, where: str, params: list[Any], limit: int) -> list[str]:
        """Up to `limit` ended tasks matching `where` deleted, oldest end first; rows another server is deleting
        are skipped, not waited for."""
        cur.execute(
            f"""WITH gone AS (
                    DELETE FROM {TASKS} WHERE submit_order IN (
                        SELECT submit_order FROM {TASKS}
                        WHERE ended_at IS NOT NULL AND state = ANY(%s) AND {where}
                        ORDER BY ended_at LIMIT %s FOR UPDATE SKIP LOCKED)
                    RETURNING task_id, ended_at)
                SELECT task_id FROM gone ORDER BY ended_at""",
            [ENDED, *params, limit],
        )
        return [row[0] for row in cur.fetchall()]

    # ------------------------------------------------------------------ reads

    def list(
        self, cur: Cursor, task_filter: TaskFilter, order: TaskOrder, after: ListPosition | None, limit: int
    ) -> builtins.list[Task]:
        where, params = filter_sql(task_filter)
        past, more, order_by = order_sql(order, after, "submit_order", "%s")
        if past:
            where.append(past)
            params.extend(more)
        cur.execute(
            f"SELECT {COLUMNS} FROM {TASKS} WHERE {' AND '.join(where)} ORDER BY {order_by} LIMIT %s",
            [*params, limit],
        )
        return [task_from_row(row) for row in cur.fetchall()]

    def history(self, cur: Cursor, task_id: str) -> builtins.list[HistoryRow] | None:
        cur.execute(f"SELECT submit_order FROM {TASKS} WHERE task_id = %s", (task_id,))
        row = cur.fetchone()
        if row is None:
            return None
        cur.execute(
            f"SELECT at, state, attempt, percent, message FROM {HISTORY} WHERE submit_order = %s ORDER BY id", row
        )
        found: builtins.list[HistoryRow] = cur.fetchall()
        return found

    def changed_since(
        self, cur: Cursor, known: Mapping[str, int]
    ) -> builtins.list[tuple[Task, builtins.list[tuple[int, str]]]]:
        cur.execute(
            f"""SELECT {COLUMNS}, transitions::text FROM {TASKS} t
                JOIN unnest(%s::text[], %s::int8[]) AS k(id, seq) ON t.task_id = k.id
                WHERE t.event_sequence > k.seq""",
            (list(known), list(known.values())),
        )
        return [(task_from_row(row), [(int(s), str(st)) for s, st in json.loads(row[-1])]) for row in cur.fetchall()]

    def count_pending(self, cur: Cursor) -> tuple[int, int]:
        row = cur.execute(
            f"""SELECT count(*), coalesce(sum(pg_column_size(args) + pg_column_size(labels)), 0)
                FROM {TASKS} WHERE state = 'PENDING'"""
        ).fetchone()
        return int(row[0]), int(row[1])

    # ------------------------------------------------------------------ schedules

    def insert_schedule(self, cur: Cursor, schedule: Schedule) -> bool:
        cur.execute(
            f"""INSERT INTO {SCHEDULES} ({SCHEDULE_COLUMNS}) VALUES (%s, %s::jsonb, %s, %s, %s, %s, %s, %s)
                ON CONFLICT (schedule_id) DO NOTHING""",
            schedule_row(schedule),
        )
        return bool(cur.rowcount == 1)

    def schedules(self, cur: Cursor, schedule_id: str | None, after_id: str, limit: int) -> builtins.list[Schedule]:
        if schedule_id is not None:
            cur.execute(f"SELECT {_SCHEDULE_ROW} FROM {SCHEDULES} WHERE schedule_id = %s", (schedule_id,))
        else:
            cur.execute(
                f"SELECT {_SCHEDULE_ROW} FROM {SCHEDULES} WHERE schedule_id > %s ORDER BY schedule_id LIMIT %s",
                (after_id, limit),
            )
        return [schedule_from_row(row) for row in cur.fetchall()]

    def update_schedule(self, cur: Cursor, schedule: Schedule, expected: Schedule) -> bool:
        _, _, paused, next_due, _, last_due, last_task_id, last_error = schedule_row(schedule)
        cur.execute(
            f"""UPDATE {SCHEDULES} SET paused = %s, next_due = %s, last_due = %s, last_task_id = %s, last_error = %s
                WHERE schedule_id = %s AND next_due = %s AND paused = %s""",
            (paused, next_due, last_due, last_task_id, last_error, schedule.schedule_id, expected.next_due,
             expected.paused),
        )  # fmt: skip
        return bool(cur.rowcount == 1)

    def delete_schedule(self, cur: Cursor, schedule_id: str) -> Schedule | None:
        cur.execute(f"DELETE FROM {SCHEDULES} WHERE schedule_id = %s RETURNING {_SCHEDULE_ROW}", (schedule_id,))
        row = cur.fetchone()
        return None if row is None else schedule_from_row(row)

    def due_schedules(self, cur: Cursor, now: float, limit: int) -> builtins.list[Schedule]:
        cur.execute(
            f"""SELECT {_SCHEDULE_ROW} FROM {SCHEDULES} WHERE NOT paused AND next_due <= %s
                ORDER BY next_due LIMIT %s""",
            (now, limit),
        )
        return [schedule_from_row(row) for row in cur.fetchall()]
