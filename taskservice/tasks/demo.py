"""`demo`: the classic threaded worker, for trying the service and its failure paths."""

from __future__ import annotations

import random
import time
from typing import Annotated

from taskservice.core.handlers.constraints import Range
from taskservice.core.handlers.context import TaskContext
from taskservice.core.handlers.registry import task

# A demo is for trying the service: a day of steps at most.
MAX_STEPS = 1_000_000
MAX_STEP_SECONDS = 3600.0


class DemoStepFailed(RuntimeError):
    """Raised by a demo step chosen to fail by fail_rate."""


@task("demo")
def demo(
    ctx: TaskContext,
    *,
    steps: Annotated[int, Range(0, MAX_STEPS)] = 10,
    step_seconds: Annotated[float, Range(0, MAX_STEP_SECONDS)] = 0.1,
    fail_rate: Annotated[float, Range(0, 1)] = 0.0,
    seed: int | None = None,
) -> dict[str, int]:
    """Work through `steps` steps of `step_seconds` each, reporting progress after each one.

    Steps end on a fixed schedule (step N at N * step_seconds from the start), so the whole takes
    steps * step_seconds however long reporting takes, and progress arrives at an even rate.

    Each step fails with probability `fail_rate`; give a `seed` to make a failure reproducible.

    Args:
        steps: How many steps.
        step_seconds: How long each step takes, in seconds.
        fail_rate: The chance that a step fails, from 0 to 1.
        seed: Seeds the failures' draw, so that a run with the same seed fails at the same step.
    """
    rng = random.Random(seed)
    ctx.progress(0, f"0/{steps} steps", current=0, total=steps)
    started = time.monotonic()
    for step in range(1, steps + 1):
        ctx.sleep(started + step * step_seconds - time.monotonic())
        if rng.random() < fail_rate:
            raise DemoStepFailed(f"step {step} of {steps} failed (fail_rate={fail_rate}, seed={seed})")
        ctx.progress(message=f"{step}/{steps} steps", current=step, total=steps)
    return {"steps": steps}


@task("noop", rerun_on_restart=True)
def noop(ctx: TaskContext) -> None:
    """Do nothing: for measuring the service itself, and for checking a deployment end to end."""
