"""Flow control under load: a noisy neighbour's backlog beside a quiet customer's tasks, and what limits cost.

`python -m bench limits` runs the scenarios; the client side of the noisy neighbour runs in its own process
(`python -m bench.limits noisy '{...}'`), as bench/load.py's do.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.load import _channel, percentile
from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc

# Customer A's tasks, submitted at once: of the default type (sleep 0, which waits for its RUNNING to be durable),
# so that A's backlog outlasts B's 10 s (no-ops of the type that starts at once drain 20,000 in about a second).
BACKLOG = 20_000
BATCH = 5_000
QUIET_PER_SECOND = 20  # customer B's, every second
QUIET_SECONDS = 10
COST_TASKS = 5_000


async def noisy(address: str, backlog: int) -> dict[str, Any]:
    """A submits `backlog` sleep(0) tasks at once, then B submits QUIET_PER_SECOND every second for QUIET_SECONDS; each
    of B's tasks' time from Submit to start, as the server recorded both."""
    async with _channel(address) as channel:
        stub = pb_grpc.TaskServiceStub(channel)
        noisy_one = pb.SubmitRequest(task_type="sleep", labels={"customer": "a"})
        noisy_one.args.update({"seconds": 0})
        for start in range(0, backlog, BATCH):
            await stub.SubmitBatch(pb.SubmitBatchRequest(requests=[noisy_one] * min(BATCH, backlog - start)),
                                   timeout=120)  # fmt: skip
        quiet = pb.SubmitRequest(task_type="sleep", labels={"customer": "b"})
        quiet.args.update({"seconds": 0})
        quiet_ids: list[str] = []
        for _ in range(QUIET_SECONDS):
            due = time.monotonic() + 1
            answers = await asyncio.gather(*(stub.Submit(quiet, timeout=60) for _q in range(QUIET_PER_SECOND)))
            quiet_ids += [answer.task.task_id for answer in answers]
            await asyncio.sleep(max(0.0, due - time.monotonic()))
        # A's backlog must outlast B's load, or B would wait for nothing in either order.
        left = (await stub.ListTasks(pb.ListTasksRequest(states=[pb.TASK_STATE_PENDING], page_size=1000))).tasks
        waits: list[float] = []
        deadline = time.monotonic() + 300
        for task_id in quiet_ids:
            while True:
                task = (await stub.GetState(pb.GetStateRequest(task_id=task_id), timeout=60)).task
                if task.HasField("started_at"):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{task_id} never started")
                await asyncio.sleep(0.05)
            waits.append((task.started_at.ToNanoseconds() - task.submitted_at.ToNanoseconds()) / 1e6)
    return {"p50_ms": percentile(waits, 0.5), "p99_ms": percentile(waits, 0.99), "quiet": len(waits),
            "noisy_left_when_quiet_done": len(left)}  # fmt: skip


def run_noisy(address: str, backlog: int) -> dict[str, Any]:
    params = json.dumps({"address": address, "backlog": backlog})
    command = [sys.executable, "-m", "bench.limits", "noisy", params]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"bench.limits noisy failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def limits_scenarios(table: Any, tmp: Path, serve: Any, load: Any) -> None:
    """B's wait behind A's backlog with fair turns (--fairness-label customer), without (the order of arrival),
    and alone on an idle server, and how much of A was still queued when B's last task started; then 5,000 no-ops
    end to end under a limit that never binds, beside none."""
    figures: dict[str, dict[str, Any]] = {}
    for name, backlog, args in (("alone", 0, []), ("fair", BACKLOG, ["--fairness-label", "customer"]),
                                ("arrival", BACKLOG, [])):  # fmt: skip
        with serve(tmp / f"noisy-{name}.db", workers=4, extra_args=args) as server:
            server.start()
            figures[name] = run_noisy(server.address, backlog)
    alone, fair, arrival = figures["alone"], figures["fair"], figures["arrival"]
    what = f"B's {QUIET_PER_SECOND}/s sleep(0) wait to start, behind A's {BACKLOG:,} (fair turns)"
    note = "baseline: B alone on an idle server, same run"
    table.row(f"{what}, p50", "ms", fair["p50_ms"], alone["p50_ms"], "lower", "<= 2x", note)
    table.row(f"{what}, p99", "ms", fair["p99_ms"], alone["p99_ms"], "lower", "<= 2x", note)
    table.row("A's tasks still queued when B's load ended, up to 1,000 (fair turns)", "tasks",
              fair["noisy_left_when_quiet_done"], None, "higher", "> 0", "A's backlog outlasted B's load")  # fmt: skip
    for q in ("p50", "p99"):
        table.row(f"B's wait behind A's {BACKLOG:,} in order of arrival (no fair turns), {q}", "ms",
                  arrival[f"{q}_ms"], alone[f"{q}_ms"], "lower", "", "what fair turns remove")  # fmt: skip
    rates: dict[str, float] = {}
    for name in ("none", "limit"):
        with serve(tmp / f"cost-{name}.db", workers=4) as server:
            server.start()
            if name == "limit":
                _create_limit(server.address)
            rates[name] = load("single_tasks", address=server.address, count=COST_TASKS, concurrency=64,
                               timeout=300, task_type="noop")["tasks_per_s"]  # fmt: skip
    table.row(f"{COST_TASKS:,} no-op tasks end to end under a limit that never binds", "tasks/s", rates["limit"],
              rates["none"], "higher", ">= 0.9", "baseline: the same with no limit")  # fmt: skip


def _create_limit(address: str) -> None:
    import grpc

    with grpc.insecure_channel(address) as channel:
        pb_grpc.TaskServiceStub(channel).CreateLimit(
            pb.CreateLimitRequest(limit=pb.Limit(limit_id="roomy", max_running=100_000)), timeout=30
        )


if __name__ == "__main__":
    scenario, params = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps(asyncio.run({"noisy": noisy}[scenario](**params))))
