"""The statements of the lifecycle, named: what each dialect (PostgreSQL, SQLite) writes in its own SQL.

Each method runs inside a transaction its caller opened (`cur` is the dialect's cursor) and states its
precondition in its WHERE clause; the lifecycle (lifecycle.py) decides what to run and what it means, once for
both dialects. A method returns domain objects (Task, Schedule), never rows.
"""

from __future__ import annotations

import builtins
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

from taskservice.core.board.base import Claim, ClaimScope, NewTask
from taskservice.core.model.limits import Bucket, Limit, LimitSpec
from taskservice.core.model.listing import ListPosition, TaskOrder
from taskservice.core.model.models import Progress, Task, TaskError, TaskFilter, TaskState
from taskservice.core.model.nodes import NodeInfo
from taskservice.core.model.schedules import Schedule

Cursor = Any
# A row of a task's history: its time, state, attempt, and a progress sample's percent and message (else None).
HistoryRow = tuple[float, str, int, float | None, str | None]
# A task's state at its birth, with the error of a dependency that failed already: (state, error type, message).
Birth = tuple[str, str | None, str | None]
# The groups of a limit that may not start one more task now (None: all of them): a claim leaves their tasks out.
HeldBack = tuple[LimitSpec, frozenset[str] | None]
# A task a claim may take: (its submission order, its type, its labels).
Candidate = tuple[int, str, dict[str, str]]


class LimitQueries(Protocol):
    def insert_limit(self, cur: Cursor, limit: Limit) -> bool:
        """The limit stored, unless its id is taken; whether it was."""

    def limits(self, cur: Cursor, limit_id: str | None, after_id: str, n: int) -> builtins.list[Limit]:
        """One limit (`limit_id`), or a page of them in id order after `after_id`."""

    def update_limit(self, cur: Cursor, limit: Limit) -> bool:
        """A limit's definition replaced, its token buckets emptied of history (full again); whether it existed."""

    def delete_limit(self, cur: Cursor, limit_id: str) -> Limit | None: ...

    def hold_claims(self, cur: Cursor) -> None:
        """Claims of every server wait for this one's transaction: the running tasks it counts stay as counted."""

    def running_labels(self, cur: Cursor) -> builtins.list[tuple[str, dict[str, str]]]:
        """(type, labels) of every RUNNING and STOPPING task, of every server."""

    def buckets(self, cur: Cursor, limit_ids: Collection[str]) -> dict[tuple[str, str], Bucket]:
        """The token buckets of these limits' groups, by (limit id, group)."""

    def save_buckets(self, cur: Cursor, buckets: Mapping[tuple[str, str], Bucket]) -> None: ...

    def candidates(
        self, cur: Cursor, scope: ClaimScope, held_back: Sequence[HeldBack], n: int, now: float
    ) -> builtins.list[Candidate]:
        """Up to n claimable tasks in claim order, but those of the groups `held_back`; on PostgreSQL, locked."""

    def take(self, cur: Cursor, orders: Sequence[int], node: str, lease_until: float) -> builtins.list[Task]:
        """The PENDING tasks of these submission orders -> RUNNING for `node` (as claim() does)."""

    def in_group(self, cur: Cursor, spec: LimitSpec, group: str, n: int) -> builtins.list[tuple[str, str]]:
        """(id, state) of the unfinished tasks `spec` covers in `group`, newest first, at most n."""

    def save_node(self, cur: Cursor, node: NodeInfo) -> None:
        """A server's row, as it says it is now."""

    def nodes(self, cur: Cursor, seen_after: float) -> builtins.list[NodeInfo]:
        """The servers seen after `seen_after`, by name."""

    def delete_node(self, cur: Cursor, name: str) -> None: ...

    def turn_floor(self, cur: Cursor) -> float:
        """The turn of the task that would be claimed next (ignoring limits), or past every group's when none."""

    def next_turns(self, cur: Cursor, groups: Collection[str]) -> dict[str, float]:
        """Each known group's next turn."""

    def save_turns(self, cur: Cursor, turns: Mapping[str, float]) -> None:
        """Groups' next turns, never moved back."""


class Queries(LimitQueries, Protocol):
    # ------------------------------------------------------------------ submission and dependencies

    def insert(
        self, cur: Cursor, tasks: Sequence[NewTask], births: Mapping[str, Birth], waiting: Mapping[str, int], now: float
    ) -> dict[str, Task]:
        """The tasks whose ids were free, inserted (PENDING, or as `births` says); the created ones by id."""

    def tasks(self, cur: Cursor, task_ids: Collection[str], *, lock: bool = False) -> dict[str, Task]:
        """The stored tasks among `task_ids`; `lock`: held against ends until the transaction commits (who decides
        on a dependency reads it so, and an end updates its row first: the two never miss each other)."""

    def add_waits(self, cur: Cursor, waits: Sequence[tuple[str, str]]) -> None:
        """Rows of (task id, a dependency it waits for)."""

    def release(self, cur: Cursor, succeeded: Sequence[str]) -> bool:
        """Dependencies that succeeded: their dependents wait for one fewer; whether any waits for none now."""

    def take_waits(self, cur: Cursor, failed: Sequence[str]) -> builtins.list[tuple[str, str]]:
        """Dependencies that failed: their waits removed; each dependent once, with one failed dependency."""

    def revoke_waiting(self, cur: Cursor, doomed: Sequence[tuple[str, TaskError]], now: float) -> builtins.list[Task]:
        """PENDING dependents -> REVOKED with the error given; the tasks revoked."""

    def stop_waiting(self, cur: Cursor, task_ids: Sequence[str]) -> None:
        """These tasks ended while they waited: their waits removed."""

    def waits_of(self, cur: Cursor, task_ids: Collection[str]) -> dict[str, builtins.list[str]]:
        """The dependencies each of these tasks still waits for, by task id (those waiting for none left out)."""

    # ------------------------------------------------------------------ running

    def claim(
        self, cur: Cursor, node: str, scope: ClaimScope, n: int, lease_until: float, now: float
    ) -> builtins.list[Task]:
        """Up to n claimable tasks (PENDING, waiting for nothing, due, within `scope`) -> RUNNING for `node`;
        started_at empty."""

    def start(self, cur: Cursor, claim: Claim, started_at: float) -> None:
        """A claim's handler starts: started_at recorded (a reap sends a task back to PENDING until then)."""

    def renew(
        self, cur: Cursor, node: str, task_ids: Sequence[str], lease_until: float
    ) -> builtins.set[tuple[str, int]]:
        """Leases of `node`'s unfinished tasks extended; (task id, attempt) of each renewed."""

    def mark_stopping(self, cur: Cursor, claim: Claim, sequence: int) -> bool: ...

    def finish(self, cur: Cursor, ends: Sequence[tuple[Claim, Task]]) -> builtins.set[str]:
        """Ends written where the claim still owns the task; the ids written."""

    def retry_at(self, cur: Cursor, claim: Claim, task: Task, due: float) -> bool: ...

    def save_progress(self, cur: Cursor, updates: Sequence[tuple[Claim, Progress, int]]) -> None: ...

    def revoke_pending(self, cur: Cursor, task_id: str, reason: str, now: float) -> Task | None:
        """PENDING -> REVOKED (a Stop); the task revoked, or None."""

    def flag_stop(self, cur: Cursor, task_id: str, reason: str) -> Task | None:
        """A RUNNING task's stop asked, for its owner; the task, or None."""

    def stops_for(self, cur: Cursor, node: str) -> builtins.list[tuple[str, int, str]]: ...

    def reap(self, cur: Cursor, now: float, rerunnable: Collection[str]) -> builtins.list[tuple[Task, TaskState]]:
        """Expired leases -> LOST, or PENDING (types safe to re-run, and handlers that never started)."""

    def end_leases(self, cur: Cursor, owner_prefix: str) -> int:
        """The leases of the owners whose names start with `owner_prefix` ended now (their process is gone): the
        next reap takes their tasks. How many."""

    def retryable_after(self, cur: Cursor, task_id: str) -> builtins.list[str] | None:
        """The dependencies of a task ended in a retryable state, its row locked; None when it is not one."""

    def retry(self, cur: Cursor, task_id: str, waiting: int) -> tuple[Task, TaskState] | None:
        """A retryable ended task -> PENDING (as base.retried() makes it), waiting for `waiting` dependencies."""

    # ------------------------------------------------------------------ removal

    def delete(self, cur: Cursor, task_id: str) -> Task | None:
        """An ended task removed; the task as it was, or None."""

    def delete_ended(
        self, cur: Cursor, task_filter: TaskFilter, ended_before: float | None, limit: int
    ) -> builtins.list[str]: ...

    def expire(self, cur: Cursor, now: float, retention: float, limit: int) -> builtins.list[str]: ...

    # ------------------------------------------------------------------ reads

    def list(
        self, cur: Cursor, task_filter: TaskFilter, order: TaskOrder, after: ListPosition | None, limit: int
    ) -> builtins.list[Task]: ...

    def changed_since(
        self, cur: Cursor, known: Mapping[str, int]
    ) -> builtins.list[tuple[Task, builtins.list[tuple[int, str]]]]: ...

    def history(self, cur: Cursor, task_id: str) -> builtins.list[HistoryRow] | None:
        """The task's history rows (time, state, attempt, percent, message) in the order written; None: no task."""

    def count_pending(self, cur: Cursor) -> tuple[int, int]:
        """The queued tasks, and the bytes their args and labels take as stored."""

    def held_back_count(self, cur: Cursor, held: HeldBack) -> int:
        """The PENDING tasks (dependencies met) of the groups a limit holds back."""

    def oldest_ready(self, cur: Cursor, held_back: Sequence[HeldBack], now: float) -> float | None:
        """Since when the longest-waiting task that could start now has waited (its submission, or its run-after
        if later): PENDING, due, its dependencies met, in no group `held_back`; None when there is none."""

    # ------------------------------------------------------------------ for GetStats

    def task_counts(self, cur: Cursor) -> builtins.list[tuple[str, str, int]]:
        """(task type, state, how many) for each pair that has tasks."""

    def started_by_minute(self, cur: Cursor, since: float) -> builtins.list[tuple[int, int]]:
        """(minute number, how many) of the tasks whose latest attempt started at `since` or later."""

    def ended_by_minute(self, cur: Cursor, since: float) -> builtins.list[tuple[int, str, int]]:
        """(minute number, state, how many) of the tasks that ended at `since` or later."""

    def running_covered(self, cur: Cursor, spec: LimitSpec) -> int:
        """How many RUNNING or STOPPING tasks the limit covers (in all of its groups)."""

    # ------------------------------------------------------------------ schedules

    def insert_schedule(self, cur: Cursor, schedule: Schedule) -> bool: ...

    def schedules(self, cur: Cursor, schedule_id: str | None, after_id: str, limit: int) -> builtins.list[Schedule]:
        """One schedule (`schedule_id`), or a page of them in id order after `after_id`."""

    def update_schedule(self, cur: Cursor, schedule: Schedule, expected: Schedule) -> bool: ...

    def delete_schedule(self, cur: Cursor, schedule_id: str) -> Schedule | None: ...

    def due_schedules(self, cur: Cursor, now: float, limit: int) -> builtins.list[Schedule]: ...
