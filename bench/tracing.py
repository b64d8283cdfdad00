"""What tracing costs: default-type tasks end to end with tracing on, exporting every span over OTLP to a receiver
in this process (tests/support/otlp.py), beside the same with tracing off."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.otlp import OtlpReceiver
from tests.support.server import ServerProcess

TASKS = 5_000
# Each case runs this many times, alternating, and the median counts: one run of a few seconds varies by 20%.
ROUNDS = 3


def tracing_scenarios(
    table: Any, tmp: Path, server_env: dict[str, str] | None, load: Callable[..., dict[str, Any]]
) -> None:
    rates: dict[str, list[float]] = {"off": [], "on": []}
    with OtlpReceiver() as receiver:
        # Traces only: the metrics, which the same endpoint would export too, are not what is measured.
        tracing = {**receiver.environment("bench", quick=False), "OTEL_METRICS_EXPORTER": "none"}
        for round_ in range(ROUNDS):
            for name, traced in (("off", {}), ("on", tracing)):
                env = {**(server_env or {}), **traced}
                with ServerProcess(tmp / f"tracing-{name}-{round_}.db", workers=4, env=env) as server:
                    server.start()
                    # The default type: sleep, here for no time (its RUNNING is durable before it starts).
                    done = load("single_tasks", address=server.address, count=TASKS, concurrency=64, timeout=300,
                                task_type="sleep", args={"seconds": 0})  # fmt: skip
                    rates[name].append(done["tasks_per_s"])
        spans = len(receiver.spans()) // ROUNDS
    note = f"baseline: tracing off, same run; medians of {ROUNDS} alternating runs; {spans:,} spans received per run"
    table.row(f"{TASKS:,} default-type tasks end to end, tracing on (OTLP to a receiver)", "tasks/s",
              statistics.median(rates["on"]), statistics.median(rates["off"]), "higher", ">= 0.85", note)  # fmt: skip
