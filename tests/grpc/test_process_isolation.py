"""Handlers in worker processes, through a real server: progress relayed in order, a stop that kills a handler
stuck in C code or in an endless loop, a process that dies, recycling, results JSON cannot carry, and files."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from google.protobuf import duration_pb2

from taskservice.core.registry import TaskRegistry
from taskservice.server.app import RunningServer
from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc
from tests.grpc.helpers import struct, wait_for_state, watch_all
from tests.support.inprocess import StartServer
from tests.support.process_types import register_process_types
from tests.support.task_types import Gates, make_registry


@pytest.fixture
def task_types(gates: Gates) -> Callable[[], TaskRegistry]:
    return lambda: register_process_types(make_registry(gates))


@pytest.fixture
async def server(start_server: StartServer) -> RunningServer:
    return await start_server(process_workers=2, process_max_tasks=3)


async def ended(stub: pb_grpc.TaskServiceStub, task_id: str) -> pb.Task:
    answer = await stub.WaitTask(pb.WaitTaskRequest(task_id=task_id, timeout=duration_pb2.Duration(seconds=20)))
    assert answer.done, answer
    return answer.task


async def submit(stub: pb_grpc.TaskServiceStub, task_type: str, **args: object) -> str:
    return (await stub.Submit(pb.SubmitRequest(task_type=task_type, args=struct(**args)))).task.task_id


async def test_progress_is_relayed_in_order_latest_wins_and_the_log_follows(stub: pb_grpc.TaskServiceStub) -> None:
    task_id = await submit(stub, "proc.report", reports=20_000)
    events = await watch_all(stub, task_id)
    percents = [e.progress.percent for e in events if not e.HasField("task")]
    assert percents == sorted(percents), "progress only moves forward"
    assert events[-1].task.state == pb.TASK_STATE_SUCCESS and events[-1].task.result.number_value == 20_000
    assert events[-1].task.progress.percent == 100.0, "the latest value arrives"
    log = b"".join([c.data async for c in stub.WatchLogs(pb.WatchLogsRequest(task_id=task_id), timeout=10)])
    assert log == b"reported 20000 times\n"


async def test_the_handler_runs_in_another_process_which_is_recycled(stub: pb_grpc.TaskServiceStub) -> None:
    pids = set()
    for _ in range(8):
        task = await ended(stub, await submit(stub, "proc.pid"))
        assert task.state == pb.TASK_STATE_SUCCESS
        pids.add(int(task.result.number_value))
    assert os.getpid() not in pids
    assert len(pids) > 2, "after 3 tasks a process is replaced by a fresh one"


@pytest.mark.parametrize("task_type", ["proc.stuck_in_c", "proc.endless"])
async def test_a_stop_kills_a_handler_that_ignores_it_and_the_slot_is_refilled(
    stub: pb_grpc.TaskServiceStub, server: RunningServer, task_type: str
) -> None:
    task_id = await submit(stub, task_type)
    await wait_for_state(stub, task_id, pb.TASK_STATE_RUNNING)
    await stub.Stop(pb.StopRequest(task_id=task_id))
    task = await ended(stub, task_id)
    assert task.state == pb.TASK_STATE_REVOKED
    again = await ended(stub, await submit(stub, "proc.pid"))
    assert again.state == pb.TASK_STATE_SUCCESS, "capacity is back"


async def test_a_time_limit_kills_a_handler_stuck_in_c(stub: pb_grpc.TaskServiceStub) -> None:
    request = pb.SubmitRequest(task_type="proc.stuck_in_c", time_limit=duration_pb2.Duration(nanos=300_000_000))
    task = await ended(stub, (await stub.Submit(request)).task.task_id)
    assert task.state == pb.TASK_STATE_TIMED_OUT


@pytest.mark.parametrize(("how", "said"), [("exit", "exited with code 3"), ("segfault", "SIGSEGV"),
                                            ("kill", "SIGKILL")])  # fmt: skip
async def test_a_process_that_dies_fails_its_task_and_is_replaced(
    stub: pb_grpc.TaskServiceStub, server: RunningServer, how: str, said: str
) -> None:
    before = server.manager.stats().processes_replaced
    task = await ended(stub, await submit(stub, "proc.crash", how=how))
    assert task.state == pb.TASK_STATE_FAILURE and task.error.type == "WorkerProcessDied"
    assert said in task.error.message
    assert (await ended(stub, await submit(stub, "proc.pid"))).state == pb.TASK_STATE_SUCCESS
    stats = server.manager.stats()
    assert stats.processes_replaced > before and stats.worker_processes == 2, "the metrics see it"


async def test_failures_and_results_follow_the_thread_rules(stub: pb_grpc.TaskServiceStub) -> None:
    failed = await ended(stub, await submit(stub, "proc.fail", message="bad input"))
    assert failed.error.type == "ValueError" and failed.error.message == "bad input"
    assert "raise ValueError(message)" in failed.error.traceback
    not_json = await ended(stub, await submit(stub, "proc.not_json"))
    assert not_json.state == pb.TASK_STATE_FAILURE and not_json.error.type == "ResultNotJSON"
    slept = await ended(stub, await submit(stub, "proc.cooperative", seconds=0.05))
    assert slept.result.string_value == "slept"


async def test_paths_reach_the_process_through_the_servers_descriptors(
    stub: pb_grpc.TaskServiceStub, tmp_path: Path
) -> None:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "in.txt").write_text("hello")
    task = await ended(stub, await submit(stub, "proc.upper", input_fpath="in.txt", output_fpath="out.txt"))
    assert task.state == pb.TASK_STATE_SUCCESS, task.error
    assert (tmp_path / "data" / "out.txt").read_text() == "HELLO"


async def test_a_process_past_its_memory_limit_is_replaced(start_server: StartServer) -> None:
    import grpc as grpc_module

    server = await start_server(process_workers=1, process_max_rss=1)  # every process is past 1 byte
    async with grpc_module.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.TaskServiceStub(channel)
        pids = {int((await ended(stub, await submit(stub, "proc.pid"))).result.number_value) for _ in range(3)}
    assert len(pids) == 3, "each task found a fresh process"


async def test_a_retry_policy_matches_exceptions_raised_in_a_process_by_their_classes(
    stub: pb_grpc.TaskServiceStub,
) -> None:
    flaky = await ended(stub, await submit(stub, "proc.flaky", failures=2))
    assert flaky.state == pb.TASK_STATE_SUCCESS and flaky.attempt == 3, "FlakyError is a ValueError: retried twice"
    stubborn = await ended(stub, await submit(stub, "proc.stubborn_error"))
    assert stubborn.state == pb.TASK_STATE_FAILURE and stubborn.attempt == 1, "a KeyError is not retried"
