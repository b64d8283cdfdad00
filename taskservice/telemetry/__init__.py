"""OpenTelemetry traces: their setup from the standard OTEL_* variables, the trace context a task carries from its
Submit to each of its runs, and the spans of task runs.

Everything here costs nothing and needs nothing installed until tracing is configured (`pip install
'taskservice[otel]'` and OTEL_TRACES_EXPORTER or an OTLP endpoint set); the embedded default never imports the SDK.
The gRPC and HTTP spans are made in the server (server/tracing.py), which knows the calls.
"""

from taskservice.telemetry.context import current_carrier, dump_carrier, load_carrier, tracing_on
from taskservice.telemetry.runs import RunTrace, start_run
from taskservice.telemetry.setup import configure_tracing, shutdown_tracing

__all__ = [
    "RunTrace",
    "configure_tracing",
    "current_carrier",
    "dump_carrier",
    "load_carrier",
    "shutdown_tracing",
    "start_run",
    "tracing_on",
]
