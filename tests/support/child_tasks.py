"""Task types that submit child tasks (ctx.submit, ctx.wait), registered to run in worker threads and, under the
`proc-` prefix, in worker processes (module-level functions: a worker process imports them)."""

from __future__ import annotations

from taskservice import RetryPolicy, StopTask, TaskContext
from taskservice.core.handlers.children import ChildSubmitError
from taskservice.core.handlers.registry import TaskRegistry


def square(ctx: TaskContext, *, n: int) -> int:
    if n < 0:
        raise ValueError(f"no square of {n} here")
    return n * n


def hold(ctx: TaskContext) -> None:
    ctx.sleep(120)


def fan_out(ctx: TaskContext, *, prefix: str, numbers: list[int]) -> dict[str, object]:
    """A child per number; waits for all of them; their results (or error types) in order."""
    ids = [ctx.submit(f"{prefix}square", {"n": n}) for n in numbers]
    ended = ctx.wait(ids, timeout=60)
    return {"ids": ids, "results": [c.result if c.succeeded else c.error_type for c in ended]}


def hold_children(ctx: TaskContext, *, prefix: str) -> None:
    """Two children that wait for a stop, one of them detached; then waits for them (so it is stopped waiting)."""
    kept = ctx.submit(f"{prefix}hold", key="kept")
    free = ctx.submit(f"{prefix}hold", key="free", detached=True)
    ctx.log(f"children {kept} {free}")
    ctx.wait([kept, free])


def retried_parent(ctx: TaskContext, *, prefix: str) -> list[str]:
    """Submits the same two children on every attempt, and fails its first."""
    ids = [ctx.submit(f"{prefix}square", {"n": 2}), ctx.submit(f"{prefix}square", {"n": 3}, key="three")]
    if ctx.attempt == 1:
        raise RuntimeError("first attempt fails after submitting its children")
    return [c.task_id for c in ctx.wait(ids, timeout=60)]


def refused_child(ctx: TaskContext, *, prefix: str) -> str:
    try:
        ctx.submit(f"{prefix}square", {"n": "two"})
    except ChildSubmitError as exc:
        return str(exc)
    return "accepted"


def waits_forever(ctx: TaskContext, *, prefix: str) -> str:
    try:
        ctx.wait([ctx.submit(f"{prefix}hold")], timeout=0.3)
    except TimeoutError as exc:
        return str(exc)
    except StopTask:
        raise
    return "ended"


HANDLERS = (square, hold, fan_out, hold_children, retried_parent, refused_child, waits_forever)


def register_child_tasks(registry: TaskRegistry) -> TaskRegistry:
    for prefix, isolation in (("", "thread"), ("proc-", "process")):
        for handler in HANDLERS:
            retry = RetryPolicy(max_attempts=2, backoff=0.05, retry_on=(RuntimeError,))
            registry.register(f"{prefix}{handler.__name__}", handler, isolation=isolation,
                              retry=retry if handler is retried_parent else None)  # fmt: skip
    return registry
