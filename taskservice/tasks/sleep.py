"""`sleep`: waits, for trying time limits and stop."""

from __future__ import annotations

import time
from typing import Annotated

from taskservice.core.engine.validation import MAX_TIME_LIMIT_SECONDS
from taskservice.core.handlers.constraints import Range
from taskservice.core.handlers.context import TaskContext
from taskservice.core.handlers.registry import task

TICKS = 10


@task("sleep")
def sleep(ctx: TaskContext, *, seconds: Annotated[float, Range(0, MAX_TIME_LIMIT_SECONDS)]) -> dict[str, float]:
    """Wait `seconds` (at most 366 days), reporting progress every tenth; wakes at once on a stop or the time limit.

    Args:
        seconds: How long to wait, in seconds.
    """
    started = time.monotonic()
    for tick in range(1, TICKS + 1):
        # Aim at absolute marks so the ticks do not drift with the time spent reporting.
        ctx.sleep(started + seconds * tick / TICKS - time.monotonic())
        ctx.progress(message=f"slept {seconds * tick / TICKS:g} of {seconds:g} s", current=tick, total=TICKS)
    return {"slept_seconds": round(time.monotonic() - started, 3)}
