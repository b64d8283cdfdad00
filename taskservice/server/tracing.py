"""Spans of the calls this server answers, continuing the caller's trace: a gRPC call's from its metadata, an
HTTP call's from its headers (`traceparent`, `tracestate`). The span is current while the servicer runs, so a
Submit stores it as the task's trace context (telemetry/runs.py). Attributes follow OpenTelemetry's RPC and HTTP
conventions. Only installed when tracing is on (telemetry.configure_tracing)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import grpc
from aiohttp import web

from taskservice.telemetry.context import tracer

log = logging.getLogger(__name__)

# The metadata keys OpenTelemetry's default propagators read (W3C trace context and baggage).
TRACE_HEADERS = frozenset({"traceparent", "tracestate", "baggage"})

# Server-side codes that say the server failed (OpenTelemetry's gRPC conventions); the rest are the caller's.
SERVER_ERROR_CODES = frozenset(
    {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"}
)


def _start_span(name: str, headers: Mapping[str, str], attributes: dict[str, Any]) -> tuple[Any, object]:
    """A SERVER span under the caller's context in `headers`, made current; (span, token to detach)."""
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind

    # Most calls come from callers that do not trace: no header, no parsing.
    parent = propagate.extract(headers) if headers else otel_context.Context()
    span = tracer().start_span(name, context=parent, kind=SpanKind.SERVER, attributes=attributes)
    return span, otel_context.attach(trace.set_span_in_context(span, parent))


def _end_span(span: Any, token: object, error: str) -> None:
    from opentelemetry import context as otel_context
    from opentelemetry.trace import Status, StatusCode

    try:
        if error:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end()
    finally:
        otel_context.detach(token)  # type: ignore[arg-type]


class RpcTracing:
    """A CallObserver (server/observing.py): one span per gRPC call."""

    def call_began(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> tuple[Any, object] | None:
        try:
            metadata = context.invocation_metadata() or ()
            headers = {key: str(value) for key, value in metadata if key in TRACE_HEADERS}
            service, _, name = method.lstrip("/").partition("/")
            attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}
            return _start_span(method.lstrip("/"), headers, attributes)
        except Exception:
            log.exception("tracing: cannot start the span of a call of %s", method)
            return None

    def call_ended(self, began: tuple[Any, object] | None, method: str, code: str) -> None:
        if began is None:
            return
        span, token = began
        try:
            span.set_attribute("rpc.grpc.status_code", grpc.StatusCode[code].value[0])
            _end_span(span, token, code if code in SERVER_ERROR_CODES else "")
        except Exception:
            log.exception("tracing: cannot end the span of a call of %s", method)


class HttpTracing:
    """An HttpObserver (server/observing.py): one span per HTTP call."""

    def http_began(self, request: web.Request, route: str) -> tuple[Any, object] | None:
        attributes = {"http.request.method": request.method, "http.route": route, "url.path": request.path,
                      "url.scheme": request.scheme}  # fmt: skip
        try:
            return _start_span(f"{request.method} {route}", request.headers, attributes)
        except Exception:
            log.exception("tracing: cannot start the span of an HTTP call of %s", route)
            return None

    def http_ended(self, began: tuple[Any, object] | None, request: web.Request, route: str, status: int) -> None:
        if began is None:
            return
        span, token = began
        try:
            span.set_attribute("http.response.status_code", status)
            _end_span(span, token, str(status) if status >= 500 else "")
        except Exception:
            log.exception("tracing: cannot end the span of an HTTP call of %s", route)
