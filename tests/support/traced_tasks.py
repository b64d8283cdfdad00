"""Task types whose handlers make spans of their own, for the tracing tests (`--tasks tests.support.traced_tasks`).

`traced.flaky` fails its first run and is retried; `traced.in_process` runs in a worker process. Each opens a
`handler work` span, which should nest under the server's `run` span of its attempt.
"""

from __future__ import annotations

from opentelemetry import trace

from taskservice import RetryPolicy, TaskContext, task


class FirstRunFails(RuntimeError):
    """What the first run of traced.flaky raises (its retry policy names it)."""


@task("traced.flaky", retry=RetryPolicy(max_attempts=2, backoff=0.05, retry_on=(FirstRunFails,)))
def flaky(ctx: TaskContext) -> dict[str, str]:
    with trace.get_tracer("tests.traced").start_as_current_span("handler work") as span:
        span.set_attribute("attempt", ctx.attempt)
        if ctx.attempt == 1:
            raise FirstRunFails("the first run fails")
    return ctx.trace_context


@task("traced.in_process", isolation="process")
def in_process(ctx: TaskContext) -> dict[str, str]:
    with trace.get_tracer("tests.traced").start_as_current_span("handler work"):
        pass
    return ctx.trace_context
