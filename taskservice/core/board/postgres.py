"""The PostgreSQL board: several servers (nodes) share one database, and the database is the only truth.

- Writes that must be durable before anyone is told (Submit, ends, retries, stops) go through PgWriter's group
  commit; claims, renewals and reaps are single statements on a pooled connection, durable when they return.
- A claim is one `UPDATE ... FROM (SELECT ... FOR UPDATE SKIP LOCKED LIMIT n)`: nodes never take the same task and
  never wait for each other. Every write by an owner is fenced on (owner, attempt): a node that lost its lease
  changes nothing.
- Wake-ups: one NOTIFY per commit at most, as a hint without task data; each node listens on one connection and
  polls about every second besides, so a lost notification only delays work or a stop to the next poll.
- Times are the nodes' clocks (keep them in sync, e.g. with NTP): leases are tens of seconds, far above clock skew.

Nothing here runs on the event loop; a slow or lost database blocks only the thread that asked.

This module is longer than most (about 500 lines) because it is the board's SQL: one statement per operation of
Board, each with its precondition in its WHERE clause, read best beside each other. Its parts that are not SQL
of an operation live in the pg_*.py modules (schema, rows, writer, listener, logs). The design:
docs/architecture.md, "The PostgreSQL board".
"""

from __future__ import annotations

import builtins
import json
import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

import psycopg
import psycopg_pool

from taskservice.core.board.answers import (
    DEFAULT_MAX_QUEUE_BYTES,
    Answers,
    conflict,
    queue_bytes_full,
    queue_full,
    size_of,
)
from taskservice.core.board.base import (
    REAP_SEQUENCE_GAP,
    RETRYABLE_STATES,
    Answer,
    Board,
    Claim,
    ClaimBatch,
    DatabaseUnreachable,
    FencedManyThen,
    FencedThen,
    NewTask,
    OneWriter,
    Renewal,
    RetryThen,
    StopEffect,
    StopResult,
    StopThen,
    SubmitThen,
    TaskThen,
    not_ended,
    not_retryable,
)
from taskservice.core.board.dependencies import (
    EndedListener,
    judge,
    not_retryable_before,
    revoked_for,
    unknown_dependencies,
)
from taskservice.core.board.pg_dependencies import (
    Cascade,
    Settled,
    add_waits,
    dependencies_of,
    settle,
    stop_waiting,
)
from taskservice.core.board.pg_listen import Listener
from taskservice.core.board.pg_logs import DatabaseLogs
from taskservice.core.board.pg_rows import COLUMNS, T_COLUMNS, dumps, task_from_row, transition_sql
from taskservice.core.board.pg_schema import SCHEDULES, TASKS, migrate
from taskservice.core.board.pg_writer import PgWriter
from taskservice.core.errors import StoreUnavailable, TaskNotFound
from taskservice.core.models import ErrorType, Progress, SubmitOutcome, Task, TaskFilter, TaskState
from taskservice.core.schedules import SCHEDULE_COLUMNS, Schedule, schedule_from_row, schedule_row
from taskservice.core.store.base import StoreOpenError

log = logging.getLogger(__name__)

ENDED = sorted(state.value for state in TaskState if state.is_terminal)


def filter_sql(task_filter: TaskFilter) -> tuple[list[str], list[Any]]:
    """The WHERE conditions of a ListTasks filter, and their parameters."""
    where: list[str] = ["TRUE"]
    params: list[Any] = []
    if task_filter.states:
        where.append("state = ANY(%s)")
        params.append(sorted(s.value for s in task_filter.states))
    if task_filter.task_type:
        where.append("task_type = %s")
        params.append(task_filter.task_type)
    if task_filter.scheduled:
        where.append("state = 'PENDING' AND run_after IS NOT NULL")
    if task_filter.labels:
        where.append("labels @> %s::jsonb")
        params.append(dumps(dict(task_filter.labels)))
    return where, params


UNFINISHED = ("RUNNING", "STOPPING")
# The queue's length is counted again at most this often (for --max-queue, which is approximate across nodes).
QUEUE_COUNT_SECONDS = 1.0
CONNECT_TIMEOUT_SECONDS = 5
# How long a call waits for a pooled connection: while the pool is merely busy, and once the database was found away
# (every connection gone, new ones refused), when a caller must hear UNAVAILABLE at once, not after the busy wait.
POOL_WAIT_SECONDS = 10.0
POOL_WAIT_AWAY_SECONDS = 1.0
# The pool's attempts to reconnect back off (1, 2, 4 s...) and give up after this long; the next call that needs a
# connection starts them again at once. So once the database is back, calls find it within a second or two, however
# long it was away (with psycopg_pool's default of 5 minutes, the backoff had grown to a minute).
POOL_RECONNECT_SECONDS = 2.0


def redacted(dsn: str) -> str:
    """The DSN without its password, for messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "the --db database"
    info.pop("password", None)
    host, db = info.get("host", "localhost"), info.get("dbname", "")
    user = info.get("user")
    return f"postgresql://{f'{user}@' if user else ''}{host}/{db}"


class PostgresBoard(OneWriter, Board):
    exclusive = False
    _writer: PgWriter

    def __init__(
        self,
        dsn: str,
        *,
        max_queue: int = 100_000,
        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
        pool_size: int = 16,
    ) -> None:
        self.where = redacted(dsn)
        self._dsn = dsn
        self._max_queue = max_queue
        self._max_queue_bytes = max_queue_bytes
        try:
            with self._connect() as conn:
                migrate(conn, self.where)
        except psycopg.OperationalError as exc:
            raise DatabaseUnreachable(f"cannot reach {self.where}: {str(exc).strip()}") from exc
        except psycopg.Error as exc:
            raise StoreOpenError(f"{self.where} cannot be used: {exc}") from exc
        # Set when a call found the database away, cleared by the next that reached it.
        self._away = False
        self._pool = psycopg_pool.ConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_SECONDS},
            timeout=POOL_WAIT_SECONDS,
            reconnect_timeout=POOL_RECONNECT_SECONDS,
            open=True,
            name="taskservice-pg",
        )
        self._writer = PgWriter(self._connect)
        self._listener = Listener(self._connect)
        self._logs: DatabaseLogs | None = None
        self._count_lock = threading.Lock()
        self._queued = (0, 0, 0.0)  # (count, bytes of args and labels, monotonic time counted)
        self._counting = False  # a count is queued on the writer
        self._ended_listeners: list[EndedListener] = []

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self._dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS)

    def _read(self, query: str, params: Any = ()) -> list[tuple[Any, ...]]:
        """A statement on a pooled connection; StoreUnavailable when the database cannot answer."""
        rows: list[tuple[Any, ...]] = self._transact(lambda cur: cur.execute(query, params).fetchall())
        return rows

    def _transact(self, op: Callable[[psycopg.Cursor[Any]], Any]) -> Any:
        """`op`'s statements in one transaction on a pooled connection; StoreUnavailable when the database cannot
        answer."""
        away = self._away or not self._writer.healthy
        try:
            with (
                self._pool.connection(timeout=POOL_WAIT_AWAY_SECONDS if away else POOL_WAIT_SECONDS) as conn,
                conn.transaction(),
                conn.cursor() as cur,
            ):
                answer = op(cur)
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            self._away = True
            raise StoreUnavailable(f"the task database cannot be reached: {str(exc).strip()}") from exc
        self._away = False
        return answer

    def _settled(self, cascade: Cascade, released: bool) -> None:
        """After a commit that ended tasks: tell of the dependents it revoked, wake claimers for those released."""
        if cascade:
            for listener in self._ended_listeners:
                listener(cascade)
        if released:
            self._writer.submit(lambda cur: None, _best_effort, notify="work")

    # ------------------------------------------------------------------ submission

    def submit(self, tasks: Sequence[NewTask], now: float, then: SubmitThen) -> None:
        answers = Answers(len(tasks), then)
        queued, queued_bytes = self._queue_size()
        room = max(0, self._max_queue - queued)
        admitted: list[tuple[int, NewTask]] = []
        refused: list[tuple[int, Answer]] = []
        for i, new in enumerate(tasks):
            size = size_of(new)
            if len(admitted) >= room:
                refused.append((i, queue_full(queued, self._max_queue)))
            elif queued_bytes + size > self._max_queue_bytes:
                refused.append((i, queue_bytes_full(queued_bytes, size, self._max_queue_bytes)))
            else:
                admitted.append((i, new))
                queued_bytes += size

        def insert(cur: psycopg.Cursor[Any]) -> list[tuple[int, Answer]]:
            told: list[tuple[int, Answer]] = []
            new, births, unmet = self._plan_dependencies(cur, admitted, told, now)
            cur.execute(
                f"""INSERT INTO {TASKS} (task_id, task_type, args, state, priority, labels, time_limit, submitted_at,
                        event_sequence, request_digest, transitions, run_after, retention, after_ids, waiting,
                        ended_at, error_type, error_message)
                    SELECT i, ty, a::jsonb, st, p, l::jsonb, tl, %s, 1, d, jsonb_build_array(jsonb_build_array(1, st)),
                        ra, rt, af::jsonb, w, CASE WHEN st = 'PENDING' THEN NULL ELSE %s END, et, em
                    FROM unnest(%s::text[], %s::text[], %s::text[], %s::int[], %s::text[], %s::float8[], %s::text[],
                        %s::float8[], %s::float8[], %s::text[], %s::text[], %s::int[], %s::text[], %s::text[])
                        AS v(i, ty, a, p, l, tl, d, ra, rt, af, st, w, et, em)
                    ON CONFLICT (task_id) DO NOTHING
                    RETURNING {COLUMNS}""",
                (
                    now,
                    now,
                    [t.task_id for t in new],
                    [t.task_type for t in new],
                    [dumps(t.args) for t in new],
                    [t.priority for t in new],
                    [dumps(t.labels) for t in new],
                    [t.time_limit for t in new],
                    [t.request_digest for t in new],
                    [t.run_after for t in new],
                    [t.retention for t in new],
                    [dumps(list(t.after)) if t.after else None for t in new],
                    [births[t.task_id][0] for t in new],
                    [len(unmet.get(t.task_id, ())) for t in new],
                    [births[t.task_id][1] for t in new],
                    [births[t.task_id][2] for t in new],
                ),
            )
            created = {row[1]: task_from_row(row) for row in cur.fetchall()}
            add_waits(cur, [(task_id, dep) for task_id in created for dep in unmet.get(task_id, ())])
            taken = [t.task_id for t in new if t.task_id not in created]
            existing: dict[str, Task] = {}
            if taken:
                cur.execute(f"SELECT {COLUMNS} FROM {TASKS} WHERE task_id = ANY(%s)", (taken,))
                existing = {row[1]: task_from_row(row) for row in cur.fetchall()}
            seen: set[str] = set()
            for index, task in admitted:
                if task.task_id not in births:
                    continue  # refused by _plan_dependencies
                fresh = created.get(task.task_id)
                if fresh is not None and task.task_id not in seen:
                    seen.add(task.task_id)
                    told.append((index, SubmitOutcome(fresh, created=True)))
                    continue
                other = fresh or existing.get(task.task_id)
                if other is None:  # deleted meanwhile: rare; the client may retry
                    told.append((index, StoreUnavailable(f"task {task.task_id!r} changed meanwhile; retry")))
                elif other.request_digest != task.request_digest:
                    told.append((index, conflict(other)))
                else:
                    told.append((index, SubmitOutcome(other, created=False)))
            return told

        def done(told: list[tuple[int, Answer]] | None, error: BaseException | None) -> None:
            if error is not None:
                told = [(i, _unavailable(error)) for i, _ in admitted]
            answers.fill_many([*refused, *sorted(told or [], key=lambda answer: answer[0])])
            if error is None:
                sizes = {new.task_id: size_of(new) for _, new in admitted}
                made = [a.task.task_id for _, a in told or [] if isinstance(a, SubmitOutcome) and a.created]
                self._count_added(len(made), sum(sizes.get(task_id, 0) for task_id in made))

        if admitted:
            self._writer.submit(insert, done, notify="work")
        else:
            self._writer.submit(lambda cur: [], done)

    def _plan_dependencies(
        self,
        cur: psycopg.Cursor[Any],
        admitted: list[tuple[int, NewTask]],
        told: list[tuple[int, Answer]],
        now: float,
    ) -> tuple[list[NewTask], dict[str, tuple[str, str | None, str | None]], dict[str, tuple[str, ...]]]:
        """What the submitted tasks' dependencies make of them: the tasks to insert, each one's (state, error type,
        error message) at birth (REVOKED when a dependency failed already), and the dependencies each must wait
        for. A task naming one that does not exist is answered into `told` and not inserted."""
        stored = dependencies_of(cur, (dep for _, task in admitted for dep in task.after))
        births: dict[str, tuple[str, str | None, str | None]] = {}
        unmet: dict[str, tuple[str, ...]] = {}
        batch: dict[str, Task] = {}  # earlier tasks of this batch, as they will be born
        new: list[NewTask] = []
        for index, task in admitted:
            verdict = judge(task.after, lambda dep: stored.get(dep) or batch.get(dep))
            if verdict.unknown:
                told.append((index, unknown_dependencies(task.task_id, verdict.unknown)))
                continue
            born = Task(task.task_id, task.task_type, {}, TaskState.PENDING, now)
            if verdict.failed is not None:
                born = revoked_for(born, verdict.failed, now)
            unmet[task.task_id] = verdict.unmet if verdict.failed is None else ()
            error = born.error
            births[task.task_id] = (born.state.value, error.type if error else None, error.message if error else None)
            batch.setdefault(task.task_id, born)
            new.append(task)
        return new, births, unmet

    # ------------------------------------------------------------------ running

    def claim(
        self, node: str, task_types: Collection[str] | None, n: int, *, lease_until: float, now: float
    ) -> ClaimBatch:
        types_clause = "AND task_type = ANY(%(types)s)" if task_types is not None else ""
        rows = self._read(
            f"""WITH picked AS (
                    SELECT submit_order FROM {TASKS}
                    WHERE state = 'PENDING' AND waiting = 0 AND (run_after IS NULL OR run_after <= %(now)s)
                        {types_clause}
                    ORDER BY priority DESC, submit_order LIMIT %(n)s
                    FOR UPDATE SKIP LOCKED)
                UPDATE {TASKS} t SET state = 'RUNNING', attempt = t.attempt + 1, started_at = NULL,
                    run_after = NULL, owner = %(node)s, lease_until = %(lease)s, stop_reason = NULL,
                    progress_percent = 0, progress_message = '', progress_current = 0, progress_total = 0,
                    progress_updated_at = NULL, event_sequence = t.event_sequence + 1,
                    transitions = {transition_sql("t.event_sequence + 1", "'RUNNING'")}
                FROM picked WHERE t.submit_order = picked.submit_order
                RETURNING {T_COLUMNS}""",
            {"now": now, "n": n, "node": node, "lease": lease_until, "types": list(task_types or [])},
        )
        tasks = sorted((task_from_row(row) for row in rows), key=lambda t: (-t.priority, t.submit_order))
        for task in tasks:
            task.started_at = now  # on disk once its handler starts (see _start)
        if tasks:
            self._count_added(-len(tasks))
        claims = {task.task_id: Claim(task, node, lease_until) for task in tasks}
        return ClaimBatch(
            list(claims.values()),
            durable=lambda task_id: self._start(claims[task_id], wait=True),
            started=lambda task_id: self._start_soon(claims[task_id]),
        )

    def _start_soon(self, claim: Claim) -> None:
        """_start() without waiting: for a type safe to run again, its handler starts at once."""
        self._start(claim, wait=False)

    def _start(self, claim: Claim, *, wait: bool) -> BaseException | None:
        """Record that a claim's handler starts (started_at): until then a reap sends the task back to PENDING,
        whatever its type, since it never ran. Waited for before a handler that must not run twice starts."""

        def started(cur: psycopg.Cursor[Any]) -> None:
            cur.execute(
                f"""UPDATE {TASKS} SET started_at = %s
                    WHERE task_id = %s AND owner = %s AND attempt = %s AND started_at IS NULL""",
                (claim.task.started_at, claim.task_id, claim.node, claim.attempt),
            )

        if not wait:
            self._writer.submit(started, _best_effort)
            return None
        try:
            self._writer.call(started)
        except Exception as exc:
            return exc
        return None

    def renew(self, node: str, claims: Sequence[Claim], lease_until: float) -> Renewal:
        rows = self._read(
            f"""UPDATE {TASKS} SET lease_until = %s
                WHERE owner = %s AND state IN ('RUNNING', 'STOPPING') AND task_id = ANY(%s)
                RETURNING task_id, attempt""",
            (lease_until, node, [claim.task_id for claim in claims]),
        )
        held = {(task_id, attempt) for task_id, attempt in rows}
        return Renewal([claim for claim in claims if (claim.task_id, claim.attempt) not in held])

    def mark_stopping(self, claim: Claim, task: Task, then: FencedThen) -> None:
        def stopping(cur: psycopg.Cursor[Any]) -> bool:
            cur.execute(
                f"""UPDATE {TASKS} t SET state = 'STOPPING', event_sequence = %(seq)s, stop_reason = NULL,
                        transitions = {transition_sql("%(seq)s", "'STOPPING'")}
                    WHERE task_id = %(id)s AND owner = %(node)s AND attempt = %(attempt)s AND state = 'RUNNING'""",
                {"seq": task.event_sequence, "id": claim.task_id, "node": claim.node, "attempt": claim.attempt},
            )
            return cur.rowcount == 1

        self._writer.submit(stopping, lambda applied, error: then(bool(applied), error))

    def finish_many(self, ends: Sequence[tuple[Claim, Task]], then: FencedManyThen) -> None:
        def finish(cur: psycopg.Cursor[Any]) -> tuple[list[bool], Settled]:
            columns = [list(column) for column in zip(*(_end_row(claim, final) for claim, final in ends), strict=True)]
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
            written = {row[0] for row in cur.fetchall()}
            applied = [claim.task_id in written for claim, _ in ends]
            return applied, settle(cur, [final for (_, final), mine in zip(ends, applied, strict=True) if mine])

        def done(outcome: tuple[list[bool], Settled] | None, error: BaseException | None) -> None:
            then(outcome[0] if outcome else [False] * len(ends), error)
            if outcome is not None:
                self._settled(*outcome[1])

        self._writer.submit(finish, done)

    def retry_at(self, claim: Claim, task: Task, due: float, then: FencedThen) -> None:
        error = task.error

        def retry(cur: psycopg.Cursor[Any]) -> bool:
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
            return cur.rowcount == 1

        def done(applied: bool | None, failure: BaseException | None) -> None:
            if applied:
                self._count_added(1)
            then(bool(applied), failure)

        self._writer.submit(retry, done, notify="work")

    def save_progress(self, updates: Sequence[tuple[Claim, Progress, int]]) -> None:
        if not updates:
            return

        def save(cur: psycopg.Cursor[Any]) -> None:
            cur.execute(
                f"""UPDATE {TASKS} t SET progress_percent = v.pp, progress_message = v.pm, progress_current = v.pc,
                        progress_total = v.pt, progress_updated_at = v.pu,
                        event_sequence = greatest(t.event_sequence, v.seq)
                    FROM unnest(%s::text[], %s::text[], %s::int[], %s::float8[], %s::text[], %s::int8[], %s::int8[],
                                %s::float8[], %s::int8[]) AS v(id, node, attempt, pp, pm, pc, pt, pu, seq)
                    WHERE t.task_id = v.id AND t.owner = v.node AND t.attempt = v.attempt
                        AND t.state IN ('RUNNING', 'STOPPING')""",
                [list(column) for column in zip(*(_progress_row(c, p, seq) for c, p, seq in updates), strict=True)],
            )

        self._writer.submit(save, _best_effort)

    def request_stop(self, task_id: str, reason: str, now: float, then: StopThen) -> None:
        def stop(cur: psycopg.Cursor[Any]) -> tuple[StopResult | None, Settled | None]:
            cur.execute(
                f"""UPDATE {TASKS} t SET state = 'REVOKED', error_type = %(etype)s, error_message = %(reason)s,
                        error_traceback = NULL, ended_at = %(now)s, run_after = NULL,
                        event_sequence = t.event_sequence + 1,
                        transitions = {transition_sql("t.event_sequence + 1", "'REVOKED'")}
                    WHERE task_id = %(id)s AND state = 'PENDING' RETURNING {T_COLUMNS}""",
                {"etype": ErrorType.REVOKED, "reason": reason, "now": now, "id": task_id},
            )
            row = cur.fetchone()
            if row is not None:
                revoked = task_from_row(row)
                stop_waiting(cur, [task_id])
                return StopResult(StopEffect.REVOKED, revoked), settle(cur, [revoked])
            cur.execute(
                f"""UPDATE {TASKS} SET stop_reason = %s WHERE task_id = %s AND state = 'RUNNING'
                    RETURNING {COLUMNS}""",
                (reason, task_id),
            )
            row = cur.fetchone()
            if row is not None:
                return StopResult(StopEffect.STOPPING, task_from_row(row)), None
            cur.execute(f"SELECT {COLUMNS} FROM {TASKS} WHERE task_id = %s", (task_id,))
            row = cur.fetchone()
            return (None if row is None else StopResult(StopEffect.UNCHANGED, task_from_row(row))), None

        def done(outcome: tuple[StopResult | None, Settled | None] | None, error: BaseException | None) -> None:
            result = outcome[0] if outcome is not None else None
            if error is None and result is None:
                error = TaskNotFound(task_id)
            elif result is not None and result.effect is StopEffect.REVOKED:
                self._count_added(-1)
            then(result, error)
            if outcome is not None and outcome[1] is not None:
                self._settled(*outcome[1])

        self._writer.submit(stop, done, notify="stop")

    def delete(self, task_id: str, then: TaskThen) -> None:
        def gone(cur: psycopg.Cursor[Any]) -> Task | BaseException:
            cur.execute(
                f"DELETE FROM {TASKS} WHERE task_id = %s AND state = ANY(%s) RETURNING {COLUMNS}",
                (task_id, ENDED),
            )
            row = cur.fetchone()
            if row is not None:
                return task_from_row(row)
            cur.execute(f"SELECT {COLUMNS} FROM {TASKS} WHERE task_id = %s", (task_id,))
            row = cur.fetchone()
            return TaskNotFound(task_id) if row is None else not_ended(task_from_row(row))

        def done(outcome: Task | BaseException | None, error: BaseException | None) -> None:
            if error is None and isinstance(outcome, BaseException):
                error = outcome
            then(None if error is not None else outcome, error)  # type: ignore[arg-type]

        self._writer.submit(gone, done)

    def delete_ended(self, task_filter: TaskFilter, ended_before: float | None, limit: int) -> list[str]:
        where, params = filter_sql(task_filter)
        if ended_before is not None:
            where.append("ended_at < %s")
            params.append(ended_before)
        return self._delete_where(" AND ".join(where), params, limit)

    def expire(self, now: float, retention: float, limit: int) -> list[str]:
        # As store.base.expired(): a task's own retention, else the server's; 0 keeps for ever.
        where = "((retention IS NULL AND %s > 0 AND ended_at < %s) OR (retention > 0 AND ended_at + retention < %s))"
        return self._delete_where(where, [retention, now - retention, now], limit)

    def _delete_where(self, where: str, params: list[Any], limit: int) -> list[str]:
        """Delete up to `limit` ended tasks matching `where`, oldest end first; rows another server is deleting
        are skipped, not waited for."""
        rows = self._read(
            f"""WITH gone AS (
                    DELETE FROM {TASKS} WHERE submit_order IN (
                        SELECT submit_order FROM {TASKS}
                        WHERE ended_at IS NOT NULL AND state = ANY(%s) AND {where}
                        ORDER BY ended_at LIMIT %s FOR UPDATE SKIP LOCKED)
                    RETURNING task_id, ended_at)
                SELECT task_id FROM gone ORDER BY ended_at""",
            [ENDED, *params, limit],
        )
        return [row[0] for row in rows]

    def retry(self, task_id: str, now: float, then: RetryThen) -> None:
        retryable = sorted(state.value for state in RETRYABLE_STATES)

        def again(cur: psycopg.Cursor[Any]) -> tuple[Task, TaskState] | BaseException:
            # Its dependencies first: one that failed refuses the retry, those not ended are waited for again.
            cur.execute(
                f"SELECT after_ids::text FROM {TASKS} WHERE task_id = %s AND state = ANY(%s) FOR UPDATE",
                (task_id, retryable),
            )
            row = cur.fetchone()
            after: list[str] = json.loads(row[0]) if row is not None and row[0] is not None else []
            stored = dependencies_of(cur, after)
            verdict = judge(after, lambda dep: stored.get(dep, _DELETED))
            if verdict.failed is not None:
                return not_retryable_before(task_id, verdict.failed)
            add_waits(cur, [(task_id, dep) for dep in verdict.unmet])
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
                (task_id, retryable, len(verdict.unmet)),
            )
            row = cur.fetchone()
            if row is not None:
                return task_from_row(row), TaskState(row[-1])
            cur.execute(f"SELECT {COLUMNS} FROM {TASKS} WHERE task_id = %s", (task_id,))
            row = cur.fetchone()
            return TaskNotFound(task_id) if row is None else not_retryable(task_from_row(row))

        def done(outcome: tuple[Task, TaskState] | BaseException | None, error: BaseException | None) -> None:
            if error is None and isinstance(outcome, BaseException):
                error = outcome
            if error is not None:
                then(None, error)
                return
            self._count_added(1)
            then(outcome, None)  # type: ignore[arg-type]

        self._writer.submit(again, done, notify="work")

    def stops_for(self, node: str) -> list[tuple[str, int, str]]:
        rows = self._read(
            f"""SELECT task_id, attempt, stop_reason FROM {TASKS}
                WHERE owner = %s AND state IN ('RUNNING', 'STOPPING') AND stop_reason IS NOT NULL""",
            (node,),
        )
        return [(task_id, attempt, reason) for task_id, attempt, reason in rows]

    def reap(self, now: float, rerunnable: Collection[str]) -> list[tuple[Task, TaskState]]:
        def reaped(cur: psycopg.Cursor[Any]) -> tuple[list[tuple[Task, TaskState]], Settled]:
            changed = [(task_from_row(row), TaskState(row[-1])) for row in cur.execute(*statement).fetchall()]
            return changed, settle(cur, [task for task, _ in changed if task.state is TaskState.LOST])

        statement = (
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
        changed: list[tuple[Task, TaskState]]
        changed, cascade = self._transact(reaped)
        self._settled(*cascade)
        if any(task.state is TaskState.PENDING for task, _ in changed):
            self._writer.submit(lambda cur: None, _best_effort, notify="work")
        return changed

    # ------------------------------------------------------------------ reads

    def get(self, task_id: str) -> Task | None:
        rows = self._read(f"SELECT {COLUMNS} FROM {TASKS} WHERE task_id = %s", (task_id,))
        return task_from_row(rows[0]) if rows else None

    def list(self, task_filter: TaskFilter, *, before_order: int | None, limit: int) -> list[Task]:
        where, params = filter_sql(task_filter)
        if before_order is not None:
            where.append("submit_order < %s")
            params.append(before_order)
        rows = self._read(
            f"SELECT {COLUMNS} FROM {TASKS} WHERE {' AND '.join(where)} ORDER BY submit_order DESC LIMIT %s",
            [*params, limit],
        )
        return [task_from_row(row) for row in rows]

    def changed_since(self, known: dict[str, int]) -> builtins.list[tuple[Task, builtins.list[tuple[int, str]]]]:
        """Of the tasks in `known` (id -> the event sequence a node has shown), those that moved on, each with its
        recent state changes (sequence, state): for the watchers on a node of tasks that other nodes run."""
        rows = self._read(
            f"""SELECT {COLUMNS}, transitions::text FROM {TASKS} t
                JOIN unnest(%s::text[], %s::int8[]) AS k(id, seq) ON t.task_id = k.id
                WHERE t.event_sequence > k.seq""",
            (list(known), list(known.values())),
        )
        return [(task_from_row(row), [(int(s), str(st)) for s, st in json.loads(row[-1])]) for row in rows]

    def queued(self) -> int:
        return self._queue_size()[0]

    def _queue_size(self) -> tuple[int, int]:
        """The queue's length and the bytes of its args and labels, as last counted; never waits for the database
        (Submit calls it on the event loop): a count older than QUEUE_COUNT_SECONDS is made again by the writer, in
        its next transaction."""
        with self._count_lock:
            count, size, counted_at = self._queued
            stale = time.monotonic() - counted_at >= QUEUE_COUNT_SECONDS and not self._counting
            self._counting |= stale
        if stale:
            self._writer.submit(_count_pending, self._counted)
        return count, size

    def _counted(self, counted: tuple[int, int] | None, error: BaseException | None) -> None:
        with self._count_lock:
            self._counting = False
            if error is None and counted is not None:
                self._queued = (*counted, time.monotonic())

    def _count_added(self, delta: int, size: int = 0) -> None:
        with self._count_lock:
            count, counted_bytes, counted_at = self._queued
            self._queued = (max(0, count + delta), max(0, counted_bytes + size), counted_at)

    # ------------------------------------------------------------------ schedules

    def add_schedule(self, schedule: Schedule) -> tuple[Schedule, bool]:
        def add(cur: psycopg.Cursor[Any]) -> tuple[Schedule, bool]:
            cur.execute(
                f"""INSERT INTO {SCHEDULES} ({SCHEDULE_COLUMNS}) VALUES (%s, %s::jsonb, %s, %s, %s, %s, %s, %s)
                    ON CONFLICT (schedule_id) DO NOTHING""",
                schedule_row(schedule),
            )
            if cur.rowcount == 1:
                return schedule.copy(), True
            cur.execute(f"SELECT {_SCHEDULE_ROW} FROM {SCHEDULES} WHERE schedule_id = %s", (schedule.schedule_id,))
            return schedule_from_row(cur.fetchone()), False

        return self._transact(add)  # type: ignore[no-any-return]

    def get_schedule(self, schedule_id: str) -> Schedule | None:
        rows = self._read(f"SELECT {_SCHEDULE_ROW} FROM {SCHEDULES} WHERE schedule_id = %s", (schedule_id,))
        return schedule_from_row(rows[0]) if rows else None

    def list_schedules(self, after_id: str, limit: int) -> builtins.list[Schedule]:
        rows = self._read(
            f"SELECT {_SCHEDULE_ROW} FROM {SCHEDULES} WHERE schedule_id > %s ORDER BY schedule_id LIMIT %s",
            (after_id, limit),
        )
        return [schedule_from_row(row) for row in rows]

    def save_schedule(self, schedule: Schedule, expected: Schedule) -> bool:
        _, _, paused, next_due, _, last_due, last_task_id, last_error = schedule_row(schedule)
        rows = self._read(
            f"""UPDATE {SCHEDULES} SET paused = %s, next_due = %s, last_due = %s, last_task_id = %s, last_error = %s
                WHERE schedule_id = %s AND next_due = %s AND paused = %s RETURNING schedule_id""",
            (paused, next_due, last_due, last_task_id, last_error, schedule.schedule_id, expected.next_due,
             expected.paused),
        )  # fmt: skip
        return bool(rows)

    def remove_schedule(self, schedule_id: str) -> Schedule | None:
        rows = self._read(f"DELETE FROM {SCHEDULES} WHERE schedule_id = %s RETURNING {_SCHEDULE_ROW}", (schedule_id,))
        return schedule_from_row(rows[0]) if rows else None

    def due_schedules(self, now: float, limit: int) -> builtins.list[Schedule]:
        rows = self._read(
            f"""SELECT {_SCHEDULE_ROW} FROM {SCHEDULES} WHERE NOT paused AND next_due <= %s
                ORDER BY next_due LIMIT %s""",
            (now, limit),
        )
        return [schedule_from_row(row) for row in rows]

    # ------------------------------------------------------------------ life

    def task_logs(self) -> DatabaseLogs:
        if self._logs is None:
            self._logs = DatabaseLogs(self._pool)
        return self._logs

    def on_work(self, listener: Callable[[], None]) -> None:
        self._listener.on("work", listener)

    def on_stop(self, listener: Callable[[], None]) -> None:
        self._listener.on("stop", listener)

    def on_ended(self, listener: EndedListener) -> None:
        self._ended_listeners.append(listener)

    def close(self) -> None:
        if self._logs is not None:
            self._logs.close()
        self._listener.close()
        self._writer.close()
        self._pool.close()


# A schedule row with its definition as text, as schedule_from_row() reads it.
_SCHEDULE_ROW = SCHEDULE_COLUMNS.replace("definition", "definition::text")
# A dependency no longer stored: only an ended task can be deleted, so it counts as met.
_DELETED = Task("", "", {}, TaskState.SUCCESS, 0.0)


def _unavailable(error: BaseException) -> StoreUnavailable:
    return error if isinstance(error, StoreUnavailable) else StoreUnavailable(str(error))


def _count_pending(cur: psycopg.Cursor[Any]) -> tuple[int, int]:
    """The queued tasks, and what their args and labels take (as stored: jsonb, maybe compressed)."""
    row = cur.execute(
        f"""SELECT count(*), coalesce(sum(pg_column_size(args) + pg_column_size(labels)), 0)
            FROM {TASKS} WHERE state = 'PENDING'"""
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _best_effort(result: Any, error: BaseException | None) -> None:
    """For writes whose loss only costs a moment of progress, or a hint: a later one makes up for it."""


def _end_row(claim: Claim, final: Task) -> tuple[Any, ...]:
    p, e = final.progress, final.error
    return (
        claim.task_id, claim.attempt, claim.node, final.state.value,
        None if final.result is None else dumps(final.result),
        e.type if e else None, e.message if e else None, e.traceback if e else None,
        final.ended_at, p.percent, p.message, p.current, p.total, p.updated_at, final.event_sequence,
        final.started_at,
    )  # fmt: skip


def _progress_row(claim: Claim, progress: Progress, sequence: int) -> tuple[Any, ...]:
    p = progress
    return (claim.task_id, claim.node, claim.attempt, p.percent, p.message, p.current, p.total, p.updated_at, sequence)
