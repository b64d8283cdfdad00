"""Limits in the Python client: the `Limit` it returns and the calls both clients make.

A limit caps the tasks of a kind per group (the value of `key_label`, e.g. a customer): how many run at once
(`max_running`) and how often they start (`rate`, e.g. "10/s"); its groups also take fair turns. See the README.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from taskservice.client.wire import Unary, duration_to_seconds, seconds_to_duration, timestamp_to_datetime
from taskservice.v1 import task_service_pb2 as pb

ON_FULL = ("QUEUE", "REFUSE_NEWEST", "STOP_OLDEST")
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True)
class Limit:
    limit_id: str
    task_type: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    key_label: str = ""
    max_running: int = 0
    # Starts per period: (count, period in seconds, burst); None when the limit has no rate.
    rate: tuple[int, float, int] | None = None
    on_full: str = "QUEUE"
    max_waiting: int = 0
    weights: dict[str, float] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # The message it was read from (taskctl --json prints it as the HTTP API's canonical JSON); None when made here.
    wire: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class LimitResult:
    limit: Limit
    # False when the same definition was there already.
    created: bool


@dataclass(frozen=True)
class LimitPage:
    """One page of ListLimits, in id order; next_page_token is empty on the last page."""

    limits: list[Limit]
    next_page_token: str


def parse_rate(text: str) -> tuple[int, float]:
    """'10/s', '100/m', '5/30s' as (count, period in seconds); ValueError for anything else."""
    match = _RATE.match(text)
    if match is None:
        raise ValueError(f"a rate is COUNT/PERIOD, e.g. 10/s, 100/m or 5/30s; got {text!r}")
    count, amount, unit = match.groups()
    return int(count), float(amount or 1) * _UNIT_SECONDS[unit]


def limit_from_pb(message: pb.Limit) -> Limit:
    rate = None
    if message.HasField("rate"):
        rate = (message.rate.count, duration_to_seconds(message.rate.period), message.rate.burst or 1)
    return Limit(
        limit_id=message.limit_id,
        task_type=message.task_type,
        labels=dict(message.labels),
        key_label=message.key_label,
        max_running=message.max_running,
        rate=rate,
        on_full=pb.OnFull.Name(message.on_full).removeprefix("ON_FULL_"),
        max_waiting=message.max_waiting,
        weights=dict(message.weights),
        created_at=timestamp_to_datetime(message.created_at) if message.HasField("created_at") else None,
        updated_at=timestamp_to_datetime(message.updated_at) if message.HasField("updated_at") else None,
        wire=message,
    )


def limit_to_pb(
    limit_id: str,
    *,
    task_type: str = "",
    labels: Mapping[str, str] | None = None,
    key_label: str = "",
    max_running: int = 0,
    rate: str | tuple[int, float] | None = None,
    burst: int = 0,
    on_full: str = "QUEUE",
    max_waiting: int = 0,
    weights: Mapping[str, float] | None = None,
) -> pb.Limit:
    """The definition as the wire carries it: `rate` as "10/s" or (count, period in seconds)."""
    if on_full.upper() not in ON_FULL:
        raise ValueError(f"on_full must be one of {', '.join(ON_FULL)}, not {on_full!r}")
    message = pb.Limit(limit_id=limit_id, task_type=task_type, labels=dict(labels or {}), key_label=key_label,
                       max_running=max_running, on_full=pb.OnFull.Value(f"ON_FULL_{on_full.upper()}"),
                       max_waiting=max_waiting, weights=dict(weights or {}))  # fmt: skip
    if rate is not None:
        count, period = parse_rate(rate) if isinstance(rate, str) else rate
        message.rate.CopyFrom(pb.Rate(count=count, period=seconds_to_duration(period), burst=burst))
    return message


def create_limit_call(limit_id: str, **definition: Any) -> Unary[LimitResult]:
    return Unary("CreateLimit", pb.CreateLimitRequest(limit=limit_to_pb(limit_id, **definition)),
                  lambda r: LimitResult(limit_from_pb(r.limit), r.created))  # fmt: skip


def update_limit_call(limit_id: str, **definition: Any) -> Unary[Limit]:
    return Unary("UpdateLimit", pb.UpdateLimitRequest(limit=limit_to_pb(limit_id, **definition)),
                  lambda r: limit_from_pb(r.limit))  # fmt: skip


def limit_call(method: str, limit_id: str) -> Unary[Limit]:
    """GetLimit or DeleteLimit of one limit."""
    return Unary(method, getattr(pb, f"{method}Request")(limit_id=limit_id), lambda r: limit_from_pb(r.limit))


def list_limits_call(page_size: int, page_token: str) -> Unary[LimitPage]:
    return Unary("ListLimits", pb.ListLimitsRequest(page_size=page_size, page_token=page_token),
                  lambda r: LimitPage([limit_from_pb(m) for m in r.limits], r.next_page_token))  # fmt: skip
