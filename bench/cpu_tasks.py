"""Task types for the isolation bench, loaded by the server with --tasks bench.cpu_tasks."""

from __future__ import annotations

import time

from taskservice import TaskContext, task


@task("bench.cpu")
def cpu(ctx: TaskContext, *, iterations: int = 0, seconds: float = 0.0) -> int:
    """Pure-Python work: `iterations` rounds, or for `seconds` (checking for a stop now and then)."""
    total = 0
    if seconds:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for i in range(10_000):
                total += i * i
            ctx.check_stop()
        return total % 1000
    for i in range(iterations):
        total += i * i
    return total % 1000


@task("bench.report")
def report(ctx: TaskContext, *, reports: int) -> int:
    """Reports progress `reports` times, as fast as it can."""
    for i in range(reports):
        ctx.progress(100.0 * (i + 1) / reports)
    return reports
