"""Prometheus metrics over HTTP, against a real server and SQLite file: the numbers move with the work.

RPC series are labelled with the full gRPC method path, e.g.
taskservice_rpc_total{method="/taskservice.v1.TaskService/Submit",code="INVALID_ARGUMENT"}.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

import taskservice
from taskservice.core.board.sqlite.board import SQLiteBoard
from taskservice.core.engine.manager import ManagerConfig, WorkerManager
from taskservice.core.model.models import Task, TaskState
from taskservice.server.app import RunningServer, build_server
from taskservice.server.auth import BearerTokenInterceptor, TokenFile
from taskservice.server.metrics import Metrics
from taskservice.server.settings import Settings
from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc
from tests.board.contract import new, submit
from tests.grpc.helpers import struct, wait_for_state, watch_all
from tests.support.task_types import Gates, make_registry
from tests.support.waiting import wait_until

SUBMIT = "/taskservice.v1.TaskService/Submit"
GET_STATE = "/taskservice.v1.TaskService/GetState"
WATCH = "/taskservice.v1.TaskService/WatchProgress"

StartMetered = Callable[..., Awaitable["Metered"]]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Metered:
    running: RunningServer
    metrics: Metrics
    http_port: int
    stub: pb_grpc.TaskServiceStub

    async def scrape(self) -> Samples:
        return parse(await asyncio.to_thread(fetch, self.http_port))

    async def until(self, predicate: Callable[[Samples], bool], what: str, timeout: float = 10.0) -> Samples:
        """Scrape until predicate(samples) holds; fail with the last scrape after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            samples = await self.scrape()
            if predicate(samples):
                return samples
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} did not hold within {timeout} s; last scrape:\n{dump(samples)}")
            await asyncio.sleep(0.02)


def fetch(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return str(response.read().decode())


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when the series does not exist (yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def dump(samples: Samples) -> str:
    return "\n".join(f"{name}{dict(labels)} {v}" for (name, labels), v in sorted(samples.items(), key=str))


@pytest.fixture
async def start_metered(tmp_path: Path, gates: Gates) -> AsyncIterator[StartMetered]:
    """Start a server as tests/grpc/conftest.py does, with Metrics as listener, bound stats, interceptor and HTTP."""
    started: list[tuple[RunningServer, SQLiteBoard, Metrics, grpc.aio.Channel]] = []

    async def start(**config: object) -> Metered:
        store = SQLiteBoard(tmp_path / f"tasks-{len(started)}.db")
        metrics = Metrics()
        manager = WorkerManager(
            store,
            make_registry(gates),
            config=ManagerConfig(**{"workers": 4, "stop_grace": 0.5, **config}),
            listeners=[metrics],
        )
        metrics.bind(manager.stats)
        manager.start()
        running = await build_server(manager, Settings(listen="127.0.0.1:0"), interceptors=[metrics.interceptor()])
        http_port = metrics.start_http("127.0.0.1:0")
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
        started.append((running, store, metrics, channel))
        return Metered(running, metrics, http_port, pb_grpc.TaskServiceStub(channel))

    yield start
    gates.open_all()
    for running, store, metrics, channel in started:
        await channel.close()
        metrics.stop()
        await running.shutdown(0)
        store.close()


@pytest.fixture
async def metered(start_metered: StartMetered) -> Metered:
    return await start_metered()


async def test_finished_tasks_move_the_counters_and_the_duration_histogram(metered: Metered) -> None:
    before = await metered.scrape()
    assert value(before, "taskservice_build_info", version=taskservice.__version__) == 1
    assert value(before, "taskservice_tasks_total", task_type="demo", state="SUCCESS") == 0
    ids = []
    for _ in range(2):
        request = pb.SubmitRequest(task_type="demo", args=struct(steps=2, step_seconds=0.01))
        ids.append((await metered.stub.Submit(request)).task.task_id)
    failing = (await metered.stub.Submit(pb.SubmitRequest(task_type="fail"))).task.task_id
    for task_id in [*ids, failing]:
        await watch_all(metered.stub, task_id)

    after = await metered.until(
        lambda s: (
            value(s, "taskservice_task_duration_seconds_count", task_type="demo", state="SUCCESS") == 2
            and value(s, "taskservice_tasks_total", task_type="fail", state="FAILURE") == 1
        ),
        "two demo successes and one failure counted",
    )
    assert value(after, "taskservice_tasks_total", task_type="demo", state="PENDING") == 2
    assert value(after, "taskservice_tasks_total", task_type="demo", state="RUNNING") == 2
    assert value(after, "taskservice_tasks_total", task_type="demo", state="SUCCESS") == 2
    # demo sleeps 2 x 10 ms per task, so each run takes at least 20 ms.
    assert value(after, "taskservice_task_duration_seconds_sum", task_type="demo", state="SUCCESS") >= 0.04
    assert value(after, "taskservice_task_duration_seconds_bucket", task_type="demo", state="SUCCESS", le="+Inf") == 2
    assert value(after, "taskservice_task_duration_seconds_bucket", task_type="demo", state="SUCCESS", le="0.01") == 0
    assert value(after, "taskservice_task_duration_seconds_count", task_type="fail", state="FAILURE") == 1
    # Nothing is left in a non-terminal state.
    for state in ("PENDING", "RUNNING", "STOPPING"):
        assert value(after, "taskservice_unfinished_tasks", task_type="demo", state=state) == 0
    assert value(after, "taskservice_rpc_total", method=SUBMIT, code="OK") == 3
    assert value(after, "taskservice_rpc_duration_seconds_count", method=SUBMIT) == 3
    assert value(after, "taskservice_rpc_total", method=WATCH, code="OK") == 3
    assert value(after, "taskservice_store_commits_total") > 0


async def test_rejected_rpcs_are_counted_with_their_status_code(metered: Metered) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await metered.stub.Submit(pb.SubmitRequest(task_type="no.such.type"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await metered.stub.GetState(pb.GetStateRequest(task_id="nope"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await watch_all(metered.stub, "nope")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND

    samples = await metered.until(
        lambda s: value(s, "taskservice_rpc_total", method=WATCH, code="NOT_FOUND") == 1, "the failed watch counted"
    )
    assert value(samples, "taskservice_rpc_total", method=SUBMIT, code="INVALID_ARGUMENT") == 1
    assert value(samples, "taskservice_rpc_total", method=GET_STATE, code="NOT_FOUND") == 1
    assert value(samples, "taskservice_rpc_duration_seconds_count", method=SUBMIT) == 1
    for method in (SUBMIT, GET_STATE, WATCH):
        assert value(samples, "taskservice_rpc_total", method=method, code="UNKNOWN") == 0
        assert value(samples, "taskservice_rpc_total", method=method, code="OK") == 0
    assert value(samples, "taskservice_tasks_total", task_type="no.such.type", state="PENDING") == 0


async def test_queue_depth_rises_while_the_only_worker_is_blocked_and_falls_after(
    start_metered: StartMetered, gates: Gates
) -> None:
    metered = await start_metered(workers=1)
    stub = metered.stub
    first = (await stub.Submit(pb.SubmitRequest(task_type="gate", args=struct(name="a")))).task.task_id
    await wait_for_state(stub, first, pb.TASK_STATE_RUNNING)
    queued = [
        (await stub.Submit(pb.SubmitRequest(task_type="gate", args=struct(name=name)))).task.task_id
        for name in ("b", "c")
    ]
    busy = await metered.until(lambda s: value(s, "taskservice_queue_depth") == 2, "two tasks queued")
    assert value(busy, "taskservice_workers") == 1
    assert value(busy, "taskservice_busy_workers") == 1
    assert value(busy, "taskservice_worker_utilisation") == 1.0
    assert value(busy, "taskservice_live_tasks") == 3
    assert value(busy, "taskservice_unfinished_tasks", task_type="gate", state="RUNNING") == 1
    assert value(busy, "taskservice_unfinished_tasks", task_type="gate", state="PENDING") == 2

    for name in ("a", "b", "c"):
        gates.open(name)  # open() also makes the gates of tasks that have not started yet
    for task_id in [first, *queued]:
        await wait_for_state(stub, task_id, pb.TASK_STATE_SUCCESS)
    # A watcher sees an end a moment before the listeners count it: wait for the counts too.
    idle = await metered.until(
        lambda s: value(s, "taskservice_queue_depth") == 0 and value(s, "taskservice_busy_workers") == 0
        and value(s, "taskservice_tasks_total", task_type="gate", state="SUCCESS") == 3,
        "queue drained, the worker idle and every end counted",
    )  # fmt: skip
    assert value(idle, "taskservice_worker_utilisation") == 0.0
    assert value(idle, "taskservice_unfinished_tasks", task_type="gate", state="PENDING") == 0
    assert value(idle, "taskservice_unfinished_tasks", task_type="gate", state="RUNNING") == 0


async def test_watchers_gauge_follows_open_streams_and_cancelled_streams_count_as_cancelled(
    metered: Metered, gates: Gates
) -> None:
    stub = metered.stub
    task_id = (await stub.Submit(pb.SubmitRequest(task_type="gate", args=struct(name="w")))).task.task_id
    await wait_for_state(stub, task_id, pb.TASK_STATE_RUNNING)  # itself a watch, cancelled once it saw RUNNING
    await metered.until(
        lambda s: (
            value(s, "taskservice_rpc_total", method=WATCH, code="CANCELLED") == 1
            and value(s, "taskservice_watchers") == 0
        ),
        "wait_for_state's watch counted as CANCELLED and detached",
    )

    # A watch the client walks away from: CANCELLED, and its subscription is gone.
    walked_away = stub.WatchProgress(pb.WatchProgressRequest(task_id=task_id), timeout=20)
    await walked_away.read()  # the snapshot: subscribed
    await metered.until(lambda s: value(s, "taskservice_watchers") == 1, "one watcher")
    walked_away.cancel()
    samples = await metered.until(
        lambda s: value(s, "taskservice_rpc_total", method=WATCH, code="CANCELLED") == 2,
        "the cancelled watch counted",
    )
    await metered.until(lambda s: value(s, "taskservice_watchers") == 0, "the cancelled watcher detached")

    # A watch that runs to the end: OK, counted when the stream ends.
    watch = stub.WatchProgress(pb.WatchProgressRequest(task_id=task_id), timeout=20)
    await watch.read()
    samples = await metered.until(lambda s: value(s, "taskservice_watchers") == 1, "one watcher again")
    assert value(samples, "taskservice_rpc_total", method=WATCH, code="OK") == 0, "not counted while open"
    gates.open("w")
    events = []
    while (event := await watch.read()) is not grpc.aio.EOF:
        events.append(event)
    assert events[-1].state == pb.TASK_STATE_SUCCESS
    assert await watch.code() == grpc.StatusCode.OK
    samples = await metered.until(
        lambda s: (
            value(s, "taskservice_watchers") == 0 and value(s, "taskservice_rpc_total", method=WATCH, code="OK") == 1
        ),
        "the finished watch counted and detached",
    )
    assert value(samples, "taskservice_rpc_duration_seconds_count", method=WATCH) == 3


async def test_a_watch_past_its_deadline_counts_as_deadline_exceeded(metered: Metered) -> None:
    task_id = (await metered.stub.Submit(pb.SubmitRequest(task_type="gate", args=struct(name="d")))).task.task_id
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await watch_all(metered.stub, task_id, timeout=0.3)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    samples = await metered.until(
        lambda s: value(s, "taskservice_rpc_total", method=WATCH, code="DEADLINE_EXCEEDED") == 1,
        "the expired watch counted",
    )
    assert value(samples, "taskservice_rpc_total", method=WATCH, code="CANCELLED") == 0


async def test_health_checks_are_counted_too_and_unknown_methods_are_not(metered: Metered) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    channel = grpc.aio.insecure_channel(f"127.0.0.1:{metered.running.port}")
    async with channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        bogus = channel.unary_unary("/no.Such/Method")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await bogus(b"")
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    samples = await metered.until(
        lambda s: value(s, "taskservice_rpc_total", method="/grpc.health.v1.Health/Check", code="OK") == 1,
        "the health check counted",
    )
    assert not [key for key in samples if ("method", "/no.Such/Method") in key[1]]


async def test_outermost_metrics_count_what_the_auth_interceptor_rejects(tmp_path: Path, gates: Gates) -> None:
    """The wiring app.py uses: [metrics.interceptor(), BearerTokenInterceptor(...)], metrics first (outermost)."""
    token_file = tmp_path / "tokens"
    token_file.write_text("s3cret\n")
    store = SQLiteBoard(tmp_path / "auth.db")
    metrics = Metrics()
    manager = WorkerManager(store, make_registry(gates), config=ManagerConfig(workers=1), listeners=[metrics])
    metrics.bind(manager.stats)
    manager.start()
    interceptors = [metrics.interceptor(), BearerTokenInterceptor(TokenFile(token_file))]
    running = await build_server(manager, Settings(listen="127.0.0.1:0"), interceptors=interceptors)
    http_port = metrics.start_http("127.0.0.1:0")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.TaskServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.GetState(pb.GetStateRequest(task_id="x"))
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await watch_all(stub, "x")
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.GetState(pb.GetStateRequest(task_id="x"), metadata=[("authorization", "Bearer s3cret")])
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        metered = Metered(running, metrics, http_port, stub)
        # Each call is counted as it ends, the answer may reach the test first: wait for the three.
        await metered.until(
            lambda s: (
                value(s, "taskservice_rpc_total", method=WATCH, code="UNAUTHENTICATED") == 1
                and value(s, "taskservice_rpc_total", method=GET_STATE, code="UNAUTHENTICATED") == 1
                and value(s, "taskservice_rpc_total", method=GET_STATE, code="NOT_FOUND") == 1
            ),
            "the rejected calls and the one let in counted",
        )
    finally:
        metrics.stop()
        await running.shutdown(0)
        store.close()


def test_transitions_this_process_never_counted_do_not_drive_the_gauge_negative() -> None:
    # After a restart the manager announces RUNNING -> LOST for tasks this Metrics never saw as RUNNING.
    metrics = Metrics()
    lost = Task("t1", "demo", {}, TaskState.LOST, submitted_at=100.0, started_at=101.0, ended_at=103.5)
    metrics.task_changed(lost, TaskState.RUNNING)
    samples = parse(_exposition(metrics))
    assert value(samples, "taskservice_unfinished_tasks", task_type="demo", state="RUNNING") == 0
    assert value(samples, "taskservice_tasks_total", task_type="demo", state="LOST") == 1
    assert value(samples, "taskservice_task_duration_seconds_sum", task_type="demo", state="LOST") == 2.5
    # Revoked before it ran: measured from submission.
    revoked = Task("t2", "demo", {}, TaskState.PENDING, submitted_at=10.0)
    metrics.task_changed(revoked, None)
    assert value(parse(_exposition(metrics)), "taskservice_unfinished_tasks", task_type="demo", state="PENDING") == 1
    revoked.state, revoked.ended_at = TaskState.REVOKED, 11.0
    metrics.task_changed(revoked, TaskState.PENDING)
    samples = parse(_exposition(metrics))
    assert value(samples, "taskservice_unfinished_tasks", task_type="demo", state="PENDING") == 0
    assert value(samples, "taskservice_task_duration_seconds_sum", task_type="demo", state="REVOKED") == 1.0


def test_a_listener_call_never_raises() -> None:
    metrics = Metrics()
    metrics.task_changed(object(), None)  # type: ignore[arg-type]  # logged, not raised


def test_unbound_metrics_have_no_engine_gauges_and_two_instances_do_not_clash() -> None:
    first, second = Metrics(), Metrics()
    for metrics in (first, second):
        samples = parse(_exposition(metrics))
        assert ("taskservice_queue_depth", frozenset()) not in samples
        assert value(samples, "taskservice_build_info", version=taskservice.__version__) == 1


def test_worker_processes_and_their_replacements_are_exported() -> None:
    from taskservice.core.engine.config import ManagerStats

    metrics = Metrics()
    stats = ManagerStats(workers=4, busy_workers=1, abandoned_handlers=0, queued=0, live=1, watchers=0,
                         store_commits=3, worker_pids=(101, 102), processes_replaced=5)  # fmt: skip
    metrics.bind(lambda: stats)
    samples = parse(_exposition(metrics))
    assert value(samples, "taskservice_worker_processes") == 2
    assert value(samples, "taskservice_processes_replaced_total") == 5


def test_http_endpoint_on_port_0_and_stop_closes_it() -> None:
    metrics = Metrics()
    port = metrics.start_http("127.0.0.1:0")
    try:
        assert port > 0
        assert "taskservice_build_info" in fetch(port)
        with pytest.raises(RuntimeError):
            metrics.start_http("127.0.0.1:0")
    finally:
        metrics.stop()
    metrics.stop()  # twice is fine
    with pytest.raises(urllib.error.URLError):
        fetch(port)
    with pytest.raises(ValueError):
        metrics.start_http("no-port")


def _exposition(metrics: Metrics) -> str:
    from prometheus_client import generate_latest

    return generate_latest(metrics.registry).decode()


def test_tasks_queued_before_a_restart_count_as_unfinished(tmp_path: Path, gates: Gates) -> None:
    """The tasks a restart finds PENDING made no transition in this process, yet they are unfinished work."""
    before = SQLiteBoard(tmp_path / "tasks.db")
    submit(before, [new(f"q{i}", "gate", args={"name": f"q{i}"}) for i in range(3)])
    before.close()
    store = SQLiteBoard(tmp_path / "tasks.db")
    metrics = Metrics()
    # One worker: the first task holds it at its gate, the other two stay queued.
    manager = WorkerManager(store, make_registry(gates), listeners=[metrics], config=ManagerConfig(workers=1))
    manager.start()
    try:
        wait_until(lambda: gates.ran == ["q0"], what="the first task to start")
        samples = parse(_exposition(metrics))
        assert value(samples, "taskservice_unfinished_tasks", task_type="gate", state="PENDING") == 2
        assert value(samples, "taskservice_unfinished_tasks", task_type="gate", state="RUNNING") == 1
        # Recovered, not submitted: no PENDING transition is counted.
        assert value(samples, "taskservice_tasks_total", task_type="gate", state="PENDING") == 0
    finally:
        gates.open_all()
        manager.close()
        store.close()
