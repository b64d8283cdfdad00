"""The statements of limits, fair turns and the servers' rows in SQLite (sql/queries.py, LimitQueries, says what
each means).

A claim runs in the writer's `BEGIN IMMEDIATE` transaction, which holds the file's write lock against every other
writer, in this process or another (`--procs`): the running tasks it counts cannot change under it, so a group's
cap holds exactly with no lock of its own. A task's group is read from `task_labels`, whose keys need no quoting.
Reads in claim order name the claim index (`INDEXED BY tasks_ready`): SQLite's planner would otherwise take the
index by state and sort every queued task, at each claim.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from taskservice.core.board.base import ClaimScope
from taskservice.core.board.sql.queries import Cursor, HeldBack
from taskservice.core.board.sql.rows import held_back_sql
from taskservice.core.board.sqlite.rows import CLAIMED
from taskservice.core.board.sqlite.schema import COLUMNS
from taskservice.core.board.task_rows import task_from_row
from taskservice.core.model.limits import LIMIT_COLUMNS, Bucket, Limit, LimitSpec, limit_from_row, limit_row
from taskservice.core.model.models import Task
from taskservice.core.model.nodes import NODE_COLUMNS, NodeInfo, node_from_row, node_row

_HAS_LABEL = "EXISTS (SELECT 1 FROM task_labels l WHERE l.seq = tasks.seq AND l.key = ? AND l.value = ?)"
_LABEL_VALUE = "coalesce((SELECT value FROM task_labels l WHERE l.seq = tasks.seq AND l.key = ?), '')"


def _in(values: Collection[Any]) -> str:
    return f"({', '.join('?' * len(values))})"


def covers_sql(spec: LimitSpec, groups: Collection[str] | None) -> tuple[str, list[Any]]:
    """A condition true of the tasks `spec` covers in `groups` (None: in any), and its parameters."""
    parts = ["1"]
    params: list[Any] = []
    if spec.task_type:
        parts.append("task_type = ?")
        params.append(spec.task_type)
    for key, value in spec.labels:
        parts.append(_HAS_LABEL)
        params += [key, value]
    if groups is not None and spec.key_label:
        parts.append(f"{_LABEL_VALUE} IN {_in(groups)}")
        params += [spec.key_label, *sorted(groups)]
    return " AND ".join(parts), params


class SQLiteLimitQueries:
    # ------------------------------------------------------------------ limits

    def insert_limit(self, cur: Cursor, limit: Limit) -> bool:
        cur.execute(f"INSERT OR IGNORE INTO limits ({LIMIT_COLUMNS}) VALUES (?, ?, ?, ?)", limit_row(limit))
        return bool(cur.rowcount)

    def limits(self, cur: Cursor, limit_id: str | None, after_id: str, n: int) -> builtins.list[Limit]:
        if limit_id is not None:
            cur.execute(f"SELECT {LIMIT_COLUMNS} FROM limits WHERE limit_id = ?", (limit_id,))
        else:
            cur.execute(f"SELECT {LIMIT_COLUMNS} FROM limits WHERE limit_id > ? ORDER BY limit_id LIMIT ?",
                        (after_id, n))  # fmt: skip
        return [limit_from_row(row) for row in cur.fetchall()]

    def update_limit(self, cur: Cursor, limit: Limit) -> bool:
        limit_id, definition, _, updated_at = limit_row(limit)
        cur.execute("UPDATE limits SET definition = ?, updated_at = ? WHERE limit_id = ?",
                    (definition, updated_at, limit_id))  # fmt: skip
        updated = bool(cur.rowcount)
        if updated:  # a new rate starts from full buckets
            cur.execute("DELETE FROM limit_buckets WHERE limit_id = ?", (limit_id,))
        return updated

    def delete_limit(self, cur: Cursor, limit_id: str) -> Limit | None:
        cur.execute(f"DELETE FROM limits WHERE limit_id = ? RETURNING {LIMIT_COLUMNS}", (limit_id,))
        row = cur.fetchone()
        cur.execute("DELETE FROM limit_buckets WHERE limit_id = ?", (limit_id,))
        return None if row is None else limit_from_row(row)

    # ------------------------------------------------------------------ claims under limits

    def hold_claims(self, cur: Cursor) -> None:
        """Nothing to take: the transaction holds the file's write lock."""

    def running_labels(self, cur: Cursor) -> builtins.list[tuple[str, dict[str, str]]]:
        cur.execute("SELECT task_type, labels FROM tasks WHERE state IN ('RUNNING', 'STOPPING')")
        return [(task_type, json.loads(labels)) for task_type, labels in cur.fetchall()]

    def buckets(self, cur: Cursor, limit_ids: Collection[str]) -> dict[tuple[str, str], Bucket]:
        ids = sorted(limit_ids)
        cur.execute(f"SELECT limit_id, grp, tokens, at FROM limit_buckets WHERE limit_id IN {_in(ids)}", ids)
        return {(limit_id, grp): Bucket(tokens, at) for limit_id, grp, tokens, at in cur.fetchall()}

    def save_buckets(self, cur: Cursor, buckets: Mapping[tuple[str, str], Bucket]) -> None:
        cur.executemany(
            "INSERT OR REPLACE INTO limit_buckets (limit_id, grp, tokens, at) VALUES (?, ?, ?, ?)",
            [(limit_id, grp, bucket.tokens, bucket.at) for (limit_id, grp), bucket in buckets.items()],
        )

    def candidates(
        self, cur: Cursor, scope: ClaimScope, held_back: Sequence[HeldBack], n: int, now: float
    ) -> builtins.list[tuple[int, str, dict[str, str]]]:
        held_sql, held_params = held_back_sql(held_back, covers_sql)
        types = sorted(scope.types) if scope.types is not None else []
        types_clause = f"AND task_type IN {_in(types)}" if scope.types is not None else ""
        labels_clause = "".join(f" AND {_HAS_LABEL}" for _ in scope.labels)
        cur.execute(
            f"""SELECT seq, task_type, labels FROM tasks INDEXED BY tasks_ready
                WHERE state = 'PENDING' AND waiting = 0 AND (run_after IS NULL OR run_after <= ?) {types_clause}
                    {labels_clause} {held_sql}
                ORDER BY priority DESC, turn, seq LIMIT ?""",
            [now, *types, *[part for label in scope.labels for part in label], *held_params, n],
        )
        return [(seq, task_type, json.loads(labels)) for seq, task_type, labels in cur.fetchall()]

    def take(self, cur: Cursor, orders: Sequence[int], node: str, lease_until: float) -> builtins.list[Task]:
        if not orders:
            return []
        cur.execute(
            f"UPDATE tasks SET {CLAIMED} WHERE seq IN {_in(orders)} AND state = 'PENDING' RETURNING {COLUMNS}",
            [node, lease_until, *orders],
        )
        return [task_from_row(row) for row in cur.fetchall()]

    def in_group(self, cur: Cursor, spec: LimitSpec, group: str, n: int) -> builtins.list[tuple[str, str]]:
        covered, params = covers_sql(spec, [group])
        cur.execute(
            f"""SELECT task_id, state FROM tasks WHERE state IN ('PENDING', 'RUNNING', 'STOPPING') AND {covered}
                ORDER BY seq DESC LIMIT ?""",
            [*params, n],
        )
        return [(task_id, state) for task_id, state in cur.fetchall()]

    # ------------------------------------------------------------------ servers

    def save_node(self, cur: Cursor, node: NodeInfo) -> None:
        cur.execute(f"INSERT OR REPLACE INTO nodes ({NODE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", node_row(node))

    def nodes(self, cur: Cursor, seen_after: float) -> builtins.list[NodeInfo]:
        cur.execute(f"SELECT {NODE_COLUMNS} FROM nodes WHERE seen_at > ? ORDER BY node", (seen_after,))
        return [node_from_row(row) for row in cur.fetchall()]

    def delete_node(self, cur: Cursor, name: str) -> None:
        cur.execute("DELETE FROM nodes WHERE node = ?", (name,))

    # ------------------------------------------------------------------ fair turns

    def turn_floor(self, cur: Cursor) -> float:
        cur.execute(
            """SELECT coalesce(
                   (SELECT turn FROM tasks INDEXED BY tasks_ready
                    WHERE state = 'PENDING' AND waiting = 0 AND run_after IS NULL
                    ORDER BY priority DESC, turn, seq LIMIT 1),
                   (SELECT max(next_turn) FROM turns), 0)"""
        )
        return float(cur.fetchone()[0])

    def next_turns(self, cur: Cursor, groups: Collection[str]) -> dict[str, float]:
        wanted = sorted(groups)
        cur.execute(f"SELECT grp, next_turn FROM turns WHERE grp IN {_in(wanted)}", wanted)
        return dict(cur.fetchall())

    def save_turns(self, cur: Cursor, turns: Mapping[str, float]) -> None:
        cur.executemany(
            "INSERT INTO turns (grp, next_turn) VALUES (?, ?) "
            "ON CONFLICT (grp) DO UPDATE SET next_turn = max(next_turn, excluded.next_turn)",
            list(turns.items()),
        )

    # ------------------------------------------------------------------ for GetStats

    def task_counts(self, cur: Cursor) -> builtins.list[tuple[str, str, int]]:
        cur.execute("SELECT task_type, state, n FROM task_counts WHERE n > 0")
        found: builtins.list[tuple[str, str, int]] = cur.fetchall()
        return found

    def started_by_minute(self, cur: Cursor, since: float) -> builtins.list[tuple[int, int]]:
        minute = "CAST(started_at / 60 AS INTEGER)"
        # A task started since then has ended since then or runs now: both are found by index, not by a scan.
        cur.execute(
            f"""SELECT {minute}, count(*) FROM tasks WHERE (ended_at >= ? OR state IN ('RUNNING', 'STOPPING'))
                        AND started_at >= ? GROUP BY 1""",
            (since, since),
        )
        found: builtins.list[tuple[int, int]] = cur.fetchall()
        return found

    def ended_by_minute(self, cur: Cursor, since: float) -> builtins.list[tuple[int, str, int]]:
        minute = "CAST(ended_at / 60 AS INTEGER)"
        cur.execute(f"SELECT {minute}, state, count(*) FROM tasks WHERE ended_at >= ? GROUP BY 1, 2", (since,))
        found: builtins.list[tuple[int, str, int]] = cur.fetchall()
        return found

    def running_covered(self, cur: Cursor, spec: LimitSpec) -> int:
        covered, params = covers_sql(spec, None)
        cur.execute(f"SELECT count(*) FROM tasks WHERE state IN ('RUNNING', 'STOPPING') AND {covered}", params)
        return int(cur.fetchone()[0])

    # ------------------------------------------------------------------ for the metrics

    def held_back_count(self, cur: Cursor, held: HeldBack) -> int:
        covered, params = covers_sql(*held)
        cur.execute(f"SELECT count(*) FROM tasks WHERE state = 'PENDING' AND waiting = 0 AND {covered}", params)
        return int(cur.fetchone()[0])

    def oldest_ready(self, cur: Cursor, held_back: Sequence[HeldBack], now: float) -> float | None:
        excluded, params = held_back_sql(held_back, covers_sql)
        cur.execute(
            f"""SELECT min(max(submitted_at, coalesce(run_after, 0))) FROM tasks INDEXED BY tasks_ready
                WHERE state = 'PENDING' AND waiting = 0 AND (run_after IS NULL OR run_after <= ?){excluded}""",
            [now, *params],
        )
        found = cur.fetchone()[0]
        return None if found is None else float(found)
