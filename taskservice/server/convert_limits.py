"""Limits between the wire and the engine."""

from __future__ import annotations

from taskservice.core.model.errors import InvalidRequest
from taskservice.core.model.limits import DEFAULT_BURST, Limit, LimitSpec, OnFull, Rate
from taskservice.server.convert import duration_seconds, duration_to_proto, timestamp_to_proto
from taskservice.v1 import task_service_pb2 as pb

_ON_FULL_FROM_PROTO = {
    pb.ON_FULL_UNSPECIFIED: OnFull.QUEUE,
    pb.ON_FULL_QUEUE: OnFull.QUEUE,
    pb.ON_FULL_REFUSE_NEWEST: OnFull.REFUSE_NEWEST,
    pb.ON_FULL_STOP_OLDEST: OnFull.STOP_OLDEST,
}
_ON_FULL_TO_PROTO = {
    OnFull.QUEUE: pb.ON_FULL_QUEUE,
    OnFull.REFUSE_NEWEST: pb.ON_FULL_REFUSE_NEWEST,
    OnFull.STOP_OLDEST: pb.ON_FULL_STOP_OLDEST,
}


def limit_spec_from_proto(message: pb.Limit) -> LimitSpec:
    """The definition a request carries; its checks are the engine's (check_limit)."""
    if message.on_full not in _ON_FULL_FROM_PROTO:
        raise InvalidRequest(
            f"unknown on_full {message.on_full}",
            [("limit.on_full", "ON_FULL_QUEUE, ON_FULL_REFUSE_NEWEST or ON_FULL_STOP_OLDEST")],
        )
    rate = None
    if message.HasField("rate"):
        rate = Rate(message.rate.count, duration_seconds(message.rate.period), message.rate.burst or DEFAULT_BURST)
    return LimitSpec(
        limit_id=message.limit_id,
        task_type=message.task_type,
        labels=tuple(sorted(message.labels.items())),
        key_label=message.key_label,
        max_running=message.max_running,
        rate=rate,
        on_full=_ON_FULL_FROM_PROTO[message.on_full],
        max_waiting=message.max_waiting,
        weights=tuple(sorted(message.weights.items())),
    )


def limit_to_proto(limit: Limit) -> pb.Limit:
    spec = limit.spec
    message = pb.Limit(
        limit_id=spec.limit_id,
        task_type=spec.task_type,
        labels=dict(spec.labels),
        key_label=spec.key_label,
        max_running=spec.max_running,
        on_full=_ON_FULL_TO_PROTO[spec.on_full],
        max_waiting=spec.max_waiting,
        weights=dict(spec.weights),
        created_at=timestamp_to_proto(limit.created_at),
        updated_at=timestamp_to_proto(limit.updated_at),
    )
    if spec.rate is not None:
        message.rate.CopyFrom(pb.Rate(count=spec.rate.count, period=duration_to_proto(spec.rate.period),
                                      burst=spec.rate.burst))  # fmt: skip
    return message
