"""Handlers in worker processes beside worker threads, on two cores: a CPU-bound pure-Python handler, the cost per
no-op task, and GetState latency while every core runs process handlers."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc
from tests.support.server import ServerProcess

REPO = Path(__file__).resolve().parent.parent
CPU_TASKS = 120
ISOLATED_NOOP_TASKS = 2_000
BUSY_SECONDS = 30.0
REPORTS = 200_000


def _calibrate(target_seconds: float = 0.05) -> int:
    """Iterations of bench.cpu's loop that take about `target_seconds` here."""
    n = 200_000
    start = time.perf_counter()
    total = 0
    for i in range(n):
        total += i * i
    return int(n * target_seconds / (time.perf_counter() - start))


def _server(db: Path, isolation: str) -> ServerProcess:
    extra = ["--tasks", "bench.cpu_tasks", "--isolation", isolation, "--process-workers", "2"]
    env = {"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    # With processes, worker threads only hand tasks over: two more than the processes claim and record the next
    # tasks' starts while both processes compute, so a process never waits for the server's bookkeeping.
    return ServerProcess(db, workers=2 if isolation == "thread" else 4, extra_args=extra, env=env)


def _run_batch(address: str, requests: list[pb.SubmitRequest]) -> float:
    """Tasks per second: submitted in one batch, until the last has ended."""
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.TaskServiceStub(channel)
        start = time.perf_counter()
        ids = [r.task.task_id for r in stub.SubmitBatch(pb.SubmitBatchRequest(requests=requests)).results]
        for task_id in ids:
            done = stub.WaitTask(pb.WaitTaskRequest(task_id=task_id), timeout=300)
            assert done.task.state == pb.TASK_STATE_SUCCESS, done.task.error
        return len(ids) / (time.perf_counter() - start)


def isolation_scenarios(tmp: Path, load: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    iterations = _calibrate()
    cpu = pb.SubmitRequest(task_type="bench.cpu")
    cpu.args.update({"iterations": iterations})
    noop = pb.SubmitRequest(task_type="noop")
    reporting = pb.SubmitRequest(task_type="bench.report")
    reporting.args.update({"reports": REPORTS})
    figures: dict[str, Any] = {"iterations": iterations}
    for isolation in ("thread", "process"):
        with _server(tmp / f"iso-{isolation}.db", isolation) as server:
            server.start(timeout=60)
            _run_batch(server.address, [noop] * 20)  # warm up: the processes import what the handlers need
            figures[f"{isolation}_cpu_tasks_per_s"] = _run_batch(server.address, [cpu] * CPU_TASKS)
            figures[f"{isolation}_noop_tasks_per_s"] = _run_batch(server.address, [noop] * ISOLATED_NOOP_TASKS)
            figures[f"{isolation}_report_cpu_s"] = _server_cpu(server, lambda: _run_batch(server.address, [reporting]))
            if isolation == "process":
                figures.update(_latency_under_load(server, load))
    return figures


def _server_cpu(server: ServerProcess, work: Callable[[], object]) -> float:
    """CPU seconds the server process (not its worker processes) spends while `work` runs."""
    assert server.proc is not None

    def used() -> float:
        fields = Path(f"/proc/{server.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()  # type: ignore[union-attr]
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    before = used()
    work()
    return used() - before


def _latency_under_load(server: ServerProcess, load: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    import base64

    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.TaskServiceStub(channel)
        probe = stub.Submit(pb.SubmitRequest(task_type="noop")).task.task_id
        request = base64.b64encode(pb.GetStateRequest(task_id=probe).SerializeToString()).decode()
        method = "/taskservice.v1.TaskService/GetState"
        idle = load("unary_latency", address=server.address, method=method, request_b64=request, count=1000)
        busy = pb.SubmitRequest(task_type="bench.cpu")
        busy.args.update({"seconds": BUSY_SECONDS})
        ids = [stub.Submit(busy).task.task_id for _ in range(2)]
        time.sleep(1.0)  # both processes are busy by now
        loaded = load("unary_latency", address=server.address, method=method, request_b64=request, count=1000)
        for task_id in ids:
            stub.Stop(pb.StopRequest(task_id=task_id))
    return {"getstate_idle_p99_ms": idle["p99_ms"], "getstate_busy_p99_ms": loaded["p99_ms"]}
