"""Claims under limits, decided once for both dialects inside the claim's transaction.

The claim holds every other claim back (hold_claims), counts the running tasks of each limit's groups from the
task rows themselves, refills the groups' token buckets, and reads candidates in claim order leaving out the groups
that may not start one more. Of those it takes each task that every limit it falls under still allows, counting
as it goes, so one claim never takes past a cap. Exact on both databases: the counts are read where the claim
writes, in the same transaction, and a task counts from its claim until its end (or its reap, on a lost node).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence

from taskservice.core.board.base import ClaimScope
from taskservice.core.board.sql.due import SoonestDue
from taskservice.core.board.sql.queries import Cursor, HeldBack, Queries
from taskservice.core.model.limits import Bucket, LimitSpec
from taskservice.core.model.models import Task

# Candidates read per task a claim wants: some are left behind by a group that the claim itself fills.
CANDIDATES_PER_TASK = 4
# How stale the limits a Submit reads for fair turns may be (a claim always reads them afresh).
LIMITS_FRESH_SECONDS = 1.0

Key = tuple[str, str]  # (limit id, group)


class Limiter:
    def __init__(self, queries: Queries, soonest: SoonestDue) -> None:
        self._q = queries
        self._soonest = soonest
        self._specs: list[LimitSpec] = []
        self._read_at = float("-inf")
        # The groups the last claim found full or out of starts: what a PENDING task waits for, as far as known.
        self._held: list[HeldBack] = []

    def read(self, cur: Cursor) -> list[LimitSpec]:
        """The limits as stored now, in id order."""
        self._specs = [limit.spec for limit in self._q.limits(cur, None, "", 1_000_000)]
        self._read_at = time.monotonic()
        return self._specs

    def recent(self, cur: Cursor) -> list[LimitSpec]:
        """The limits as read within LIMITS_FRESH_SECONDS."""
        if time.monotonic() - self._read_at > LIMITS_FRESH_SECONDS:
            return self.read(cur)
        return self._specs

    def claim(
        self, cur: Cursor, specs: Sequence[LimitSpec], node: str, scope: ClaimScope, n: int, lease_until: float,
        now: float,
    ) -> list[Task]:  # fmt: skip
        self._q.hold_claims(cur)
        running = self._running(cur, specs)
        rated = {spec.limit_id: spec for spec in specs if spec.rate is not None}
        buckets = self._q.buckets(cur, rated) if rated else {}
        for (limit_id, _), bucket in buckets.items():
            rate = rated[limit_id].rate
            assert rate is not None
            bucket.refill(rate, now)
        held = _held_back(specs, running, buckets)
        picked: list[int] = []
        spent: dict[Key, Bucket] = {}
        for order, task_type, labels in self._q.candidates(cur, scope, held, n * CANDIDATES_PER_TASK, now):
            if len(picked) >= n:
                break
            under = [(spec, spec.group_of(labels)) for spec in specs if spec.covers(task_type, labels)]
            if not all(_allows(spec, group, running, buckets, now) for spec, group in under):
                continue
            for spec, group in under:
                key = (spec.limit_id, group)
                running[key] += 1
                if spec.rate is not None:
                    buckets[key].tokens -= 1
                    spent[key] = buckets[key]
            picked.append(order)
        self._q.save_buckets(cur, spent)
        self._held = _held_back(specs, running, buckets)  # as this claim leaves them
        self._wake_for_refills(rated, buckets)
        return self._q.take(cur, picked, node, lease_until)

    def held_by(self, limit_id: str) -> HeldBack | None:
        """The limit and its groups it held back at the last claim; None when it held back none."""
        return next((held for held in self._held if held[0].limit_id == limit_id), None)

    @property
    def held(self) -> list[HeldBack]:
        """Every limit's groups held back at the last claim."""
        return list(self._held)

    def forget_held(self) -> None:
        """No limit holds anything back (a claim found none)."""
        self._held = []

    def holding(self, task: Task) -> list[str]:
        """The limits that held `task`'s group back at the last claim, by id."""
        return [spec.limit_id for spec, groups in self._held if spec.covers(task.task_type, task.labels)
                and (groups is None or spec.group_of(task.labels) in groups)]  # fmt: skip

    def _running(self, cur: Cursor, specs: Sequence[LimitSpec]) -> Counter[Key]:
        running: Counter[Key] = Counter()
        capped = [spec for spec in specs if spec.max_running]
        if capped:
            for task_type, labels in self._q.running_labels(cur):
                for spec in capped:
                    if spec.covers(task_type, labels):
                        running[(spec.limit_id, spec.group_of(labels))] += 1
        return running

    def _wake_for_refills(self, rated: dict[str, LimitSpec], buckets: dict[Key, Bucket]) -> None:
        """An idle worker wakes when an emptied bucket has a start again, not at its next poll."""
        for (limit_id, _), bucket in buckets.items():
            rate = rated[limit_id].rate
            if rate is not None and bucket.tokens < 1:
                self._soonest.add(bucket.at + (1 - bucket.tokens) / rate.per_second)


def _allows(spec: LimitSpec, group: str, running: Counter[Key], buckets: dict[Key, Bucket], now: float) -> bool:
    key = (spec.limit_id, group)
    if spec.max_running and running[key] >= spec.max_running:
        return False
    if spec.rate is not None:
        bucket = buckets.setdefault(key, Bucket(float(spec.rate.burst), now))
        return bucket.tokens >= 1
    return True


def _held_back(specs: Sequence[LimitSpec], running: Counter[Key], buckets: dict[Key, Bucket]) -> list[HeldBack]:
    """Each limit's groups that may not start one more now (None: the limit's only group)."""
    caps = {spec.limit_id: spec.max_running for spec in specs if spec.max_running}
    full: dict[str, set[str]] = {}
    for (limit_id, group), count in running.items():
        if limit_id in caps and count >= caps[limit_id]:
            full.setdefault(limit_id, set()).add(group)
    for (limit_id, group), bucket in buckets.items():
        if bucket.tokens < 1:
            full.setdefault(limit_id, set()).add(group)
    held: list[HeldBack] = []
    for spec in specs:
        groups = full.get(spec.limit_id)
        if groups:
            held.append((spec, frozenset(groups) if spec.key_label else None))
    return held
