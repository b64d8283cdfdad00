"""`demo`: the classic threaded worker, for trying the service and its failure paths."""

from __future__ import annotations

import random
import time

from taskservice.core.context import TaskContext
from taskservice.core.registry import task


class DemoStepFailed(RuntimeError):
    """Raised by a demo step chosen to fail by fail_rate."""


@task("demo")
def demo(
    ctx: TaskContext,
    *,
    steps: int = 10,
    step_seconds: float = 0.1,
    fail_rate: float = 0.0,
    seed: int | None = None,
) -> dict[str, int]:
    """Work through `steps` steps of `step_seconds` each, reporting progress after each one.

    Steps end on a fixed schedule (step N at N * step_seconds from the start), so the whole takes
    steps * step_seconds however long reporting takes, and progress arrives at an even rate.

    Each step fails with probability `fail_rate`; give a `seed` to make a failure reproducible.
    """
    if steps < 0:
        raise ValueError(f"steps must be 0 or more, got {steps}")
    if not 0.0 <= fail_rate <= 1.0:
        raise ValueError(f"fail_rate must be between 0 and 1, got {fail_rate}")
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
