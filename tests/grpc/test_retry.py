"""RetryTask over the wire: a failed, revoked or lost task runs again as its next attempt; other states refused."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf import duration_pb2

from taskservice.server.app import RunningServer
from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc
from tests.grpc.helpers import eventually, struct, wait_for_state, watch_all
from tests.support.task_types import Gates


async def ended(stub: pb_grpc.TaskServiceStub, task_id: str) -> pb.Task:
    timeout = duration_pb2.Duration(seconds=15)
    answer = await stub.WaitTask(pb.WaitTaskRequest(task_id=task_id, timeout=timeout), timeout=20)
    assert answer.done, answer
    return answer.task


async def test_a_failed_task_retried_by_hand_runs_again_as_its_next_attempt(stub: pb_grpc.TaskServiceStub) -> None:
    task_id = (await stub.Submit(pb.SubmitRequest(task_type="fail", args=struct(message="disk full")))).task.task_id
    failed = await ended(stub, task_id)
    assert failed.state == pb.TASK_STATE_FAILURE and failed.attempt == 1
    retried = (await stub.RetryTask(pb.RetryTaskRequest(task_id=task_id, reason="room was made"))).task
    assert retried.state == pb.TASK_STATE_PENDING and retried.attempt == 1
    assert not retried.HasField("error") and not retried.HasField("ended_at")
    again = await ended(stub, task_id)
    assert again.state == pb.TASK_STATE_FAILURE and again.attempt == 2
    log = b"".join([c.data async for c in stub.WatchLogs(pb.WatchLogsRequest(task_id=task_id), timeout=10)])
    assert b"retried by hand after FAILURE: room was made" in log
    listed = await stub.ListTasks(pb.ListTasksRequest())
    assert [t.task_id for t in listed.tasks].count(task_id) == 1, "the same task, not a new one"


async def test_watchers_see_a_revoked_task_go_back_to_pending_and_run_again(
    stub: pb_grpc.TaskServiceStub, server: RunningServer, gates: Gates
) -> None:
    task_id = (await stub.Submit(pb.SubmitRequest(task_type="gate", args=struct(name="r")))).task.task_id
    await wait_for_state(stub, task_id, pb.TASK_STATE_RUNNING)
    await stub.Stop(pb.StopRequest(task_id=task_id))
    first = await ended(stub, task_id)
    assert first.state == pb.TASK_STATE_REVOKED
    await stub.RetryTask(pb.RetryTaskRequest(task_id=task_id))
    watching = asyncio.ensure_future(watch_all(stub, task_id))
    await eventually(lambda: server.manager.stats().watchers >= 1, what="the watcher attached")
    gates.open("r")
    events = await watching
    states = [e.state for e in events if e.HasField("task")]
    assert states[-1] == pb.TASK_STATE_SUCCESS and pb.TASK_STATE_RUNNING in states
    assert states[0] in (pb.TASK_STATE_PENDING, pb.TASK_STATE_RUNNING)
    assert events[-1].task.attempt == 2


@pytest.mark.parametrize("task_type", ["echo", "gate"])
async def test_a_task_that_succeeded_or_still_runs_cannot_be_retried(
    stub: pb_grpc.TaskServiceStub, gates: Gates, task_type: str
) -> None:
    args = struct(value=1) if task_type == "echo" else struct(name="busy")
    task_id = (await stub.Submit(pb.SubmitRequest(task_type=task_type, args=args))).task.task_id
    if task_type == "echo":
        await ended(stub, task_id)
    else:
        await wait_for_state(stub, task_id, pb.TASK_STATE_RUNNING)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.RetryTask(pb.RetryTaskRequest(task_id=task_id))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    state = "SUCCESS" if task_type == "echo" else "RUNNING"
    assert f"is {state}: only a task that ended FAILURE, TIMED_OUT, REVOKED or LOST" in caught.value.details()


async def test_a_retry_of_an_unknown_task_is_not_found(stub: pb_grpc.TaskServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.RetryTask(pb.RetryTaskRequest(task_id="no-such-task"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
