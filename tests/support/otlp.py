"""A real OTLP/gRPC receiver of traces and metrics for tests: the collector's protocol, decoded with
opentelemetry-proto.

with OtlpReceiver() as receiver:
    env = receiver.environment()      # the OTEL_* variables that point a server at it
    ...
    spans = receiver.wait_for(lambda spans: ..., what="the run's span")
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.support.waiting import wait_until


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str  # hex, as in traceparent
    span_id: str
    parent_id: str  # "" for a root span
    kind: int
    attributes: dict[str, Any]
    service: str
    status_code: int  # 0 unset, 1 ok, 2 error
    start_ns: int
    end_ns: int


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


class _Collector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.spans: list[ReceivedSpan] = []

    def Export(self, request: Any, context: Any) -> Any:
        received = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        ReceivedSpan(
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            kind=span.kind,
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            service=str(resource.get("service.name", "")),
                            status_code=span.status.code,
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                        )
                    )
        with self.lock:
            self.spans.extend(received)
        return trace_service_pb2.ExportTraceServiceResponse()


class _MetricsCollector(metrics_service_pb2_grpc.MetricsServiceServicer):
    """Keeps the latest value of each data point: {(metric name, labels): value}."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.points: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}

    def Export(self, request: Any, context: Any) -> Any:
        for resource_metrics in request.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    data = getattr(metric, metric.WhichOneof("data"))
                    for point in getattr(data, "data_points", ()):
                        labels = frozenset((a.key, str(_value(a.value))) for a in point.attributes)
                        value = point.as_double if point.WhichOneof("value") == "as_double" else point.as_int
                        with self.lock:
                            self.points[(metric.name, labels)] = float(value)
        return metrics_service_pb2.ExportMetricsServiceResponse()


class OtlpReceiver:
    def __init__(self) -> None:
        self._collector = _Collector()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self._collector, self._server)
        self._metrics = _MetricsCollector()
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(self._metrics, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    def __enter__(self) -> OtlpReceiver:
        self._server.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._server.stop(0)

    def environment(self, service_name: str = "taskservice-under-test", *, quick: bool = True) -> dict[str, str]:
        """OTEL_* variables sending a process's spans here: `quick`, each batch within 50 ms (tests wait less);
        otherwise as the SDK batches by default (up to 512 spans, or 5 s)."""
        return {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{self.port}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_SERVICE_NAME": service_name,
            **({"OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_METRIC_EXPORT_INTERVAL": "200"} if quick else {}),
        }

    def spans(self, trace_id: str | None = None) -> list[ReceivedSpan]:
        with self._collector.lock:
            return [s for s in self._collector.spans if trace_id is None or s.trace_id == trace_id]

    def wait_for(
        self, found: Callable[[list[ReceivedSpan]], Any], *, trace_id: str | None = None, timeout: float = 30,
        what: str = "spans",
    ) -> list[ReceivedSpan]:  # fmt: skip
        """The spans (of `trace_id`) once `found(spans)` is true; AssertionError naming what came otherwise."""
        try:
            wait_until(lambda: found(self.spans(trace_id)), timeout=timeout, interval=0.05, what=what)
        except AssertionError as exc:
            names = sorted((s.name, s.parent_id) for s in self.spans(trace_id))
            raise AssertionError(f"{exc}; received: {names}") from None
        return self.spans(trace_id)

    def metric(self, name: str, **labels: str) -> float | None:
        """The latest value received of a metric's data point with these labels, or None."""
        with self._metrics.lock:
            return self._metrics.points.get((name, frozenset(labels.items())))
