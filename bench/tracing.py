"""What tracing costs: default-type tasks end to end with tracing on, exporting every span over OTLP to a receiver
in this process (tests/support/otlp.py), beside the same with tracing off."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.otlp import OtlpReceiver
from tests.support.server import ServerProcess

TASKS = 5_000


def tracing_scenarios(
    table: Any, tmp: Path, server_env: dict[str, str] | None, load: Callable[..., dict[str, Any]]
) -> None:
    rates: dict[str, float] = {}
    with OtlpReceiver() as receiver:
        for name, traced in (("off", {}), ("on", receiver.environment("bench"))):
            with ServerProcess(tmp / f"tracing-{name}.db", workers=4, env={**(server_env or {}), **traced}) as server:
                server.start()
                # The default type: sleep, here for no time (its RUNNING is durable before it starts).
                rates[name] = load("single_tasks", address=server.address, count=TASKS, concurrency=64,
                                   timeout=300, task_type="sleep", args={"seconds": 0})["tasks_per_s"]  # fmt: skip
        spans = len(receiver.spans())
    note = f"baseline: tracing off, same run; {spans:,} spans received"
    table.row(f"{TASKS:,} default-type tasks end to end, tracing on (OTLP to a receiver)", "tasks/s", rates["on"],
              rates["off"], "higher", ">= 0.85", note)  # fmt: skip
