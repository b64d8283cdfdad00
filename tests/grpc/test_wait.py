"""WaitTask over the wire: answers at the end, at its timeout, before the call's deadline, and on shutdown."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf import duration_pb2

from taskservice.server.app import RunningServer
from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc
from tests.grpc.helpers import eventually, field_violations, struct, wait_for_state
from tests.support.task_types import Gates


def seconds(value: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(int(value * 1e9))
    return duration


async def test_a_wait_answers_when_the_task_ends_with_its_result(
    stub: pb_grpc.TaskServiceStub, server: RunningServer, gates: Gates
) -> None:
    task_id = (await stub.Submit(pb.SubmitRequest(task_type="gate", args=struct(name="w")))).task.task_id
    waiting = asyncio.ensure_future(stub.WaitTask(pb.WaitTaskRequest(task_id=task_id), timeout=30))
    await eventually(lambda: server.manager.stats().watchers >= 1, what="the wait attached")
    assert not waiting.done()
    gates.open("w")
    answer = await waiting
    assert answer.done and answer.task.state == pb.TASK_STATE_SUCCESS
    assert answer.task.result.string_value == "w"
    await eventually(lambda: server.manager.stats().watchers == 0, what="the wait detached")


async def test_a_wait_for_a_finished_task_answers_at_once(stub: pb_grpc.TaskServiceStub) -> None:
    task_id = (await stub.Submit(pb.SubmitRequest(task_type="fail"))).task.task_id
    await wait_for_state(stub, task_id, pb.TASK_STATE_FAILURE)
    answer = await stub.WaitTask(pb.WaitTaskRequest(task_id=task_id, timeout=seconds(0)), timeout=10)
    assert answer.done and answer.task.state == pb.TASK_STATE_FAILURE
    assert answer.task.error.message == "boom"


async def test_a_wait_that_times_out_answers_the_task_as_it_is_not_done(
    stub: pb_grpc.TaskServiceStub, server: RunningServer
) -> None:
    task_id = (await stub.Submit(pb.SubmitRequest(task_type="progress_then_wait", args=struct(name="p")))).task.task_id
    await wait_for_state(stub, task_id, pb.TASK_STATE_RUNNING)
    answer = await stub.WaitTask(pb.WaitTaskRequest(task_id=task_id, timeout=seconds(0.3)), timeout=10)
    assert not answer.done
    assert answer.task.state == pb.TASK_STATE_RUNNING
    assert answer.task.progress.message.startswith("tick ")  # as it is now, with its live progress
    await eventually(lambda: server.manager.stats().watchers == 0, what="the wait detached")


async def test_a_wait_answers_before_the_calls_deadline_rather_than_fail_with_it(stub: pb_grpc.TaskServiceStub) -> None:
    task_id = (await stub.Submit(pb.SubmitRequest(task_type="gate", args=struct(name="d")))).task.task_id
    answer = await stub.WaitTask(pb.WaitTaskRequest(task_id=task_id), timeout=1.0)
    assert not answer.done
    assert answer.task.state in (pb.TASK_STATE_PENDING, pb.TASK_STATE_RUNNING)


async def test_a_wait_for_an_unknown_task_is_not_found_and_a_negative_timeout_is_refused(
    stub: pb_grpc.TaskServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.WaitTask(pb.WaitTaskRequest(task_id="no-such-task", timeout=seconds(1)), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    task_id = (await stub.Submit(pb.SubmitRequest(task_type="echo"))).task.task_id
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.WaitTask(pb.WaitTaskRequest(task_id=task_id, timeout=seconds(-1)), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == ["timeout"]


async def test_a_wait_open_at_shutdown_ends_unavailable_saying_to_wait_again(
    stub: pb_grpc.TaskServiceStub, server: RunningServer
) -> None:
    task_id = (await stub.Submit(pb.SubmitRequest(task_type="gate", args=struct(name="s")))).task.task_id
    waiting = asyncio.ensure_future(stub.WaitTask(pb.WaitTaskRequest(task_id=task_id), timeout=30))
    await eventually(lambda: server.manager.stats().watchers >= 1, what="the wait attached")
    server.servicer.close_streams()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await waiting
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "wait again" in caught.value.details()
