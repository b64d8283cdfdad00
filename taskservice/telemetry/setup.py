"""Tracing from the standard variables, as OpenTelemetry's SDKs read them.

On when OTEL_TRACES_EXPORTER names an exporter (`otlp`, `console`; `none` is off), or when it is unset and an
OTLP endpoint is (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT): a server nobody asked to
trace never loads the SDK. OTEL_SDK_DISABLED=true turns it off whatever else is set. The exporter itself reads
the endpoint, headers, certificate and timeout variables; the sampler reads OTEL_TRACES_SAMPLER; the batch
processor reads OTEL_BSP_*; OTEL_SERVICE_NAME (else "taskservice") and OTEL_RESOURCE_ATTRIBUTES name the service.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from taskservice.telemetry.context import _state

log = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "taskservice"


def exporter_names(env: os._Environ[str] | dict[str, str], signal: str = "TRACES") -> list[str]:
    """The exporters OTEL_<signal>_EXPORTER names (signal: TRACES or METRICS); `otlp` when it is unset and an OTLP
    endpoint is; none when OTEL_SDK_DISABLED=true."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = [name.strip().lower() for name in env.get(f"OTEL_{signal}_EXPORTER", "").split(",") if name.strip()]
    if not names and (env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")):
        names = ["otlp"]
    return [name for name in names if name != "none"]


def tracing_wanted() -> bool:
    """Whether the variables ask for traces (a worker process asks before it loads anything)."""
    return bool(exporter_names(os.environ))


def configure_tracing() -> bool:
    """Turn tracing on in this process when the variables ask for it; True when it is on. Never raises: a
    server that cannot trace still serves, and says why once."""
    if _state["tracer"] is not None:
        return True
    names = exporter_names(os.environ)
    if not names:
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "OTEL_TRACES_EXPORTER/OTEL_EXPORTER_OTLP_ENDPOINT ask for traces, but OpenTelemetry is not installed: "
            "pip install 'taskservice[otel]'"
        )
        return False
    exporters = [exporter for exporter in (_exporter(name) for name in names) if exporter is not None]
    if not exporters:
        return False
    provider = TracerProvider(resource=service_resource())
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _state["provider"] = provider
    _state["tracer"] = trace.get_tracer("taskservice")
    return True


def service_resource() -> Any:
    """The OpenTelemetry Resource of this server: OTEL_SERVICE_NAME (else "taskservice"), OTEL_RESOURCE_ATTRIBUTES."""
    from opentelemetry.sdk.resources import Resource

    attributes: dict[str, Any] = {}
    if not os.environ.get("OTEL_SERVICE_NAME") and "service.name=" not in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    ):
        attributes["service.name"] = DEFAULT_SERVICE_NAME
    return Resource.create(attributes)


def _exporter(name: str) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name != "otlp":
        log.warning("OTEL_TRACES_EXPORTER: %r is not an exporter this server has (otlp, console, none)", name)
        return None
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
    ).strip()
    try:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        elif protocol == "http/protobuf":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # type: ignore[assignment]
        else:
            log.warning("OTEL_EXPORTER_OTLP_PROTOCOL: %r is not one this server speaks (grpc, http/protobuf)", protocol)
            return None
    except ImportError:
        log.warning("the OTLP exporter is not installed: pip install 'taskservice[otel]'")
        return None
    return OTLPSpanExporter()


def shutdown_tracing() -> None:
    """Send the spans still batched (up to the exporter's timeout); tracing is off afterwards."""
    provider = _state.pop("provider", None)
    _state["tracer"] = None
    if provider is not None:
        try:
            provider.shutdown()
        except Exception:
            log.exception("tracing: cannot flush the last spans")
