"""What every call of the Python client shares: the call descriptor both clients invoke, and times as the wire
carries them."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from google.protobuf import duration_pb2, timestamp_pb2

R = TypeVar("R")

# opentelemetry.propagate once imported; False when OpenTelemetry is not installed (nothing is sent then).
_propagate: Any = None


def trace_headers() -> tuple[tuple[str, str], ...]:
    """The current OpenTelemetry context as propagation headers (`traceparent`, ...), when opentelemetry-api is
    installed and a span is current; else empty."""
    global _propagate
    if _propagate is None:
        try:
            from opentelemetry import propagate
        except ImportError:
            _propagate = False
        else:
            _propagate = propagate
    if _propagate is False:
        return ()
    carrier: dict[str, str] = {}
    _propagate.inject(carrier)
    return tuple(carrier.items())


@dataclass(frozen=True)
class Unary(Generic[R]):
    """One unary call: stub method name, request, and how to turn the response into plain data."""

    method: str
    request: Any
    convert: Callable[[Any], R]


def timestamp_to_datetime(ts: timestamp_pb2.Timestamp) -> datetime:
    """A Timestamp as an aware UTC datetime."""
    return ts.ToDatetime(tzinfo=UTC)


def duration_to_seconds(d: duration_pb2.Duration) -> float:
    """A Duration as float seconds."""
    return d.seconds + d.nanos / 1e9


def seconds_to_duration(seconds: float) -> duration_pb2.Duration:
    """Float seconds as a Duration (nanosecond precision)."""
    if not math.isfinite(seconds):
        raise ValueError(f"a duration must be finite, got {seconds!r}")
    d = duration_pb2.Duration()
    d.FromTimedelta(timedelta(seconds=seconds))
    return d
