"""Deleting ended tasks over the wire: DeleteTask, DeleteTasks, and retention (the server's and a task's own)."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from taskservice.server.app import RunningServer
from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc
from tests.grpc.conftest import StartServer
from tests.grpc.helpers import field_violations, struct, wait_for_state
from tests.support.task_types import Gates


def seconds(value: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(int(value * 1e9))
    return duration


async def ended(stub: pb_grpc.TaskServiceStub, request: pb.SubmitRequest) -> pb.Task:
    task_id = (await stub.Submit(request)).task.task_id
    answer = await stub.WaitTask(pb.WaitTaskRequest(task_id=task_id, timeout=seconds(10)), timeout=20)
    assert answer.done, answer
    return answer.task


async def gone(stub: pb_grpc.TaskServiceStub, task_id: str) -> bool:
    try:
        await stub.GetState(pb.GetStateRequest(task_id=task_id))
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.NOT_FOUND
        return True
    return False


async def test_an_ended_task_is_deleted_with_its_log_and_an_unfinished_one_is_refused(
    stub: pb_grpc.TaskServiceStub, server: RunningServer, gates: Gates
) -> None:
    gates.open("c")  # chatty waits for it halfway
    done = await ended(stub, pb.SubmitRequest(task_type="chatty", args=struct(name="c", lines=3)))
    log = b"".join([c.data async for c in stub.WatchLogs(pb.WatchLogsRequest(task_id=done.task_id), timeout=10)])
    assert b"line 2" in log
    deleted = (await stub.DeleteTask(pb.DeleteTaskRequest(task_id=done.task_id))).task
    assert deleted.task_id == done.task_id and deleted.state == pb.TASK_STATE_SUCCESS
    assert await gone(stub, done.task_id)
    assert not (server.manager.logs.directory / f"{done.task_id}.log").exists()  # type: ignore[union-attr]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        [chunk async for chunk in stub.WatchLogs(pb.WatchLogsRequest(task_id=done.task_id), timeout=10)]
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        [e async for e in stub.WatchProgress(pb.WatchProgressRequest(task_id=done.task_id), timeout=10)]
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND, "no watcher finds a deleted task"
    running = (await stub.Submit(pb.SubmitRequest(task_type="gate", args=struct(name="g")))).task.task_id
    await wait_for_state(stub, running, pb.TASK_STATE_RUNNING)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.DeleteTask(pb.DeleteTaskRequest(task_id=running))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "stop it first" in caught.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.DeleteTask(pb.DeleteTaskRequest(task_id=done.task_id))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_delete_tasks_removes_the_ended_matches_and_counts_them(stub: pb_grpc.TaskServiceStub) -> None:
    old = [await ended(stub, pb.SubmitRequest(task_type="fail", labels={"run": "a"})) for _ in range(3)]
    cut = timestamp_pb2.Timestamp()
    cut.FromNanoseconds(time.time_ns())
    newer = await ended(stub, pb.SubmitRequest(task_type="fail", labels={"run": "a"}))
    other = await ended(stub, pb.SubmitRequest(task_type="echo", labels={"run": "b"}))
    answer = await stub.DeleteTasks(pb.DeleteTasksRequest(labels={"run": "a"}, ended_before=cut))
    assert answer.deleted == 3
    assert all([await gone(stub, t.task_id) for t in old])
    assert not await gone(stub, newer.task_id) and not await gone(stub, other.task_id)
    failed = await stub.DeleteTasks(pb.DeleteTasksRequest(states=[pb.TASK_STATE_FAILURE]))
    assert failed.deleted == 1 and await gone(stub, newer.task_id)


@pytest.mark.parametrize(
    ("request_fields", "blamed"), [({}, "all"), ({"states": [pb.TASK_STATE_RUNNING], "all": True}, "states")]
)
async def test_delete_tasks_refuses_no_filter_without_all_and_unfinished_states(
    stub: pb_grpc.TaskServiceStub, request_fields: dict[str, object], blamed: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.DeleteTasks(pb.DeleteTasksRequest(**request_fields))  # type: ignore[arg-type]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == [blamed]


async def test_ended_tasks_go_after_the_servers_retention_unless_they_keep_their_own(
    start_server: StartServer,
) -> None:
    server = await start_server(retention=0.5)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.TaskServiceStub(channel)
        short = await ended(stub, pb.SubmitRequest(task_type="echo"))
        forever = await ended(stub, pb.SubmitRequest(task_type="echo", retention=seconds(0)))
        assert forever.retention == seconds(0)
        pending = (await stub.Submit(pb.SubmitRequest(task_type="echo", delay=seconds(3600)))).task
        deadline = time.monotonic() + 10
        while not await gone(stub, short.task_id):  # the sweep runs every 0.2 s with a retention this short
            assert time.monotonic() < deadline, "the short-lived task was never deleted"
            await asyncio.sleep(0.05)
        assert not await gone(stub, forever.task_id), "a retention of 0 keeps a task for ever"
        assert not await gone(stub, pending.task_id), "an unfinished task is never deleted"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Submit(pb.SubmitRequest(task_type="echo", retention=seconds(-1)))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(caught.value) == ["retention"]
