"""Limits: how many tasks of a kind may run at once, and how often they may start, per group.

A limit covers the tasks of its scope (a task type, and labels a task must carry). Its `key_label` splits them into
groups by that label's value (a task without the label is in the group ""); each group has its own count of
running tasks (`max_running`) and its own token bucket of starts (`rate`). A task starts only when every limit it
falls under allows it; until then it waits, PENDING. The groups of limits are also the groups of fair turns: the
claim takes them in turn (board/sql/turns.py). The checks are in the claim's transaction (board/sql/limiting.py).
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from taskservice.core.engine.validation import MAX_LABEL_KEY, check_labels
from taskservice.core.model.errors import InvalidRequest

LIMIT_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,100}")
MAX_RUNNING = 1_000_000
MAX_RATE_COUNT = 1_000_000
MIN_RATE_PERIOD = 0.001
MAX_RATE_PERIOD = 366 * 24 * 3600.0
MAX_WEIGHTS = 1000
MAX_WEIGHT = 1000.0
# Starts are spaced evenly unless a limit says otherwise: one may start at once after a quiet spell.
DEFAULT_BURST = 1


class OnFull(enum.Enum):
    """What a Submit does when its group has max_running tasks running."""

    QUEUE = "QUEUE"  # it waits its turn
    REFUSE_NEWEST = "REFUSE_NEWEST"  # refused once max_running + max_waiting are running or waiting
    STOP_OLDEST = "STOP_OLDEST"  # it runs, and the group's oldest running task is stopped


@dataclass(frozen=True, slots=True)
class Rate:
    """At most `count` starts per `period` seconds, at most `burst` at once (a token bucket)."""

    count: int
    period: float
    burst: int = DEFAULT_BURST

    @property
    def per_second(self) -> float:
        return self.count / self.period


@dataclass(frozen=True, slots=True)
class LimitSpec:
    limit_id: str
    task_type: str = ""  # "": every type
    labels: tuple[tuple[str, str], ...] = ()  # a task must carry all of these
    key_label: str = ""  # "": one group
    max_running: int = 0  # 0: no cap on running tasks
    rate: Rate | None = None
    on_full: OnFull = OnFull.QUEUE
    max_waiting: int = 0  # REFUSE_NEWEST: how many may wait beyond max_running
    weights: tuple[tuple[str, float], ...] = ()  # group value -> its share of turns (1 when not named)

    def covers(self, task_type: str, labels: dict[str, str]) -> bool:
        """Whether a task of this type with these labels falls under the limit."""
        if self.task_type and task_type != self.task_type:
            return False
        return all(labels.get(key) == value for key, value in self.labels)

    def group_of(self, labels: dict[str, str]) -> str:
        return labels.get(self.key_label, "") if self.key_label else ""

    def weight_of(self, group: str) -> float:
        return dict(self.weights).get(group, 1.0)

    def digest(self) -> str:
        text = json.dumps(spec_to_json(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Limit:
    spec: LimitSpec
    created_at: float
    updated_at: float

    @property
    def limit_id(self) -> str:
        return self.spec.limit_id


def check_limit(spec: LimitSpec) -> None:
    """InvalidRequest naming the field, for a definition that cannot be enforced as written."""
    violations: list[tuple[str, str]] = []
    if not LIMIT_ID_PATTERN.fullmatch(spec.limit_id):
        violations.append(("limit.limit_id", "must be 1-100 characters from A-Z a-z 0-9 . _ : -"))
    if spec.task_type and len(spec.task_type) > 200:
        violations.append(("limit.task_type", "at most 200 characters"))
    try:
        check_labels(dict(spec.labels))
    except InvalidRequest as exc:
        violations += [(f"limit.{name}", why) for name, why in exc.field_violations]
    if len(spec.key_label) > MAX_LABEL_KEY:
        violations.append(("limit.key_label", f"a label key is 1-{MAX_LABEL_KEY} characters"))
    if not 0 <= spec.max_running <= MAX_RUNNING:
        violations.append(("limit.max_running", f"must be 0 (no cap) to {MAX_RUNNING}, got {spec.max_running}"))
    if spec.rate is not None:
        violations += _rate_violations(spec.rate)
    if spec.max_running == 0 and spec.rate is None:
        violations.append(("limit", "set max_running, rate, or both: a limit of neither holds nothing back"))
    if spec.on_full is not OnFull.QUEUE and spec.max_running == 0:
        violations.append(("limit.on_full", f"{spec.on_full.value} needs max_running"))
    if spec.max_waiting and spec.on_full is not OnFull.REFUSE_NEWEST:
        violations.append(("limit.max_waiting", "only with on_full REFUSE_NEWEST"))
    if not 0 <= spec.max_waiting <= MAX_RUNNING:
        violations.append(("limit.max_waiting", f"must be 0 to {MAX_RUNNING}"))
    if spec.weights and not spec.key_label:
        violations.append(("limit.weights", "weights are per group: set key_label"))
    if len(spec.weights) > MAX_WEIGHTS:
        violations.append(("limit.weights", f"at most {MAX_WEIGHTS} groups"))
    for group, weight in spec.weights:
        if not (math.isfinite(weight) and 0 < weight <= MAX_WEIGHT):
            violations.append((f"limit.weights[{group[:40]!r}]", f"must be above 0 and at most {MAX_WEIGHT:g}"))
    if violations:
        raise InvalidRequest(f"invalid limit {spec.limit_id[:100]!r}", violations)


def _rate_violations(rate: Rate) -> list[tuple[str, str]]:
    found = []
    if not 1 <= rate.count <= MAX_RATE_COUNT:
        found.append(("limit.rate.count", f"must be 1 to {MAX_RATE_COUNT}, got {rate.count}"))
    if not (math.isfinite(rate.period) and MIN_RATE_PERIOD <= rate.period <= MAX_RATE_PERIOD):
        found.append(("limit.rate.period", "must be 1 ms to 366 days"))
    if not 1 <= rate.burst <= MAX_RATE_COUNT:
        found.append(("limit.rate.burst", f"must be 1 to {MAX_RATE_COUNT}, got {rate.burst}"))
    return found


_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_rate(text: str, burst: int = DEFAULT_BURST) -> Rate:
    """'10/s', '100/m', '5/30s': `count` starts per period. ValueError for anything else."""
    match = _RATE.match(text)
    if match is None:
        raise ValueError(f"a rate is COUNT/PERIOD, e.g. 10/s, 100/m or 5/30s; got {text!r}")
    count, amount, unit = match.groups()
    return Rate(int(count), float(amount or 1) * _UNIT_SECONDS[unit], burst)


# ---------------------------------------------------------------------- storage form


def spec_to_json(spec: LimitSpec) -> dict[str, Any]:
    rate = spec.rate
    return {
        "task_type": spec.task_type,
        "labels": dict(spec.labels),
        "key_label": spec.key_label,
        "max_running": spec.max_running,
        "rate": None if rate is None else {"count": rate.count, "period": rate.period, "burst": rate.burst},
        "on_full": spec.on_full.value,
        "max_waiting": spec.max_waiting,
        "weights": dict(spec.weights),
    }


def spec_from_json(limit_id: str, data: dict[str, Any]) -> LimitSpec:
    rate = data.get("rate")
    return LimitSpec(
        limit_id=limit_id,
        task_type=data.get("task_type", ""),
        labels=tuple(sorted(data.get("labels", {}).items())),
        key_label=data.get("key_label", ""),
        max_running=data.get("max_running", 0),
        rate=None if rate is None else Rate(rate["count"], rate["period"], rate.get("burst", DEFAULT_BURST)),
        on_full=OnFull(data.get("on_full", OnFull.QUEUE.value)),
        max_waiting=data.get("max_waiting", 0),
        weights=tuple(sorted(data.get("weights", {}).items())),
    )


LIMIT_COLUMNS = "limit_id, definition, created_at, updated_at"


def limit_row(limit: Limit) -> tuple[Any, ...]:
    definition = json.dumps(spec_to_json(limit.spec), separators=(",", ":"), sort_keys=True)
    return (limit.limit_id, definition, limit.created_at, limit.updated_at)


def limit_from_row(row: Any) -> Limit:
    limit_id, definition, created_at, updated_at = row
    data = definition if isinstance(definition, dict) else json.loads(definition)
    return Limit(spec_from_json(limit_id, data), created_at=created_at, updated_at=updated_at)


@dataclass(slots=True)
class Bucket:
    """A group's token bucket: `tokens` as of `at` (Unix seconds)."""

    tokens: float
    at: float
    changed: bool = field(default=False, compare=False)

    def refill(self, rate: Rate, now: float) -> None:
        if now > self.at:
            self.tokens = min(float(rate.burst), self.tokens + (now - self.at) * rate.per_second)
            self.at = now
