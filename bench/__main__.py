"""`make bench`: the real server as a process, driven by client processes, beside a bare gRPC baseline.

Prints one table (each figure, its baseline from the same run, the ratio) and writes
bench/results/latest.json. Every scenario is bounded in count and time.

`python -m bench --compare REV [--rounds N] [GROUP ...]` also runs the servers of commit REV (a git worktree of it,
in a temporary folder) on the same scenarios, alternating with this tree's, and prints both figures side by side:
with N rounds, the medians (one run of a unary group moves by 10-20% on a 2-core machine).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

from bench.checksum import checksum_scenario
from bench.cluster import cluster_scenarios
from bench.dashboard import DASHBOARDS, MOVING, STORED, dashboard_scenario
from bench.fill import fill
from bench.isolation import CPU_TASKS, ISOLATED_NOOP_TASKS, REPORTS, isolation_scenarios
from bench.limits import limits_scenarios
from bench.load import percentile
from bench.retention import RETENTION, TASKS, WINDOW, retention_scenario
from bench.tracing import tracing_scenarios
from taskservice.core.model.models import TaskState
from taskservice.v1 import task_service_pb2 as pb
from tests.support.server import ServerProcess

RESULTS = Path(__file__).parent / "results" / "latest.json"
SUBMIT_CONCURRENCY = 64
RATE_SECONDS = 5.0
LATENCY_CALLS = 4000
LATENCY_ROUNDS = 8
STOP_SAMPLES = 30
WATCHED_TASKS = 50
WATCHERS_PER_TASK = 20
WATCH_ROUNDS = 3
TICKS = 200  # progress reports per watched task: 10 s at 20 Hz
TICK_HZ = 20.0
NOOP_TASKS = 5_000
BULK_TASKS = 100_000
BULK_BATCH = 5_000
IDLE_TASKS = 100
IDLE_WATCHERS_PER_TASK = 100
STORED_BIG = 1_000_000
STORED_SMALL = 1_000
QUEUED_AT_RESTART = 100_000


# The environment of the servers under test: None for this tree; PYTHONPATH of another commit's worktree in
# --compare runs.
SERVER_ENV: dict[str, str] | None = None


def serve(db: Path, **options: Any) -> ServerProcess:
    """The server under test (this tree's, or the compared commit's)."""
    return ServerProcess(db, env=SERVER_ENV, **options)


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


class Table:
    """The rows of the report, each figure beside its baseline from the same run and, where one is set, its target."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def row(self, name: str, unit: str, value: float, baseline: float | None, better: str, target: str = "",
            note: str = "") -> None:  # fmt: skip
        ratio = None if baseline in (None, 0) else value / baseline  # type: ignore[operator]
        self.rows.append(
            {"scenario": name, "unit": unit, "taskservice": value, "baseline": baseline, "ratio": ratio,
             "better": better, "target": target, "note": note}
        )  # fmt: skip
        print(f"  measured: {name}: {value:.2f} {unit}" + (f" (baseline {baseline:.2f})" if baseline else ""),
              file=sys.stderr)  # fmt: skip


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def unary_scenarios(table: Table, tmp: Path) -> None:
    submit = pb.SubmitRequest(task_type="demo")
    submit.args.update({"steps": 0})
    # The baseline runs alone: a taskservice still working through the tasks it was sent would slow it down.
    with BaselineServer() as baseline:
        base = load("unary_rate", address=baseline.address, method="/bench.Echo/Echo",
                    request_b64=b64(submit), concurrency=SUBMIT_CONCURRENCY, seconds=RATE_SECONDS)  # fmt: skip
        handed = load("unary_rate", address=baseline.address, method="/bench.Echo/EchoAfterThread",
                      request_b64=b64(submit), concurrency=SUBMIT_CONCURRENCY, seconds=RATE_SECONDS)  # fmt: skip
    # What no design that answers after work on another thread can beat, before it does the work (no target).
    table.row("bare echo answered after another thread saw it (a floor)", "calls/s", handed["calls_per_s"],
              base["calls_per_s"], "higher", "", "the least a durable Submit pays")  # fmt: skip
    with serve(tmp / "bench.db", workers=4) as server:
        server.start()
        # Submit throughput: durable Submits, 64 in flight, beside a bare echo of the same bytes.
        ours = load("unary_rate", address=server.address, method="/taskservice.v1.TaskService/Submit",
                    request_b64=b64(submit), concurrency=SUBMIT_CONCURRENCY, seconds=RATE_SECONDS)  # fmt: skip
        table.row(f"Submit, {SUBMIT_CONCURRENCY} in flight, durable", "calls/s", ours["calls_per_s"],
                  base["calls_per_s"], "higher", ">= 0.85", f"{ours['errors']} errors")  # fmt: skip
        echo_rate = base["calls_per_s"]

        # Stop -> REVOKED for a handler reporting progress every 10 ms.
        ours = load("stop_latency", address=server.address, samples=STOP_SAMPLES)
        table.row("Stop -> REVOKED p50 (progress every 10 ms)", "ms", ours["p50_ms"], None, "lower")
        table.row("Stop -> REVOKED p99 (progress every 10 ms)", "ms", ours["p99_ms"], None, "lower", "<= 50 ms")

    single_task_scenarios(table, tmp, echo_rate)

    with serve(tmp / "bulk.db", workers=4, extra_args=["--max-queue", str(BULK_TASKS * 2)]) as server:
        server.start()
        ours = load("bulk_tasks", address=server.address, count=BULK_TASKS, batch=BULK_BATCH, in_flight=2,
                    timeout=600)  # fmt: skip
        table.row(f"{BULK_TASKS} no-op tasks end to end, SubmitBatch of {BULK_BATCH}", "tasks/s",
                  ours["tasks_per_s"], echo_rate, "higher", ">= 3.0",
                  f"submitted in {ours['submit_seconds']:.1f} s; {ours['refused']} refused")  # fmt: skip


def single_task_scenarios(table: Table, tmp: Path, echo_rate: float) -> None:
    """End to end, 5,000 single Submits each: the no-op type (safe to re-run: its handler starts without waiting
    for RUNNING to be durable), and `sleep` with seconds=0, a type registered with the defaults (it waits), whose
    completion is seen by ListTasks poll, by one WatchProgress per task, and by one WatchTasks of them all."""
    runs = [
        ("noop", {}, "poll", f"{NOOP_TASKS} no-op tasks end to end, single Submits", ">= 0.60"),
        ("sleep", {"seconds": 0}, "poll", f"{NOOP_TASKS} sleep(0) tasks (default type) end to end, waited by poll",
         ">= 0.50"),
        ("sleep", {"seconds": 0}, "watch",
         f"{NOOP_TASKS} sleep(0) tasks (default type) end to end, waited by WatchProgress", ">= 0.9 poll"),
        ("sleep", {"seconds": 0}, "watch_tasks",
         f"{NOOP_TASKS} sleep(0) tasks (default type) end to end, waited by one WatchTasks", ">= poll"),
    ]  # fmt: skip
    polled = 0.0
    for index, (task_type, args, wait, name, target) in enumerate(runs):
        with serve(tmp / f"single-{index}.db", workers=4) as server:
            server.start()
            ours = load("single_tasks", address=server.address, count=NOOP_TASKS, concurrency=SUBMIT_CONCURRENCY,
                        timeout=300, task_type=task_type, args=args, wait=wait)  # fmt: skip
        baseline = polled if wait != "poll" else echo_rate
        table.row(name, "tasks/s", ours["tasks_per_s"], baseline, "higher", target,
                  "baseline: the same tasks waited by poll" if wait != "poll" else "")  # fmt: skip
        if task_type == "sleep" and wait == "poll":
            polled = ours["tasks_per_s"]


PROCS_ROUNDS = 3
PROCS_CONNECTIONS = 4


def procs_scenarios(table: Table, tmp: Path) -> None:
    """The default type (sleep 0), 5,000 single Submits over 4 connections (a server of several processes spreads
    connections, not calls), waited by poll: one process, and --procs 2; the median of 3 rounds, in turn."""
    variants = {
        "one": ["--procs", "1"],
        "procs2": ["--procs", "2"],
    }
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for number in range(PROCS_ROUNDS):
        for name, args in variants.items():
            with serve(tmp / f"procs-{name}-{number}.db", workers=4, extra_args=args) as server:
                server.start(timeout=60)
                ours = load("single_tasks", address=server.address, count=NOOP_TASKS, concurrency=SUBMIT_CONCURRENCY,
                            timeout=300, task_type="sleep", args={"seconds": 0}, wait="poll",
                            connections=PROCS_CONNECTIONS)  # fmt: skip
            rates[name].append(ours["tasks_per_s"])
    one, procs2 = (statistics.median(rates[name]) for name in variants)
    with serve(tmp / "procs-across.db", workers=4, extra_args=["--procs", "2"]) as server:
        server.start(timeout=60)
        across = load("stop_across", submit_at=server.address, watch_at=server.address, stop_at=server.address,
                      samples=STOP_SAMPLES, fresh_connections=True)  # fmt: skip
    table.row(f"{NOOP_TASKS} sleep(0) tasks, {PROCS_CONNECTIONS} connections, by poll: --procs 2", "tasks/s",
              procs2, one, "higher", ">= 1.6", "baseline: the same server, 1 process")  # fmt: skip
    note = "--procs 2; the watch and the Stop on connections of their own (any process)"
    table.row("Stop -> REVOKED on a watch, p99", "ms", across["stop_p99_ms"], None, "lower", "<= 50 ms", note)
    table.row("progress report -> a watch, p99", "ms", across["progress_p99_ms"], None, "lower", "<= 50 ms", note)


def getstate_scenarios(table: Table, tmp: Path) -> None:
    """GetState latency with a million finished tasks stored, beside the same with a thousand.

    Both servers run at once and are called in alternating rounds, so that a moment of noise on the machine
    falls on both rather than on one.
    """
    samples: dict[int, list[float]] = {STORED_SMALL: [], STORED_BIG: []}
    with contextlib.ExitStack() as stack:
        requests = {}
        for count in samples:
            db = tmp / f"stored-{count}.db"
            ids = fill(db, count, TaskState.SUCCESS)
            server = stack.enter_context(serve(db, workers=2))
            server.start(timeout=60)
            requests[count] = (server.address, b64(pb.GetStateRequest(task_id=ids[len(ids) // 2])))
        for _ in range(LATENCY_ROUNDS):
            for count, (address, request) in requests.items():
                measured = load("unary_latency", address=address, method="/taskservice.v1.TaskService/GetState",
                                request_b64=request, count=LATENCY_CALLS // LATENCY_ROUNDS)  # fmt: skip
                samples[count].extend(measured["samples_ms"])
    big, small = samples[STORED_BIG], samples[STORED_SMALL]
    table.row(f"GetState p50, {STORED_BIG:,} finished tasks stored (vs {STORED_SMALL:,})", "ms",
              statistics.median(big), statistics.median(small), "lower")  # fmt: skip
    table.row(f"GetState p99, {STORED_BIG:,} finished tasks stored (vs {STORED_SMALL:,})", "ms",
              percentile(big, 0.99), percentile(small, 0.99), "lower", "<= 1.2",
              f"{len(big)} calls each, in {LATENCY_ROUNDS} alternating rounds")  # fmt: skip


def restart_scenario(table: Table, tmp: Path) -> None:
    """From starting the process to the first accepted Submit, with 100,000 tasks queued in the database."""
    db = tmp / "queued.db"
    fill(db, QUEUED_AT_RESTART, TaskState.PENDING)
    # One worker that cannot keep up: the queue stays long while the Submit is tried.
    with serve(db, workers=1, extra_args=["--max-queue", str(QUEUED_AT_RESTART * 2)]) as server:
        started = time.perf_counter()
        server.start(timeout=120, health_check=False)
        submit = pb.SubmitRequest(task_type="demo")
        from taskservice.v1 import task_service_pb2_grpc as pb_grpc

        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.TaskServiceStub(channel)
            while True:
                try:
                    stub.Submit(submit, timeout=5)
                    break
                except grpc.RpcError:
                    if time.perf_counter() - started > 120:
                        raise
                    time.sleep(0.01)
        elapsed = time.perf_counter() - started
    table.row(f"restart with {QUEUED_AT_RESTART:,} queued: start to first accepted Submit", "s", elapsed, None,
              "lower", "<= 3 s")  # fmt: skip


def watcher_scenarios(table: Table, tmp: Path) -> None:
    """1,000 watchers: 50 tasks reporting at 20 Hz for 10 s, 20 watchers each; beside bare streams at 20 Hz.

    Both sides run WATCH_ROUNDS times, alternating, and each figure is the median of its rounds: a single
    10 s run's p99 moved by 2x from one run to the next on this machine, on either side.
    """
    ours_rounds: list[dict[str, Any]] = []
    base_rounds: list[dict[str, Any]] = []
    with BaselineServer() as baseline, serve(tmp / "watch.db", workers=WATCHED_TASKS) as server:
        server.start()
        watched = pb.SubmitRequest(task_type="demo")
        watched.args.update({"steps": TICKS, "step_seconds": 1 / TICK_HZ})
        for _ in range(WATCH_ROUNDS):
            ids = submit_many(server.address, [watched] * WATCHED_TASKS)
            ours_rounds.append(load("task_watchers", address=server.address, task_ids=ids, per_task=WATCHERS_PER_TASK))
            sample = pb.WatchProgressResponse(task_id=ids[0], sequence=50, state=pb.TASK_STATE_RUNNING)
            sample.progress.percent, sample.progress.message = 50.0, f"{TICKS // 2}/{TICKS} steps"
            sample.progress.updated_at.GetCurrentTime()
            sample.time.GetCurrentTime()
            ticks = {"count": TICKS, "hz": TICK_HZ, "size": sample.ByteSize()}
            base_rounds.append(load("tick_watchers", address=baseline.address, groups=WATCHED_TASKS,
                                    per_group=WATCHERS_PER_TASK, **ticks))  # fmt: skip
    for name, rounds in (("taskservice", ours_rounds), ("baseline", base_rounds)):
        for number, measured in enumerate(rounds, 1):
            spread = ", ".join(f"{q} {measured[f'{q}_latency_ms']:.1f}" for q in ("p50", "p90", "p99", "max"))
            print(f"  {name} round {number} delivery latency (ms): {spread}", file=sys.stderr)
    streams = f"{WATCHED_TASKS * WATCHERS_PER_TASK} watchers, tasks at {TICK_HZ:g} Hz"
    ended = sum(r["streams_with_end"] for r in ours_rounds)
    opened = sum(r["streams"] for r in ours_rounds)
    rounds = f"median of {WATCH_ROUNDS} alternating rounds"
    table.row(f"{streams}: events delivered", "events/s", _median(ours_rounds, "messages_per_s"),
              _median(base_rounds, "messages_per_s"), "higher", ">= 0.95",
              f"{ended}/{opened} streams got the terminal event; {rounds}")  # fmt: skip
    table.row(f"{streams}: p99 delivery latency", "ms", _median(ours_rounds, "p99_latency_ms"),
              _median(base_rounds, "p99_latency_ms"), "lower", "<= 1.5", rounds)  # fmt: skip


def http_scenarios(table: Table, tmp: Path) -> None:
    """The HTTP face beside gRPC on the same server, in alternating rounds: GetState p99, and 1,000 watchers of
    Server-Sent Events against 1,000 WatchProgress streams (50 tasks at 20 Hz, 20 watchers each)."""
    grpc_samples: list[float] = []
    http_samples: list[float] = []
    sse_rounds: list[dict[str, Any]] = []
    grpc_rounds: list[dict[str, Any]] = []
    with serve(tmp / "http.db", workers=WATCHED_TASKS) as server:
        server.start()
        task_id = submit_and_wait(server.address, pb.SubmitRequest(task_type="noop"))
        request = b64(pb.GetStateRequest(task_id=task_id))
        for _ in range(LATENCY_ROUNDS):
            measured = load("unary_latency", address=server.address, method="/taskservice.v1.TaskService/GetState",
                            request_b64=request, count=LATENCY_CALLS // LATENCY_ROUNDS)  # fmt: skip
            grpc_samples.extend(measured["samples_ms"])
            measured = load("http_latency", url=f"{server.http_url}/v1/tasks/{task_id}",
                            count=LATENCY_CALLS // LATENCY_ROUNDS)  # fmt: skip
            http_samples.extend(measured["samples_ms"])
        watched = pb.SubmitRequest(task_type="demo")
        watched.args.update({"steps": TICKS, "step_seconds": 1 / TICK_HZ})
        for _ in range(WATCH_ROUNDS):
            ids = submit_many(server.address, [watched] * WATCHED_TASKS)
            sse_rounds.append(load("sse_watchers", base_url=server.http_url, task_ids=ids, per_task=WATCHERS_PER_TASK))
            ids = submit_many(server.address, [watched] * WATCHED_TASKS)
            grpc_rounds.append(load("task_watchers", address=server.address, task_ids=ids, per_task=WATCHERS_PER_TASK))
    table.row("GetState p99 over HTTP/JSON (vs gRPC, same server)", "ms", percentile(http_samples, 0.99),
              percentile(grpc_samples, 0.99), "lower", "", f"{len(http_samples)} calls each, alternating")  # fmt: skip
    streams = f"{WATCHED_TASKS * WATCHERS_PER_TASK} SSE watchers, tasks at {TICK_HZ:g} Hz (vs as many gRPC watchers)"
    ended = sum(r["streams_with_end"] for r in sse_rounds)
    opened = sum(r["streams"] for r in sse_rounds)
    table.row(f"{streams}: events delivered", "events/s", _median(sse_rounds, "messages_per_s"),
              _median(grpc_rounds, "messages_per_s"), "higher", "",
              f"{ended}/{opened} streams got the terminal event; median of {WATCH_ROUNDS} rounds")  # fmt: skip
    table.row(f"{streams}: p99 delivery latency", "ms", _median(sse_rounds, "p99_latency_ms"),
              _median(grpc_rounds, "p99_latency_ms"), "lower", "")  # fmt: skip


PLACEMENTS = (("apart", "browser on a core of its own"), ("shared", "browser sharing the server's cores"))


def dashboard(table: Table, tmp: Path) -> None:
    """The dashboard in headless Chromium with 100,000 tasks stored and 100 bars moving (bench/dashboard.py)."""
    ours = dashboard_scenario(tmp, serve, submit_many)
    if "skipped" in ours:
        print(f"  dashboard: skipped: {ours['skipped']}", file=sys.stderr)
        return
    loaded = f"{STORED:,} tasks stored and {MOVING} moving (vs an empty server)"
    for placement, where in PLACEMENTS:
        if placement not in ours:
            continue
        shown = ours[placement]
        # The targets are for the server's part: with the browser apart where the machine has two cores.
        target = "<= 1.5" if placement == "apart" or "apart" not in ours else ""
        table.row(f"dashboard: overview shown, {loaded}, {where}", "ms", shown["loaded_overview_ms"],
                  shown["empty_overview_ms"], "lower", target)  # fmt: skip
        table.row(f"dashboard: list's first page shown (a screenful of rows), {loaded}, {where}", "ms",
                  shown["loaded_first_table_ms"], shown["empty_first_table_ms"], "lower", target)  # fmt: skip
        table.row(f"dashboard: list's first page drawn whole (all 100 rows), {loaded}, {where}", "ms",
                  shown["loaded_whole_table_ms"], shown["empty_whole_table_ms"], "lower", "",
                  "the rows below the first screen come a frame after it")  # fmt: skip
    table.row(f"dashboard: progress changes applied, {ours['bars']} bars of tasks at 20 Hz (vs their 20 Hz each)",
              "changes/s", ours["changes_per_s"], MOVING * 20.0, "higher", "",
              "the server coalesces progress for a reader that lags, so below 1.0 is by design")  # fmt: skip
    cost = ours["cpu_open_percent"] - ours["cpu_none_percent"]
    table.row(f"dashboard: server CPU that {DASHBOARDS} open overviews add (% of a core; vs the server's own with "
              f"{MOVING} tasks moving)", "% CPU", cost, ours["cpu_none_percent"], "lower", "<= 5 % of a core",
              f"{ours['cpu_open_percent']:.1f}% with them open, {ours['cpu_none_percent']:.1f}% without")  # fmt: skip


def isolation(table: Table, tmp: Path) -> None:
    """Handlers in worker processes beside worker threads (bench/isolation.py)."""
    ours = isolation_scenarios(tmp, load)
    table.row(f"CPU-bound handler (~50 ms of pure Python), {CPU_TASKS} tasks: 2 worker processes (vs 2 threads)",
              "tasks/s", ours["process_cpu_tasks_per_s"], ours["thread_cpu_tasks_per_s"], "higher",
              ">= 1.8")  # fmt: skip
    table.row(f"{ISOLATED_NOOP_TASKS:,} no-op tasks in worker processes (vs in threads): the cost of the hand-over",
              "tasks/s", ours["process_noop_tasks_per_s"], ours["thread_noop_tasks_per_s"], "higher", "")  # fmt: skip
    table.row(f"server CPU for a handler reporting progress {REPORTS:,} times: in a process (vs in a thread)", "s",
              ours["process_report_cpu_s"], ours["thread_report_cpu_s"], "lower", "<= 1",
              "in a thread the handler's own work counts too: that is what the server pays there")  # fmt: skip
    table.row("GetState p99 while both cores run process handlers (vs the same server idle)", "ms",
              ours["getstate_busy_p99_ms"], ours["getstate_idle_p99_ms"], "lower", "<= 3")  # fmt: skip


def _median(rounds: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in rounds)


def idle_watcher_scenario(table: Table, tmp: Path) -> None:
    idle_streams = IDLE_TASKS * IDLE_WATCHERS_PER_TASK
    with serve(tmp / "idle.db", workers=IDLE_TASKS) as server:
        server.start()
        sleeper = pb.SubmitRequest(task_type="sleep")
        sleeper.args.update({"seconds": 600})
        ids = submit_many(server.address, [sleeper] * IDLE_TASKS)
        ready = tmp / "idle-ready"
        params = {"address": server.address, "task_ids": ids, "per_task": IDLE_WATCHERS_PER_TASK,
                  "ready_file": str(ready)}  # fmt: skip
        driver = subprocess.Popen([sys.executable, "-m", "bench.load", "idle_watchers", json.dumps(params)],
                                  stdout=subprocess.PIPE, text=True)  # fmt: skip
        deadline = time.monotonic() + 300
        while not ready.exists():
            if time.monotonic() > deadline or driver.poll() is not None:
                raise RuntimeError("the idle watchers did not all connect")
            time.sleep(0.1)
        assert server.proc is not None
        rss = rss_mib(server.proc.pid)
        from taskservice.v1 import task_service_pb2_grpc as pb_grpc

        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.TaskServiceStub(channel)
            for task_id in ids:
                stub.Stop(pb.StopRequest(task_id=task_id))
        output, _ = driver.communicate(timeout=300)
        ours = json.loads(output)
    table.row(f"{idle_streams:,} idle watchers held open: server RSS", "MiB", rss, None, "lower", "<= 400 MB",
              f"{ours['streams_with_end']}/{ours['streams']} got their terminal event")  # fmt: skip


def checksum(table: Table, tmp: Path) -> None:
    """file.checksum (sha256) of a 1 GiB file through the engine, beside sha256sum on the same warm file."""
    ours = checksum_scenario(tmp)
    table.row("file.checksum sha256, 1 GiB, warm cache (vs sha256sum)", "MiB/s", ours["taskservice_mib_s"],
              ours["sha256sum_mib_s"], "higher", ">= 0.80")  # fmt: skip


def retention(table: Table, tmp: Path) -> None:
    """500,000 no-op tasks kept --retention 2s: the file and the rate of the last 100,000 beside the first's."""
    ours = retention_scenario(tmp, serve)
    first, last = ours["windows"][0], ours["windows"][-1]
    note = f"{ours['stored_at_end']:,} tasks stored at the end"
    table.row(f"{TASKS:,} no-op tasks, --retention {RETENTION}: file size after the last {WINDOW:,} (vs the first)",
              "MiB", last["file_mib"], first["file_mib"], "lower", "<= 1.2", note)  # fmt: skip
    table.row(f"{TASKS:,} no-op tasks, --retention {RETENTION}: tasks/s of the last {WINDOW:,} (vs the first)",
              "tasks/s", last["tasks_per_s"], first["tasks_per_s"], "higher", ">= 0.9")  # fmt: skip


def limits(table: Table, tmp: Path) -> None:
    """A noisy neighbour's backlog beside a quiet customer, and what a limit costs (bench/limits.py)."""
    limits_scenarios(table, tmp, serve, load)


def tracing(table: Table, tmp: Path) -> None:
    """What tracing costs, exporting every span (bench/tracing.py)."""
    tracing_scenarios(table, tmp, SERVER_ENV, load)


def postgres(table: Table, tmp: Path) -> None:
    """Servers sharing one PostgreSQL (bench/cluster.py); skipped, saying so, without one."""
    cluster_scenarios(table, tmp, serve, load)


GROUPS = {
    "unary": unary_scenarios,
    "watchers": watcher_scenarios,
    "idle": idle_watcher_scenario,
    "getstate": getstate_scenarios,
    "restart": restart_scenario,
    "checksum": checksum,
    "retention": retention,
    "http": http_scenarios,
    "dashboard": dashboard,
    "isolation": isolation,
    "postgres": postgres,
    "procs": procs_scenarios,
    "limits": limits,
    "tracing": tracing,
}


def main(argv: list[str]) -> int:
    """`python -m bench [--compare REV] [GROUP ...]`: all groups, or the named ones."""
    compare = None
    rounds = 1
    if argv[:1] == ["--compare"]:
        if len(argv) < 2:
            print("--compare needs a commit", file=sys.stderr)
            return 2
        compare, argv = argv[1], argv[2:]
        if argv[:1] == ["--rounds"]:
            if len(argv) < 2 or not argv[1].isdigit() or int(argv[1]) < 1:
                print("--rounds needs a whole number of at least 1", file=sys.stderr)
                return 2
            rounds, argv = int(argv[1]), argv[2:]
    unknown = [name for name in argv if name not in GROUPS]
    if unknown:
        print(f"unknown groups {unknown}; choose from {', '.join(GROUPS)}", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="taskservice-bench-"))
    groups = argv or list(GROUPS)
    if compare is None:
        table = run_groups(groups, tmp, None)
        report = _report(table)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(report, indent=2))
        print_table(report)
        return 0
    with worktree(compare, tmp / "old") as old_tree:
        tables: dict[str, list[Table]] = {"this tree": [], compare: []}
        envs = {"this tree": None, compare: {"PYTHONPATH": str(old_tree)}}
        for number in range(rounds):
            for variant in tables:
                tables[variant].append(Table())
            for index, name in enumerate(groups):
                if name in NOT_COMPARED:
                    continue
                # Alternate which runs first, so that neither always gets the fresher machine.
                order = ["this tree", compare] if (index + number) % 2 == 0 else [compare, "this tree"]
                for variant in order:
                    run_groups([name], tmp / variant.replace(" ", "-"), envs[variant], tables[variant][-1])
    print_comparison(tables["this tree"], tables[compare], compare)
    return 0


# Groups that run no server process (the engine in this process): they measure this tree only.
NOT_COMPARED = {"checksum"}


def run_groups(groups: list[str], tmp: Path, env: dict[str, str] | None, table: Table | None = None) -> Table:
    global SERVER_ENV
    SERVER_ENV = env
    table = table if table is not None else Table()
    tmp.mkdir(parents=True, exist_ok=True)
    for name in groups:
        GROUPS[name](table, tmp)
    return table


@contextlib.contextmanager
def worktree(rev: str, path: Path) -> Any:
    """A checkout of `rev` at `path`, removed afterwards."""
    repo = Path(__file__).resolve().parents[1]
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(path), rev], check=True,
                   capture_output=True)  # fmt: skip
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(path)], check=False,
                       capture_output=True)  # fmt: skip


def _report(table: Table) -> dict[str, Any]:
    return {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "versions": {"grpcio": grpc.__version__},
        "rows": table.rows,
    }


def print_comparison(new: list[Table], old: list[Table], rev: str) -> None:
    """Each figure of this tree beside the same figure of commit `rev`, measured in the same invocation: with
    several rounds, the medians, and each side's range (lowest-highest) after them."""
    report = _report(new[0])
    machine = report["machine"]
    print(f"\nmachine: {machine['cpus']} CPUs, {machine['platform']}, Python {machine['python']}, "
          f"grpcio {report['versions']['grpcio']}; {len(new)} alternating round(s), medians\n")  # fmt: skip
    header = f"{'scenario':<72} {'this tree':>10} {rev[:10]:>10} {'new/old':>8}  unit"
    print(header)
    print("-" * len(header))
    ours, theirs = _figures(new), _figures(old)
    for row in new[0].rows:
        name = row["scenario"]
        now, was = ours[name], theirs.get(name, [])
        new_value, old_value = statistics.median(now), statistics.median(was) if was else None
        ratio = "—" if not old_value else f"{new_value / old_value:.2f}"
        spread = f"; {_range(now)} vs {_range(was)}" if len(now) > 1 else ""
        print(f"{name:<72} {new_value:>10.2f} {'—' if old_value is None else f'{old_value:.2f}':>10} {ratio:>8}  "
              f"{row['unit']} ({row['better']} is better{spread})")  # fmt: skip


def _figures(tables: list[Table]) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {}
    for table in tables:
        for row in table.rows:
            figures.setdefault(row["scenario"], []).append(row["taskservice"])
    return figures


def _range(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}" if values else "—"


def print_table(report: dict[str, Any]) -> None:
    machine = report["machine"]
    print(f"\nmachine: {machine['cpus']} CPUs, {machine['platform']}, Python {machine['python']}, "
          f"grpcio {report['versions']['grpcio']}\n")  # fmt: skip
    header = f"{'scenario':<72} {'taskservice':>12} {'baseline':>10} {'ratio':>6}  {'target':<10} unit / note"
    print(header)
    print("-" * len(header))
    for r in report["rows"]:
        base = "—" if r["baseline"] is None else f"{r['baseline']:.2f}"
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:.2f}"
        note = f"{r['unit']} ({r['better']} is better)" + (f"; {r['note']}" if r["note"] else "")
        print(f"{r['scenario']:<72} {r['taskservice']:>12.2f} {base:>10} {ratio:>6}  {r['target'] or '—':<10} {note}")
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
