"""The server's Prometheus metrics, exported through OpenTelemetry too when OTEL_METRICS_EXPORTER asks (`otlp`,
`console`; or unset with an OTLP endpoint set), with the OTEL_EXPORTER_OTLP_* and OTEL_METRIC_EXPORT_INTERVAL
variables: one registry, two ways out, the same numbers.

Each family becomes an asynchronous instrument read at export time: counters as observable counters, gauges as
observable gauges, and a histogram as its `_count` and `_sum` (OpenTelemetry's Python SDK has no observable
histogram; the buckets stay Prometheus's). One collection of the registry serves every instrument of an export.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from taskservice.telemetry.setup import exporter_names, service_resource

log = logging.getLogger(__name__)

# A collection of the registry is reused by the instruments read within this long (one export reads them all).
SNAPSHOT_SECONDS = 0.5


def metrics_wanted() -> bool:
    return bool(exporter_names(os.environ, "METRICS"))


class _Snapshot:
    """The registry's samples, collected once per export: {sample name: [(labels, value)]}."""

    def __init__(self, registry: Any) -> None:
        self._registry = registry
        self._lock = threading.Lock()
        self._at = float("-inf")
        self._samples: dict[str, list[tuple[dict[str, str], float]]] = {}

    def samples(self, name: str) -> list[tuple[dict[str, str], float]]:
        with self._lock:
            if time.monotonic() - self._at > SNAPSHOT_SECONDS:
                taken: dict[str, list[tuple[dict[str, str], float]]] = {}
                for family in self._registry.collect():
                    for sample in family.samples:
                        taken.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
                self._samples, self._at = taken, time.monotonic()
            return self._samples.get(name, [])


def export_registry(registry: Any) -> Callable[[], None] | None:
    """Export `registry` through OpenTelemetry when the variables ask; the function that flushes and stops it, or
    None. Never raises: a server that cannot export still serves, and says why once."""
    names = exporter_names(os.environ, "METRICS")
    if not names:
        return None
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
    except ImportError:
        log.warning("OTEL_METRICS_EXPORTER asks for metrics, but OpenTelemetry is not installed: "
                    "pip install 'taskservice[otel]'")  # fmt: skip
        return None
    readers = []
    for name in names:
        if name == "console":
            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
        elif name == "otlp":
            readers.append(PeriodicExportingMetricReader(_otlp_exporter()))
        else:
            log.warning("OTEL_METRICS_EXPORTER: %r is not an exporter this server has (otlp, console, none)", name)
    if not readers:
        return None
    provider = MeterProvider(resource=service_resource(), metric_readers=readers)
    _instruments(provider.get_meter("taskservice"), registry, _Snapshot(registry))
    return provider.shutdown


def _otlp_exporter() -> Any:
    protocol = (os.environ.get("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "grpc").strip()  # fmt: skip
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    else:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter  # type: ignore[assignment]
    return OTLPMetricExporter()


def _instruments(meter: Any, registry: Any, snapshot: _Snapshot) -> None:
    for family in registry.collect():
        if family.type == "counter":
            _observe(meter.create_observable_counter, f"{family.name}_total", family.documentation, snapshot)
        elif family.type == "gauge":
            _observe(meter.create_observable_gauge, family.name, family.documentation, snapshot)
        elif family.type == "histogram":
            for part in ("_count", "_sum"):
                _observe(meter.create_observable_counter, family.name + part, family.documentation, snapshot)


def _observe(create: Callable[..., Any], name: str, description: str, snapshot: _Snapshot) -> None:
    from opentelemetry.metrics import Observation

    def observe(options: Any) -> Iterable[Observation]:
        return [Observation(value, labels) for labels, value in snapshot.samples(name)]

    create(name, callbacks=[observe], description=description)
