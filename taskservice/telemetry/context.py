"""The switch, and trace context as the carrier a task stores: the W3C headers (`traceparent`, `tracestate`, or
whatever OTEL_PROPAGATORS writes) of the span that submitted it, kept as JSON text beside the task."""

from __future__ import annotations

import json
from typing import Any

# The tracer of this process once configure_tracing() turned tracing on; None: off, and every call here is free.
_state: dict[str, Any] = {"tracer": None}

# A carrier bigger than this is not kept (W3C caps traceparent at 55 bytes and tracestate at 32 members).
MAX_CARRIER_BYTES = 4096


def tracing_on() -> bool:
    return _state["tracer"] is not None


def tracer() -> Any:
    """The opentelemetry Tracer (only when tracing_on())."""
    return _state["tracer"]


def current_carrier() -> dict[str, str]:
    """The current span's context as propagation headers; empty when tracing is off or no span is current."""
    if _state["tracer"] is None:
        return {}
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def dump_carrier(carrier: dict[str, str]) -> str | None:
    """As stored: JSON text, or None for no context (the column stays NULL)."""
    if not carrier:
        return None
    text = json.dumps(carrier, separators=(",", ":"), sort_keys=True)
    return text if len(text) <= MAX_CARRIER_BYTES else None


def load_carrier(text: str | None) -> dict[str, str]:
    """What dump_carrier() stored; a damaged value reads as no context rather than failing the task."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(key): str(item) for key, item in value.items()}
