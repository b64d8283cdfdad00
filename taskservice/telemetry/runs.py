"""The spans of a task's attempt, in the trace of the call that submitted it (hours later, on any node, after a
restart: the context travels with the task).

Each attempt gives two spans, both children of the Submit's span: `queued TYPE`, from when the task became
runnable to its start, and `run TYPE`, the handler's run, current in the worker thread meanwhile, so a handler's
own spans nest under it (a worker process and a command get its context: ctx.trace_context, TRACEPARENT).
Attributes follow OpenTelemetry's messaging conventions where they fit, and name the task.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from taskservice.telemetry.context import tracer

if TYPE_CHECKING:
    from taskservice.core.model.models import Task

log = logging.getLogger(__name__)

MESSAGING_SYSTEM = "taskservice"
# Task states that end an attempt in error, as the span's status says.
FAILED_STATES = frozenset({"FAILURE", "TIMED_OUT", "LOST"})


def task_attributes(task: Task) -> dict[str, Any]:
    """The run span's: the task as a message of the messaging conventions (its id, its type as the destination),
    and its attempt. Each attribute costs every span a check and the exporter an encoding: no duplicates."""
    return {
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.operation.type": "process",
        "messaging.destination.name": task.task_type,
        "messaging.message.id": task.task_id,
        "taskservice.task.attempt": task.attempt,
    }


class RunTrace:
    """The span of one attempt, current in the thread that started it until finish() (called in that thread)."""

    def __init__(self, span: Any, token: object, carrier: dict[str, str]) -> None:
        self._span = span
        self._token = token
        # The run span's context as propagation headers, for worker processes and commands.
        self.carrier = carrier

    def finish(self, state: str, error_type: str = "", error_message: str = "") -> None:
        """End the span with how the attempt ended (`state`: the task state it led to, or "STOPPED")."""
        from opentelemetry import context as otel_context
        from opentelemetry.trace import Status, StatusCode

        try:
            self._span.set_attribute("taskservice.task.state", state)
            if error_type:
                self._span.set_attribute("error.type", error_type)
            if state in FAILED_STATES:
                self._span.set_status(Status(StatusCode.ERROR, f"{error_type}: {error_message}"[:1024]))
            self._span.end()
        finally:
            otel_context.detach(self._token)  # type: ignore[arg-type]


def start_run(task: Task) -> RunTrace | None:
    """The spans of the attempt about to start, when tracing is on; None when off. Never raises."""
    current = tracer()
    if current is None:
        return None
    try:
        return _start(current, task)
    except Exception:
        log.exception("tracing: cannot start the span of task %s", task.task_id)
        return None


def _start(current: Any, task: Task) -> RunTrace:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind

    parent = propagate.extract(task.trace_context) if task.trace_context else otel_context.Context()
    attributes = task_attributes(task)
    now = time.time()
    runnable_since = task.submitted_at if task.attempt <= 1 else task.run_after
    if runnable_since is not None:
        began = min(now, max(runnable_since, task.submitted_at))
        queued = {"messaging.message.id": task.task_id, "taskservice.task.attempt": task.attempt}
        current.start_span(
            f"queued {task.task_type}", context=parent, attributes=queued, start_time=int(began * 1e9)
        ).end(end_time=int(now * 1e9))
    span = current.start_span(f"run {task.task_type}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes)
    running = trace.set_span_in_context(span, parent)
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=running)
    return RunTrace(span, otel_context.attach(running), carrier)


def attach_carrier(carrier: dict[str, str]) -> object | None:
    """In a worker process: make the run's context current for the handler; the token for detach_carrier()."""
    if not carrier or tracer() is None:
        return None
    from opentelemetry import context as otel_context
    from opentelemetry import propagate

    return otel_context.attach(propagate.extract(carrier))


def detach_carrier(token: object | None) -> None:
    if token is not None:
        from opentelemetry import context as otel_context

        otel_context.detach(token)  # type: ignore[arg-type]
