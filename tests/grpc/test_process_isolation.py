"""Handlers in worker processes, through a real server: progress relayed in order, a stop that kills a handler
stuck in C code or in an endless loop, a process that dies, recycling, results JSON cannot carry, and files."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2

from taskservice.core.handlers.registry import TaskRegistry
from taskservice.server.app import RunningServer
from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc
from tests.grpc.helpers import struct, wait_for_state, watch_all
from tests.support.inprocess import StartServer
from tests.support.process_types import register_process_types
from tests.support.task_types import Gates, make_registry
from tests.support.waiting import wait_async


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
    server = await start_server(process_workers=1, process_max_rss=200 * 2**20)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.TaskServiceStub(channel)
        before = int((await ended(stub, await submit(stub, "proc.pid"))).result.number_value)
        hog = await ended(stub, await submit(stub, "proc.hog", mib=400))  # waits for a stop it never gets
        assert hog.state == pb.TASK_STATE_FAILURE and hog.error.type == "MemoryLimitExceeded", hog.error
        assert "--process-max-rss" in hog.error.message
        after = await ended(stub, await submit(stub, "proc.pid"))
        assert after.state == pb.TASK_STATE_SUCCESS and int(after.result.number_value) != before, "a fresh process"


async def test_a_bad_progress_call_fails_as_in_a_thread_and_gives_its_slot_back(
    stub: pb_grpc.TaskServiceStub, server: RunningServer
) -> None:
    for _ in range(5):  # more than the pool's 2 processes: none may be kept
        task = await ended(stub, await submit(stub, "proc.bad_progress"))
        assert task.state == pb.TASK_STATE_FAILURE and task.error.type == "ValueError", task.error
        assert "ctx.progress(current=...) must be a whole number" in task.error.message
    assert (await ended(stub, await submit(stub, "proc.pid"))).state == pb.TASK_STATE_SUCCESS
    assert server.manager.stats().worker_processes == 2


async def test_a_stop_kills_what_the_handler_started(stub: pb_grpc.TaskServiceStub) -> None:
    task_id = await submit(stub, "proc.with_children")

    async def child_pid() -> int | None:
        log = b"".join([c.data async for c in stub.WatchLogs(pb.WatchLogsRequest(task_id=task_id), timeout=10)])
        return int(log.split()[1]) if log.startswith(b"child ") else None

    child = await wait_async(child_pid, what="the handler's child started")
    await stub.Stop(pb.StopRequest(task_id=task_id))
    assert (await ended(stub, task_id)).state == pb.TASK_STATE_REVOKED
    await wait_async(lambda: _gone(child), what=f"the handler's child {child} killed with its worker process")


async def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


async def test_a_line_logged_after_its_handler_returned_lands_in_no_other_task(start_server: StartServer) -> None:
    server = await start_server(process_workers=1)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.TaskServiceStub(channel)
        assert (await ended(stub, await submit(stub, "proc.late_log"))).state == pb.TASK_STATE_SUCCESS
        next_id = await submit(stub, "proc.cooperative", seconds=1.0)  # the same process, while the lines come
        assert (await ended(stub, next_id)).state == pb.TASK_STATE_SUCCESS
        log = b"".join([c.data async for c in stub.WatchLogs(pb.WatchLogsRequest(task_id=next_id), timeout=10)])
        assert log == b""


async def test_garbage_in_the_pipe_fails_that_task_only_and_the_next_results_are_their_own(
    stub: pb_grpc.TaskServiceStub, server: RunningServer
) -> None:
    broken = await ended(stub, await submit(stub, "proc.garbage"))
    assert broken.state == pb.TASK_STATE_FAILURE and broken.error.type == "ServerError", broken.error
    for steps in range(3):
        task = await ended(stub, await submit(stub, "proc.report", reports=steps + 1))
        assert task.state == pb.TASK_STATE_SUCCESS and task.result.number_value == steps + 1
    assert server.manager.stats().worker_processes == 2


async def test_the_process_gets_the_tasks_descriptors(stub: pb_grpc.TaskServiceStub, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "in.txt").write_text("hello")
    task = await ended(stub, await submit(stub, "proc.holds", input_fpath="in.txt"))
    assert task.state == pb.TASK_STATE_SUCCESS, task.error
    assert [v.string_value for v in task.result.list_value.values] == [str(tmp_path / "data" / "in.txt")]


async def test_a_retry_policy_matches_exceptions_raised_in_a_process_by_their_classes(
    stub: pb_grpc.TaskServiceStub,
) -> None:
    flaky = await ended(stub, await submit(stub, "proc.flaky", failures=2))
    assert flaky.state == pb.TASK_STATE_SUCCESS and flaky.attempt == 3, "FlakyError is a ValueError: retried twice"
    stubborn = await ended(stub, await submit(stub, "proc.stubborn_error"))
    assert stubborn.state == pb.TASK_STATE_FAILURE and stubborn.attempt == 1, "a KeyError is not retried"


PR_GET_DUMPABLE = 3


async def test_a_server_running_worker_processes_is_not_dumpable(server: RunningServer) -> None:
    """So a worker process of the server's (non-root) user cannot open the server's /proc/<pid>/fd: a handler
    reaches only the descriptors passed to it. (This test's process is the server's.)"""
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0
