"""`make bench`: the real server as a process, driven by client processes, beside a bare gRPC baseline.

Prints one table (each figure, its baseline from the same run, the ratio) and writes
bench/results/latest.json. Every scenario is bounded in count and time.
"""

from __future__ import annotations

import base64
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

from bench.checksum import checksum_scenario
from taskservice.v1 import task_service_pb2 as pb
from tests.support.server import ServerProcess

RESULTS = Path(__file__).parent / "results" / "latest.json"
SUBMIT_CONCURRENCY = 32
RATE_SECONDS = 5.0
LATENCY_CALLS = 2000
STOP_SAMPLES = 30
WATCHED_TASKS = 50
WATCHERS_PER_TASK = 20
TICKS = 100  # progress reports per watched task
TICK_HZ = 20.0


def load(scenario: str, **params: Any) -> dict[str, Any]:
    """Run one client scenario in its own process."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.load", scenario, json.dumps(params)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"bench.load {scenario} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout)


class BaselineServer:
    def __enter__(self) -> BaselineServer:
        self._tmp = tempfile.TemporaryDirectory()
        port_file = Path(self._tmp.name) / "port"
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.baseline_server", str(port_file)])
        deadline = time.monotonic() + 15
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the baseline server did not start")
            time.sleep(0.05)
        self.address = f"127.0.0.1:{port_file.read_text().strip()}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait()
        self._tmp.cleanup()


def b64(message: Any) -> str:
    return base64.b64encode(message.SerializeToString()).decode()


def submit_and_wait(address: str, request: pb.SubmitRequest) -> str:
    from taskservice.v1 import task_service_pb2_grpc as pb_grpc

    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.TaskServiceStub(channel)
        task_id = stub.Submit(request).task.task_id
        for _ in stub.WatchProgress(pb.WatchProgressRequest(task_id=task_id), timeout=60):
            pass
        return task_id


def submit_many(address: str, requests: list[pb.SubmitRequest]) -> list[str]:
    from taskservice.v1 import task_service_pb2_grpc as pb_grpc

    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.TaskServiceStub(channel)
        return [stub.Submit(r).task.task_id for r in requests]


def main() -> int:
    rows: list[dict[str, Any]] = []

    def row(name: str, unit: str, value: float, baseline: float | None, better: str, note: str = "") -> None:
        ratio = None if baseline in (None, 0) else value / baseline  # type: ignore[operator]
        rows.append(
            {"scenario": name, "unit": unit, "taskservice": value, "baseline": baseline, "ratio": ratio,
             "better": better, "note": note}
        )  # fmt: skip
        print(f"  measured: {name}: {value:.1f} {unit}", file=sys.stderr)

    tmp = Path(tempfile.mkdtemp(prefix="taskservice-bench-"))
    submit = pb.SubmitRequest(task_type="demo")
    submit.args.update({"steps": 0})
    with BaselineServer() as baseline, ServerProcess(tmp / "bench.db", workers=4) as server:
        server.start()
        # 1. Submit throughput: durable Submits, 32 in flight, beside a bare echo of the same bytes.
        ours = load("unary_rate", address=server.address, method="/taskservice.v1.TaskService/Submit",
                    request_b64=b64(submit), concurrency=SUBMIT_CONCURRENCY, seconds=RATE_SECONDS)  # fmt: skip
        base = load("unary_rate", address=baseline.address, method="/bench.Echo/Echo",
                    request_b64=b64(submit), concurrency=SUBMIT_CONCURRENCY, seconds=RATE_SECONDS)  # fmt: skip
        row(f"Submit, {SUBMIT_CONCURRENCY} in flight, durable", "calls/s", ours["calls_per_s"], base["calls_per_s"],
            "higher", f"{ours['errors']} errors")  # fmt: skip

        # 2. GetState latency, sequential, on a finished task.
        task_id = submit_and_wait(server.address, submit)
        get = pb.GetStateRequest(task_id=task_id)
        ours = load("unary_latency", address=server.address, method="/taskservice.v1.TaskService/GetState",
                    request_b64=b64(get), count=LATENCY_CALLS)  # fmt: skip
        base = load("unary_latency", address=baseline.address, method="/bench.Echo/Echo",
                    request_b64=b64(get), count=LATENCY_CALLS)  # fmt: skip
        row("GetState p50", "ms", ours["p50_ms"], base["p50_ms"], "lower")
        row("GetState p99", "ms", ours["p99_ms"], base["p99_ms"], "lower")

        # 3. Stop -> REVOKED for a handler reporting progress every 10 ms.
        ours = load("stop_latency", address=server.address, samples=STOP_SAMPLES)
        row("Stop -> REVOKED p50 (progress every 10 ms)", "ms", ours["p50_ms"], None, "lower")
        row("Stop -> REVOKED p99 (progress every 10 ms)", "ms", ours["p99_ms"], None, "lower")

    with BaselineServer() as baseline, ServerProcess(tmp / "watch.db", workers=WATCHED_TASKS) as server:
        server.start()
        # 4. 1,000 watchers: 50 tasks reporting at 20 Hz, 20 watchers each; beside bare streams at 20 Hz.
        watched = pb.SubmitRequest(task_type="demo")
        watched.args.update({"steps": TICKS, "step_seconds": 1 / TICK_HZ})
        ids = submit_many(server.address, [watched] * WATCHED_TASKS)
        ours = load("task_watchers", address=server.address, task_ids=ids, per_task=WATCHERS_PER_TASK)
        sample = pb.WatchProgressResponse(task_id=ids[0], sequence=50, state=pb.TASK_STATE_RUNNING)
        sample.progress.percent, sample.progress.message = 50.0, f"{TICKS // 2}/{TICKS} steps"
        sample.progress.updated_at.GetCurrentTime()
        sample.time.GetCurrentTime()
        base = load("tick_watchers", address=baseline.address, streams=WATCHED_TASKS * WATCHERS_PER_TASK,
                    count=TICKS, hz=TICK_HZ, size=sample.ByteSize())  # fmt: skip
        row(f"{WATCHED_TASKS * WATCHERS_PER_TASK} watchers, tasks at {TICK_HZ:g} Hz: events delivered", "events/s",
            ours["messages_per_s"], base["messages_per_s"], "higher",
            f"{ours['streams_with_end']}/{ours['streams']} streams got the terminal event")  # fmt: skip

    # 5. file.checksum (sha256) of a 1 GiB file through the engine, beside sha256sum on the same warm file.
    ours = checksum_scenario(tmp)
    row("file.checksum sha256, 1 GiB, warm cache (vs sha256sum)", "MiB/s", ours["taskservice_mib_s"],
        ours["sha256sum_mib_s"], "higher")  # fmt: skip

    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "versions": {"grpcio": grpc.__version__},
        "rows": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print_table(report)
    return 0


def print_table(report: dict[str, Any]) -> None:
    machine = report["machine"]
    print(f"\nmachine: {machine['cpus']} CPUs, {machine['platform']}, Python {machine['python']}, "
          f"grpcio {report['versions']['grpcio']}\n")  # fmt: skip
    header = f"{'scenario':<58} {'taskservice':>12} {'baseline':>12} {'ratio':>7}  unit / note"
    print(header)
    print("-" * len(header))
    for r in report["rows"]:
        base = "—" if r["baseline"] is None else f"{r['baseline']:.2f}"
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:.2f}"
        note = f"{r['unit']} ({r['better']} is better)" + (f"; {r['note']}" if r["note"] else "")
        print(f"{r['scenario']:<58} {r['taskservice']:>12.2f} {base:>12} {ratio:>7}  {note}")
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    sys.exit(main())
