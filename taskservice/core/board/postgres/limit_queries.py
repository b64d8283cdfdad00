"""The statements of limits, fair turns and the servers' rows in PostgreSQL (sql/queries.py, LimitQueries, says
what each means).

While limits exist, every claim holds one advisory lock until it commits (hold_claims): the running tasks a claim
counts cannot change under it by another node's claim, so a group's cap holds exactly across nodes. Ends, stops
and reaps need no lock: they only lower the count.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from taskservice.core.board.base import ClaimScope
from taskservice.core.board.postgres.rows import CLAIMED, T_COLUMNS, dumps, task_from_row
from taskservice.core.board.postgres.schema import (
    BUCKETS,
    CLAIM_LOCK,
    COUNT_CHANGES,
    COUNTS,
    FOLD_LOCK,
    LIMITS,
    NODES,
    TASKS,
    TURNS,
)
from taskservice.core.board.sql.queries import Cursor, HeldBack
from taskservice.core.board.sql.rows import held_back_sql
from taskservice.core.model.limits import LIMIT_COLUMNS, Bucket, Limit, LimitSpec, limit_from_row, limit_row
from taskservice.core.model.models import Task
from taskservice.core.model.nodes import NODE_COLUMNS, NodeInfo, node_from_row, node_row

_LIMIT_ROW = LIMIT_COLUMNS.replace("definition", "definition::text")
_NODE_ROW = NODE_COLUMNS.replace("types", "types::text").replace("labels", "labels::text")


def covers_sql(spec: LimitSpec, groups: Collection[str] | None) -> tuple[str, list[Any]]:
    """A condition true of the tasks `spec` covers in `groups` (None: in any), and its parameters."""
    parts = ["TRUE"]
    params: list[Any] = []
    if spec.task_type:
        parts.append("task_type = %s")
        params.append(spec.task_type)
    if spec.labels:
        parts.append("labels @> %s::jsonb")
        params.append(dumps(dict(spec.labels)))
    if groups is not None and spec.key_label:
        parts.append("coalesce(labels->>%s, '') = ANY(%s)")
        params += [spec.key_label, sorted(groups)]
    return " AND ".join(parts), params


class PgLimitQueries:
    # ------------------------------------------------------------------ limits

    def insert_limit(self, cur: Cursor, limit: Limit) -> bool:
        cur.execute(
            f"INSERT INTO {LIMITS} ({LIMIT_COLUMNS}) VALUES (%s, %s::jsonb, %s, %s) ON CONFLICT DO NOTHING",
            limit_row(limit),
        )
        return bool(cur.rowcount)

    def limits(self, cur: Cursor, limit_id: str | None, after_id: str, n: int) -> builtins.list[Limit]:
        if limit_id is not None:
            cur.execute(f"SELECT {_LIMIT_ROW} FROM {LIMITS} WHERE limit_id = %s", (limit_id,))
        else:
            cur.execute(f"SELECT {_LIMIT_ROW} FROM {LIMITS} WHERE limit_id > %s ORDER BY limit_id LIMIT %s",
                        (after_id, n))  # fmt: skip
        return [limit_from_row(row) for row in cur.fetchall()]

    def update_limit(self, cur: Cursor, limit: Limit) -> bool:
        limit_id, definition, _, updated_at = limit_row(limit)
        cur.execute(
            f"UPDATE {LIMITS} SET definition = %s::jsonb, updated_at = %s WHERE limit_id = %s",
            (definition, updated_at, limit_id),
        )
        updated = bool(cur.rowcount)
        if updated:  # a new rate starts from full buckets
            cur.execute(f"DELETE FROM {BUCKETS} WHERE limit_id = %s", (limit_id,))
        return updated

    def delete_limit(self, cur: Cursor, limit_id: str) -> Limit | None:
        cur.execute(f"DELETE FROM {LIMITS} WHERE limit_id = %s RETURNING {_LIMIT_ROW}", (limit_id,))
        row = cur.fetchone()
        cur.execute(f"DELETE FROM {BUCKETS} WHERE limit_id = %s", (limit_id,))
        return None if row is None else limit_from_row(row)

    # ------------------------------------------------------------------ claims under limits

    def hold_claims(self, cur: Cursor) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (CLAIM_LOCK,))

    def running_labels(self, cur: Cursor) -> builtins.list[tuple[str, dict[str, str]]]:
        cur.execute(f"SELECT task_type, labels::text FROM {TASKS} WHERE state IN ('RUNNING', 'STOPPING')")
        return [(task_type, json.loads(labels)) for task_type, labels in cur.fetchall()]

    def buckets(self, cur: Cursor, limit_ids: Collection[str]) -> dict[tuple[str, str], Bucket]:
        cur.execute(f"SELECT limit_id, grp, tokens, at FROM {BUCKETS} WHERE limit_id = ANY(%s)", (list(limit_ids),))
        return {(limit_id, grp): Bucket(tokens, at) for limit_id, grp, tokens, at in cur.fetchall()}

    def save_buckets(self, cur: Cursor, buckets: Mapping[tuple[str, str], Bucket]) -> None:
        if buckets:
            keys = list(buckets)
            cur.execute(
                f"""INSERT INTO {BUCKETS} (limit_id, grp, tokens, at)
                    SELECT * FROM unnest(%s::text[], %s::text[], %s::float8[], %s::float8[])
                    ON CONFLICT (limit_id, grp) DO UPDATE SET tokens = excluded.tokens, at = excluded.at""",
                ([k[0] for k in keys], [k[1] for k in keys], [buckets[k].tokens for k in keys],
                 [buckets[k].at for k in keys]),
            )  # fmt: skip

    def candidates(
        self, cur: Cursor, scope: ClaimScope, held_back: Sequence[HeldBack], n: int, now: float
    ) -> builtins.list[tuple[int, str, dict[str, str]]]:
        held_sql, held_params = held_back_sql(held_back, covers_sql)
        types_clause = "AND task_type = ANY(%s)" if scope.types is not None else ""
        labels_clause = "AND labels @> %s::jsonb" if scope.labels else ""
        params: list[Any] = [now]
        if scope.types is not None:
            params.append(sorted(scope.types))
        if scope.labels:
            params.append(dumps(dict(scope.labels)))
        cur.execute(
            f"""SELECT submit_order, task_type, labels::text FROM {TASKS}
                WHERE state = 'PENDING' AND waiting = 0 AND (run_after IS NULL OR run_after <= %s)
                    {types_clause} {labels_clause} {held_sql}
                ORDER BY priority DESC, turn, submit_order LIMIT %s
                FOR UPDATE SKIP LOCKED""",
            [*params, *held_params, n],
        )
        return [(order, task_type, json.loads(labels)) for order, task_type, labels in cur.fetchall()]

    def take(self, cur: Cursor, orders: Sequence[int], node: str, lease_until: float) -> builtins.list[Task]:
        if not orders:
            return []
        cur.execute(
            f"""UPDATE {TASKS} t SET {CLAIMED}
                WHERE t.submit_order = ANY(%(orders)s) AND t.state = 'PENDING'
                RETURNING {T_COLUMNS}""",
            {"orders": list(orders), "node": node, "lease": lease_until},
        )
        return [task_from_row(row) for row in cur.fetchall()]

    def in_group(self, cur: Cursor, spec: LimitSpec, group: str, n: int) -> builtins.list[tuple[str, str]]:
        covered, params = covers_sql(spec, [group])
        cur.execute(
            f"""SELECT task_id, state FROM {TASKS} WHERE state IN ('PENDING', 'RUNNING', 'STOPPING') AND {covered}
                ORDER BY submit_order DESC LIMIT %s""",
            [*params, n],
        )
        return [(task_id, state) for task_id, state in cur.fetchall()]

    # ------------------------------------------------------------------ servers

    def save_node(self, cur: Cursor, node: NodeInfo) -> None:
        cur.execute(
            f"""INSERT INTO {NODES} ({NODE_COLUMNS}) VALUES (%s, %s::jsonb, %s::jsonb, %s, %s, %s, %s, %s)
                ON CONFLICT (node) DO UPDATE SET types = excluded.types, labels = excluded.labels,
                    seen_at = excluded.seen_at, workers = excluded.workers, busy = excluded.busy,
                    abandoned = excluded.abandoned""",
            node_row(node),
        )

    def nodes(self, cur: Cursor, seen_after: float) -> builtins.list[NodeInfo]:
        cur.execute(f"SELECT {_NODE_ROW} FROM {NODES} WHERE seen_at > %s ORDER BY node", (seen_after,))
        return [node_from_row(row) for row in cur.fetchall()]

    def delete_node(self, cur: Cursor, name: str) -> None:
        cur.execute(f"DELETE FROM {NODES} WHERE node = %s", (name,))

    # ------------------------------------------------------------------ fair turns

    def turn_floor(self, cur: Cursor) -> float:
        cur.execute(
            f"""SELECT coalesce(
                    (SELECT turn FROM {TASKS} WHERE state = 'PENDING' AND waiting = 0 AND run_after IS NULL
                     ORDER BY priority DESC, turn, submit_order LIMIT 1),
                    (SELECT max(next_turn) FROM {TURNS}), 0)"""
        )
        return float(cur.fetchone()[0])

    def next_turns(self, cur: Cursor, groups: Collection[str]) -> dict[str, float]:
        cur.execute(f"SELECT grp, next_turn FROM {TURNS} WHERE grp = ANY(%s)", (sorted(groups),))
        return dict(cur.fetchall())

    def save_turns(self, cur: Cursor, turns: Mapping[str, float]) -> None:
        if turns:
            cur.execute(
                f"""INSERT INTO {TURNS} (grp, next_turn) SELECT * FROM unnest(%s::text[], %s::float8[])
                    ON CONFLICT (grp) DO UPDATE SET next_turn = greatest({TURNS}.next_turn, excluded.next_turn)""",
                (list(turns), list(turns.values())),
            )

    # ------------------------------------------------------------------ for GetStats

    def task_counts(self, cur: Cursor) -> builtins.list[tuple[str, str, int]]:
        # The totals folded so far and the changes since, in one statement: one snapshot of both.
        cur.execute(
            f"""SELECT task_type, state, sum(n) FROM (
                    SELECT task_type, state, n FROM {COUNTS} UNION ALL SELECT task_type, state, n FROM {COUNT_CHANGES}
                ) counted GROUP BY task_type, state HAVING sum(n) > 0"""
        )
        found: builtins.list[tuple[str, str, int]] = cur.fetchall()
        return found

    def fold_task_counts(self, cur: Cursor) -> None:
        """The count changes written so far into the totals, unless another node folds now (it will have them)."""
        cur.execute("SELECT pg_try_advisory_xact_lock(%s)", (FOLD_LOCK,))
        if not cur.fetchone()[0]:
            return
        cur.execute(
            f"""WITH folded AS (DELETE FROM {COUNT_CHANGES} RETURNING task_type, state, n)
                INSERT INTO {COUNTS} SELECT task_type, state, sum(n) FROM folded GROUP BY task_type, state
                ON CONFLICT (task_type, state) DO UPDATE SET n = {COUNTS}.n + EXCLUDED.n"""
        )

    def started_by_minute(self, cur: Cursor, since: float) -> builtins.list[tuple[int, int]]:
        minute = "floor(started_at / 60)::bigint"
        # A task started since then has ended since then or runs now: both are found by index, not by a scan.
        cur.execute(
            f"""SELECT {minute}, count(*) FROM {TASKS} WHERE (ended_at >= %s OR state IN ('RUNNING', 'STOPPING'))
                        AND started_at >= %s GROUP BY 1""",
            (since, since),
        )
        found: builtins.list[tuple[int, int]] = cur.fetchall()
        return found

    def ended_by_minute(self, cur: Cursor, since: float) -> builtins.list[tuple[int, str, int]]:
        minute = "floor(ended_at / 60)::bigint"
        cur.execute(f"SELECT {minute}, state, count(*) FROM {TASKS} WHERE ended_at >= %s GROUP BY 1, 2", (since,))
        found: builtins.list[tuple[int, str, int]] = cur.fetchall()
        return found

    def running_covered(self, cur: Cursor, spec: LimitSpec) -> int:
        covered, params = covers_sql(spec, None)
        cur.execute(f"SELECT count(*) FROM {TASKS} WHERE state IN ('RUNNING', 'STOPPING') AND {covered}", params)
        return int(cur.fetchone()[0])

    # ------------------------------------------------------------------ for the metrics

    def held_back_count(self, cur: Cursor, held: HeldBack) -> int:
        covered, params = covers_sql(*held)
        cur.execute(f"SELECT count(*) FROM {TASKS} WHERE state = 'PENDING' AND waiting = 0 AND {covered}", params)
        return int(cur.fetchone()[0])

    def oldest_ready(self, cur: Cursor, held_back: Sequence[HeldBack], now: float) -> float | None:
        excluded, params = held_back_sql(held_back, covers_sql)
        cur.execute(
            f"""SELECT min(greatest(submitted_at, coalesce(run_after, 0))) FROM {TASKS}
                WHERE state = 'PENDING' AND waiting = 0 AND (run_after IS NULL OR run_after <= %s){excluded}""",
            [now, *params],
        )
        found = cur.fetchone()[0]
        return None if found is None else float(found)
