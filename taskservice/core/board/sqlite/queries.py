"""The lifecycle's statements in SQLite (see sql/queries.py for what each one means).

Every write runs inside the writer's `BEGIN IMMEDIATE` transaction, which holds the file's write lock: no other
writer, in this process or another, runs meanwhile, so a claim needs no row locks (PostgreSQL's `SKIP LOCKED`).
A claim names its index (`INDEXED BY tasks_ready`): the planner would otherwise take the index by state and sort
every queued task, at each claim.
Statements take one row each and loop in Python where PostgreSQL takes arrays: SQLite has no round trip to save.
Labels are kept twice, as JSON in the row and in `task_labels` for ListTasks filters.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

from taskservice.core.board.base import REAP_SEQUENCE_GAP, Claim, ClaimScope, NewTask
from taskservice.core.board.sql.listing import order_sql
from taskservice.core.board.sql.queries import Birth, Cursor, HistoryRow
from taskservice.core.board.sql.rows import RETRYABLE, dumps, end_row, progress_row
from taskservice.core.board.sqlite.filters import filter_sql
from taskservice.core.board.sqlite.limit_queries import SQLiteLimitQueries
from taskservice.core.board.sqlite.rows import CLAIMED, transition_sql
from taskservice.core.board.sqlite.schema import COLUMNS
from taskservice.core.board.task_rows import task_from_row
from taskservice.core.model.listing import ListPosition, TaskOrder
from taskservice.core.model.models import ErrorType, Progress, Task, TaskError, TaskFilter, TaskState
from taskservice.core.model.schedules import SCHEDULE_COLUMNS, Schedule, schedule_from_row, schedule_row
from taskservice.telemetry.context import dump_carrier

ENDED = [state.value for state in TaskState if state.is_terminal]
UNFINISHED = "state IN ('RUNNING', 'STOPPING')"
# A task carries the label (key, value): one such condition per label a claim asks for.
_HAS_LABEL = " AND EXISTS (SELECT 1 FROM task_labels l WHERE l.seq = tasks.seq AND l.key = ? AND l.value = ?)"


def _in(values: Collection[Any]) -> str:
    return f"({', '.join('?' * len(values))})"


# A statement binds the rows of many writes at once, in a few sizes the statement cache keeps: each statement is a
# trip out of the GIL and back, which a busy event loop makes slow.
_ROWS_PER_STATEMENT = (64, 16, 4, 1)
_INSERT_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, 0, 1, ?, json_array(json_array(1, ?)), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def _chunks(rows: Sequence[Any]) -> Iterator[Sequence[Any]]:
    """`rows` in runs of the sizes of _ROWS_PER_STATEMENT, largest first."""
    start = 0
    for size in _ROWS_PER_STATEMENT:
        while len(rows) - start >= size:
            yield rows[start : start + size]
            start += size


def _values(row: str, count: int) -> str:
    return ", ".join([row] * count)


def _task(cur: Cursor) -> Task | None:
    row = cur.fetchone()
    return None if row is None else task_from_row(row)


class SQLiteQueries(SQLiteLimitQueries):
    # ------------------------------------------------------------------ submission and dependencies

    def insert(
        self, cur: Cursor, tasks: Sequence[NewTask], births: Mapping[str, Birth], waiting: Mapping[str, int], now: float
    ) -> dict[str, Task]:
        rows = []
        for t in tasks:
            state, error_type, error_message = births[t.task_id]
            rows.append((
                t.task_id, t.task_type, dumps(t.args), state, t.priority, dumps(t.labels), t.time_limit, now,
                t.request_digest, state, t.run_after, t.retention, dumps(list(t.after)) if t.after else None,
                waiting.get(t.task_id, 0), None if state == "PENDING" else now, error_type, error_message, t.turn,
                dump_carrier(t.trace_context), t.parent_id or None, int(t.detached),
            ))  # fmt: skip
        created: dict[str, Task] = {}
        for chunk in _chunks(rows):
            # Of a repeated id in one statement, the first row is inserted and the next ones conflict with it.
            cur.execute(
                f"""INSERT INTO tasks (task_id, task_type, args, state, priority, labels, time_limit, submitted_at,
                        attempt, sequence, request_digest, transitions, run_after, retention, after_ids, waiting,
                        ended_at, error_type, error_message, turn, trace_context, parent_id, detached)
                    VALUES {_values(_INSERT_ROW, len(chunk))}
                    ON CONFLICT (task_id) DO NOTHING
                    RETURNING {COLUMNS}""",
                [value for row in chunk for value in row],
            )
            created.update((row[1], task_from_row(row)) for row in cur.fetchall())
        labels = [(task.submit_order, key, value) for task in created.values() for key, value in task.labels.items()]
        if labels:
            cur.executemany("INSERT INTO task_labels (seq, key, value) VALUES (?, ?, ?)", labels)
        return created

    def tasks(self, cur: Cursor, task_ids: Collection[str], *, lock: bool = False) -> dict[str, Task]:
        # `lock` needs nothing here: the writer's transaction holds the file's write lock.
        wanted = sorted(set(task_ids))
        found: dict[str, Task] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            cur.execute(f"SELECT {COLUMNS} FROM tasks WHERE task_id IN {_in(chunk)}", chunk)
            found.update((row[1], task_from_row(row)) for row in cur.fetchall())
        return found

    def add_waits(self, cur: Cursor, waits: Sequence[tuple[str, str]]) -> None:
        cur.executemany("INSERT OR IGNORE INTO waits (task_id, dep_id) VALUES (?, ?)", waits)

    def release(self, cur: Cursor, succeeded: Sequence[str]) -> bool:
        met: list[str] = []
        for chunk in _chunks(list(succeeded)):
            cur.execute(f"DELETE FROM waits WHERE dep_id IN {_in(chunk)} RETURNING task_id", chunk)
            met.extend(task_id for (task_id,) in cur.fetchall())
        released = False
        for task_id in met:  # a dependent per dependency met: rare beside the ends that release nobody
            cur.execute(
                "UPDATE tasks SET waiting = max(waiting - 1, 0) WHERE task_id = ? RETURNING waiting", (task_id,)
            )
            row = cur.fetchone()
            released |= row is not None and row[0] == 0
        return released

    def take_waits(self, cur: Cursor, failed: Sequence[str]) -> list[tuple[str, str]]:
        doomed: dict[str, str] = {}
        for dep in sorted(failed):
            cur.execute("DELETE FROM waits WHERE dep_id = ? RETURNING task_id", (dep,))
            for (task_id,) in cur.fetchall():
                doomed.setdefault(task_id, dep)
        return sorted(doomed.items())

    def revoke_waiting(self, cur: Cursor, doomed: Sequence[tuple[str, TaskError]], now: float) -> list[Task]:
        revoked: list[Task] = []
        for task_id, error in doomed:
            cur.execute(
                f"""UPDATE tasks SET state = 'REVOKED', error_type = ?, error_message = ?, error_traceback = NULL,
                        ended_at = ?, run_after = NULL, waiting = 0, sequence = sequence + 1,
                        transitions = {transition_sql("sequence + 1", "'REVOKED'")}
                    WHERE task_id = ? AND state = 'PENDING' RETURNING {COLUMNS}""",
                (error.type, error.message, now, task_id),
            )
            task = _task(cur)
            if task is not None:
                revoked.append(task)
        return revoked

    def waits_of(self, cur: Cursor, task_ids: Collection[str]) -> dict[str, builtins.list[str]]:
        wanted = sorted(task_ids)
        found: dict[str, list[str]] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            cur.execute(f"SELECT task_id, dep_id FROM waits WHERE task_id IN {_in(chunk)} ORDER BY dep_id", chunk)
            for task_id, dep in cur.fetchall():
                found.setdefault(task_id, []).append(dep)
        return found

    def stop_waiting(self, cur: Cursor, task_ids: Sequence[str]) -> None:
        cur.executemany("DELETE FROM waits WHERE task_id = ?", [(task_id,) for task_id in task_ids])

    # ------------------------------------------------------------------ running

    def claim(self, cur: Cursor, node: str, scope: ClaimScope, n: int, lease_until: float, now: float) -> list[Task]:
        types = sorted(scope.types) if scope.types is not None else []
        types_clause = f"AND task_type IN {_in(types)}" if scope.types is not None else ""
        labels_clause = _HAS_LABEL * len(scope.labels)
        cur.execute(
            f"""UPDATE tasks SET {CLAIMED}
                WHERE seq IN (
                    SELECT seq FROM tasks INDEXED BY tasks_ready
                    WHERE state = 'PENDING' AND waiting = 0 AND (run_after IS NULL OR run_after <= ?) {types_clause}
                        {labels_clause}
                    ORDER BY priority DESC, turn, seq LIMIT ?)
                RETURNING {COLUMNS}""",
            (node, lease_until, now, *types, *[part for label in scope.labels for part in label], n),
        )
        return [task_from_row(row) for row in cur.fetchall()]

    def start(self, cur: Cursor, claim: Claim, started_at: float) -> None:
        cur.execute(
            "UPDATE tasks SET started_at = ? WHERE task_id = ? AND owner = ? AND attempt = ? AND started_at IS NULL",
            (started_at, claim.task_id, claim.node, claim.attempt),
        )

    def renew(self, cur: Cursor, node: str, task_ids: Sequence[str], lease_until: float) -> set[tuple[str, int]]:
        held: set[tuple[str, int]] = set()
        for task_id in task_ids:
            cur.execute(
                f"UPDATE tasks SET lease_until = ? WHERE task_id = ? AND owner = ? AND {UNFINISHED} RETURNING attempt",
                (lease_until, task_id, node),
            )
            held.update((task_id, attempt) for (attempt,) in cur.fetchall())
        return held

    def mark_stopping(self, cur: Cursor, claim: Claim, sequence: int) -> bool:
        cur.execute(
            f"""UPDATE tasks SET state = 'STOPPING', sequence = ?, stop_reason = NULL,
                    transitions = {transition_sql("?", "'STOPPING'")}
                WHERE task_id = ? AND owner = ? AND attempt = ? AND state = 'RUNNING'""",
            (sequence, sequence, claim.task_id, claim.node, claim.attempt),
        )
        return bool(cur.rowcount == 1)

    def finish(self, cur: Cursor, ends: Sequence[tuple[Claim, Task]]) -> set[str]:
        written: set[str] = set()
        for chunk in _chunks([end_row(claim, final) for claim, final in ends]):
            # v.column1..16: id, attempt, node, state, result, error type, message, traceback, ended, the five
            # progress values, sequence, started (end_row's order).
            cur.execute(
                f"""UPDATE tasks SET state = v.column4, result = v.column5, error_type = v.column6,
                        error_message = v.column7, error_traceback = v.column8, ended_at = v.column9,
                        progress_percent = v.column10, progress_message = v.column11, progress_current = v.column12,
                        progress_total = v.column13, progress_updated_at = v.column14, sequence = v.column15,
                        started_at = v.column16, owner = NULL, lease_until = NULL, stop_reason = NULL,
                        transitions = {transition_sql("v.column15", "v.column4")}
                    FROM (VALUES {_values("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", len(chunk))}) AS v
                    WHERE tasks.task_id = v.column1 AND tasks.attempt = v.column2 AND tasks.owner = v.column3
                        AND tasks.{UNFINISHED}
                    RETURNING tasks.task_id""",
                [value for row in chunk for value in row],
            )
            written.update(task_id for (task_id,) in cur.fetchall())
        return written

    def retry_at(self, cur: Cursor, claim: Claim, task: Task, due: float) -> bool:
        error = task.error
        seq = task.event_sequence
        cur.execute(
            f"""UPDATE tasks SET state = 'PENDING', run_after = ?, owner = NULL, lease_until = NULL,
                    stop_reason = NULL, ended_at = NULL, sequence = ?, error_type = ?, error_message = ?,
                    error_traceback = ?, transitions = {transition_sql("?", "'PENDING'")}
                WHERE task_id = ? AND owner = ? AND attempt = ? AND {UNFINISHED}""",
            (due, seq, error.type if error else None, error.message if error else None,
             error.traceback if error else None, seq, claim.task_id, claim.node, claim.attempt),
        )  # fmt: skip
        return bool(cur.rowcount == 1)

    def save_progress(self, cur: Cursor, updates: Sequence[tuple[Claim, Progress, int]]) -> None:
        rows = []
        for claim, progress, sequence in updates:
            task_id, node, attempt, pp, pm, pc, pt, pu, seq = progress_row(claim, progress, sequence)
            rows.append((pp, pm, pc, pt, pu, seq, task_id, node, attempt))
        cur.executemany(
            f"""UPDATE tasks SET progress_percent = ?, progress_message = ?, progress_current = ?,
                    progress_total = ?, progress_updated_at = ?, sequence = max(sequence, ?)
                WHERE task_id = ? AND owner = ? AND attempt = ? AND {UNFINISHED}""",
            rows,
        )

    def revoke_pending(self, cur: Cursor, task_id: str, reason: str, now: float) -> Task | None:
        cur.execute(
            f"""UPDATE tasks SET state = 'REVOKED', error_type = ?, error_message = ?, error_traceback = NULL,
                    ended_at = ?, run_after = NULL, sequence = sequence + 1,
                    transitions = {transition_sql("sequence + 1", "'REVOKED'")}
                WHERE task_id = ? AND state = 'PENDING' RETURNING {COLUMNS}""",
            (ErrorType.REVOKED, reason, now, task_id),
        )
        return _task(cur)

    def flag_stop(self, cur: Cursor, task_id: str, reason: str) -> Task | None:
        cur.execute(
            f"UPDATE tasks SET stop_reason = ? WHERE task_id = ? AND state = 'RUNNING' RETURNING {COLUMNS}",
            (reason, task_id),
        )
        return _task(cur)

    def stops_for(self, cur: Cursor, node: str) -> list[tuple[str, int, str]]:
        cur.execute(
            f"SELECT task_id, attempt, stop_reason FROM tasks WHERE owner = ? AND {UNFINISHED} "
            "AND stop_reason IS NOT NULL",
            (node,),
        )
        return [(task_id, attempt, reason) for task_id, attempt, reason in cur.fetchall()]

    def reap(self, cur: Cursor, now: float, rerunnable: Collection[str]) -> list[tuple[Task, TaskState]]:
        # A lease left empty (a task the board of an earlier version left running) counts as expired.
        cur.execute(
            f"SELECT seq, state FROM tasks WHERE {UNFINISHED} AND (lease_until IS NULL OR lease_until < ?)", (now,)
        )
        before = dict(cur.fetchall())
        if not before:
            return []
        rerun = sorted(rerunnable)
        seqs = sorted(before)
        again = f"(task_type IN {_in(rerun)} OR started_at IS NULL)" if rerun else "started_at IS NULL"
        after = f"CASE WHEN {again} THEN 'PENDING' ELSE 'LOST' END"
        cur.execute(
            f"""UPDATE tasks SET owner = NULL, lease_until = NULL, stop_reason = NULL,
                    attempt = CASE WHEN started_at IS NULL THEN max(attempt - 1, 0) ELSE attempt END,
                    ended_at = CASE WHEN {after} = 'LOST' THEN ? END,
                    error_type = CASE WHEN {after} = 'LOST' THEN ? ELSE error_type END,
                    error_message = CASE WHEN {after} = 'LOST' THEN
                        'the server running attempt ' || attempt || ' of this task stopped (a crash, or it lost '
                        || 'contact with the database), and task type ''' || task_type
                        || ''' is not re-run after a crash' ELSE error_message END,
                    error_traceback = CASE WHEN {after} = 'LOST' THEN NULL ELSE error_traceback END,
                    sequence = sequence + ?,
                    transitions = {transition_sql("sequence + ?", after)},
                    state = {after}
                WHERE seq IN {_in(seqs)}
                RETURNING {COLUMNS}""",
            (*rerun, now, *rerun, ErrorType.SERVER_RESTARTED, *rerun, *rerun, REAP_SEQUENCE_GAP,
             REAP_SEQUENCE_GAP, *rerun, *rerun, *seqs),
        )  # fmt: skip
        return [(task, TaskState(before[task.submit_order])) for task in map(task_from_row, cur.fetchall())]

    def end_leases(self, cur: Cursor, owner_prefix: str) -> int:
        cur.execute(
            f"UPDATE tasks SET lease_until = 0 WHERE {UNFINISHED} AND substr(owner, 1, length(?)) = ?",
            (owner_prefix, owner_prefix),
        )
        return int(cur.rowcount)

    def retryable_after(self, cur: Cursor, task_id: str) -> list[str] | None:
        cur.execute(
            f"SELECT after_ids FROM tasks WHERE task_id = ? AND state IN {_in(RETRYABLE)}", (task_id, *RETRYABLE)
        )
        row = cur.fetchone()
        if row is None:
            return None
        return [] if row[0] is None else [str(dep) for dep in json.loads(row[0])]

    def retry(self, cur: Cursor, task_id: str, waiting: int) -> tuple[Task, TaskState] | None:
        cur.execute(f"SELECT state FROM tasks WHERE task_id = ? AND state IN {_in(RETRYABLE)}", (task_id, *RETRYABLE))
        row = cur.fetchone()
        if row is None:
            return None
        cur.execute(
            f"""UPDATE tasks SET state = 'PENDING', result = NULL, error_type = NULL, error_message = NULL,
                    error_traceback = NULL, started_at = NULL, ended_at = NULL, run_after = NULL, owner = NULL,
                    lease_until = NULL, stop_reason = NULL, progress_percent = 0, progress_message = '',
                    progress_current = 0, progress_total = 0, progress_updated_at = NULL,
                    sequence = sequence + 1, waiting = ?, transitions = {transition_sql("sequence + 1", "'PENDING'")}
                WHERE task_id = ? RETURNING {COLUMNS}""",
            (waiting, task_id),
        )
        task = _task(cur)
        return None if task is None else (task, TaskState(row[0]))

    # ------------------------------------------------------------------ removal

    def delete(self, cur: Cursor, task_id: str) -> Task | None:
        cur.execute(f"SELECT {COLUMNS} FROM tasks WHERE task_id = ? AND state IN {_in(ENDED)}", (task_id, *ENDED))
        task = _task(cur)
        if task is not None:
            self._remove(cur, [task.submit_order])
        return task

    def delete_ended(self, cur: Cursor, task_filter: TaskFilter, ended_before: float | None, limit: int) -> list[str]:
        where, params = filter_sql(task_filter)
        if ended_before is not None:
            where.append("ended_at < ?")
            params.append(ended_before)
        return self._delete_where(cur, " AND ".join(where), params, limit)

    def expire(self, cur: Cursor, now: float, retention: float, limit: int) -> list[str]:
        # As store.base.expired(): a task's own retention, else the server's; 0 keeps for ever.
        where = "((retention IS NULL AND ? > 0 AND ended_at < ?) OR (retention > 0 AND ended_at + retention < ?))"
        return self._delete_where(cur, where, [retention, now - retention, now], limit)

    def _delete_where(self, cur: Cursor, where: str, params: list[Any], limit: int) -> list[str]:
        # `+state` keeps the planner on tasks_by_end (ended tasks in end order, read up to `limit`), not on
        # tasks_by_state, through which it would sort every ended task at each sweep.
        cur.execute(
            f"""SELECT seq, task_id FROM tasks WHERE ended_at IS NOT NULL AND +state IN {_in(ENDED)} AND {where}
                ORDER BY ended_at LIMIT ?""",
            [*ENDED, *params, limit],
        )
        rows = cur.fetchall()
        self._remove(cur, [seq for seq, _ in rows])
        return [task_id for _, task_id in rows]

    def _remove(self, cur: Cursor, seqs: Sequence[int]) -> None:
        rows = [(seq,) for seq in seqs]
        cur.executemany("DELETE FROM task_labels WHERE seq = ?", rows)
        cur.executemany("DELETE FROM tasks WHERE seq = ?", rows)

    # ------------------------------------------------------------------ reads

    def list(
        self, cur: Cursor, task_filter: TaskFilter, order: TaskOrder, after: ListPosition | None, limit: int
    ) -> builtins.list[Task]:
        where, params = filter_sql(task_filter)
        past, more, order_by = order_sql(order, after, "seq", "?")
        if past:
            where.append(past)
            params.extend(more)
        cur.execute(
            f"SELECT {COLUMNS} FROM tasks WHERE {' AND '.join(where)} ORDER BY {order_by} LIMIT ?", [*params, limit]
        )
        return [task_from_row(row) for row in cur.fetchall()]

    def history(self, cur: Cursor, task_id: str) -> builtins.list[HistoryRow] | None:
        cur.execute("SELECT seq FROM tasks WHERE task_id = ?", (task_id,))
        row = cur.fetchone()
        if row is None:
            return None
        cur.execute("SELECT at, state, attempt, percent, message FROM task_history WHERE seq = ? ORDER BY rowid", row)
        found: builtins.list[HistoryRow] = cur.fetchall()
        return found

    def changed_since(
        self, cur: Cursor, known: Mapping[str, int]
    ) -> builtins.list[tuple[Task, builtins.list[tuple[int, str]]]]:
        # One statement for every followed task (a relay round runs at each sibling's write): {id: sequence shown}.
        cur.execute(
            f"""SELECT {COLUMNS}, transitions FROM tasks JOIN json_each(?) AS k ON tasks.task_id = k.key
                WHERE tasks.sequence > k.value""",
            (dumps(dict(known)),),
        )
        return [(task_from_row(row), [(int(s), str(st)) for s, st in json.loads(row[-1])]) for row in cur.fetchall()]

    def count_pending(self, cur: Cursor) -> tuple[int, int]:
        row = cur.execute(
            "SELECT count(*), coalesce(sum(length(args) + length(labels)), 0) FROM tasks WHERE state = 'PENDING'"
        ).fetchone()
        return int(row[0]), int(row[1])

    # ------------------------------------------------------------------ schedules

    def insert_schedule(self, cur: Cursor, schedule: Schedule) -> bool:
        cur.execute(
            f"INSERT INTO schedules ({SCHEDULE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            schedule_row(schedule),
        )
        return bool(cur.rowcount == 1)

    def schedules(self, cur: Cursor, schedule_id: str | None, after_id: str, limit: int) -> builtins.list[Schedule]:
        if schedule_id is not None:
            cur.execute(f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE schedule_id = ?", (schedule_id,))
        else:
            cur.execute(
                f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE schedule_id > ? ORDER BY schedule_id LIMIT ?",
                (after_id, limit),
            )
        return [schedule_from_row(row) for row in cur.fetchall()]

    def update_schedule(self, cur: Cursor, schedule: Schedule, expected: Schedule) -> bool:
        _, _, paused, next_due, _, last_due, last_task_id, last_error = schedule_row(schedule)
        cur.execute(
            """UPDATE schedules SET paused = ?, next_due = ?, last_due = ?, last_task_id = ?, last_error = ?
               WHERE schedule_id = ? AND next_due = ? AND paused = ?""",
            (paused, next_due, last_due, last_task_id, last_error, schedule.schedule_id, expected.next_due,
             expected.paused),
        )  # fmt: skip
        return bool(cur.rowcount == 1)

    def delete_schedule(self, cur: Cursor, schedule_id: str) -> Schedule | None:
        cur.execute(f"DELETE FROM schedules WHERE schedule_id = ? RETURNING {SCHEDULE_COLUMNS}", (schedule_id,))
        row = cur.fetchone()
        return None if row is None else schedule_from_row(row)

    def due_schedules(self, cur: Cursor, now: float, limit: int) -> builtins.list[Schedule]:
        cur.execute(
            f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE NOT paused AND next_due <= ? ORDER BY next_due LIMIT ?",
            (now, limit),
        )
        return [schedule_from_row(row) for row in cur.fetchall()]
