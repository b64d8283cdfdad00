"""Run later over the wire: not_before and delay at Submit, scheduled_at, the scheduled filter, Stop, bad input."""

from __future__ import annotations

import time

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc
from tests.grpc.helpers import field_violations, struct


def seconds(value: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(int(value * 1e9))
    return duration


def at(unix_seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(unix_seconds * 1e9))
    return stamp


def unix(stamp: timestamp_pb2.Timestamp) -> float:
    return stamp.ToNanoseconds() / 1e9


async def test_a_delayed_task_waits_pending_with_scheduled_at_then_runs_from_then_on(
    stub: pb_grpc.TaskServiceStub,
) -> None:
    before = time.time()
    submitted = await stub.Submit(pb.SubmitRequest(task_type="echo", args=struct(value=7), delay=seconds(0.6)))
    task = submitted.task
    assert task.state == pb.TASK_STATE_PENDING and task.HasField("scheduled_at")
    due = unix(task.scheduled_at)
    assert before + 0.6 <= due <= time.time() + 0.6
    early = await stub.WaitTask(pb.WaitTaskRequest(task_id=task.task_id, timeout=seconds(0.2)), timeout=10)
    assert not early.done and early.task.state == pb.TASK_STATE_PENDING, "not run before its time"
    ended = await stub.WaitTask(pb.WaitTaskRequest(task_id=task.task_id, timeout=seconds(10)), timeout=20)
    assert ended.done and ended.task.state == pb.TASK_STATE_SUCCESS and ended.task.result.number_value == 7
    assert unix(ended.task.started_at) >= due
    assert not ended.task.HasField("scheduled_at"), "only a PENDING task is scheduled"


async def test_scheduled_tasks_are_listed_apart_and_a_stop_revokes_them_at_once(stub: pb_grpc.TaskServiceStub) -> None:
    later = (await stub.Submit(pb.SubmitRequest(task_type="echo", not_before=at(time.time() + 3600)))).task
    now = (await stub.Submit(pb.SubmitRequest(task_type="echo"))).task
    listed = await stub.ListTasks(pb.ListTasksRequest(scheduled=True))
    assert [t.task_id for t in listed.tasks] == [later.task_id]
    assert now.task_id not in {t.task_id for t in listed.tasks}
    stopped = (await stub.Stop(pb.StopRequest(task_id=later.task_id, reason="not needed"))).task
    assert stopped.state == pb.TASK_STATE_REVOKED
    assert (await stub.ListTasks(pb.ListTasksRequest(scheduled=True))).tasks == []


async def test_the_same_run_later_request_again_is_the_same_task_and_another_time_conflicts(
    stub: pb_grpc.TaskServiceStub,
) -> None:
    request = pb.SubmitRequest(task_type="echo", task_id="nightly", delay=seconds(3600))
    first = await stub.Submit(request)
    again = await stub.Submit(request)  # a retried request: its delay counts from the first
    assert first.created and not again.created
    assert again.task.scheduled_at == first.task.scheduled_at
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Submit(pb.SubmitRequest(task_type="echo", task_id="nightly", delay=seconds(60)))
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS


@pytest.mark.parametrize(
    ("fields", "blamed"),
    [
        ({"delay": seconds(-1)}, "delay"),
        ({"delay": seconds(400 * 86400)}, "delay"),
        ({"not_before": at(time.time() - 3600)}, "not_before"),
        ({"not_before": at(time.time() + 400 * 86400)}, "not_before"),
        ({"not_before": at(time.time() + 60), "delay": seconds(60)}, "not_before"),
    ],
)
async def test_run_later_times_out_of_range_are_refused_naming_the_field(
    stub: pb_grpc.TaskServiceStub, fields: dict[str, object], blamed: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Submit(pb.SubmitRequest(task_type="echo", **fields))  # type: ignore[arg-type]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == [blamed]


async def test_a_not_before_just_past_runs_at_once(stub: pb_grpc.TaskServiceStub) -> None:
    task = (await stub.Submit(pb.SubmitRequest(task_type="echo", not_before=at(time.time() - 5)))).task
    assert not task.HasField("scheduled_at")
    ended = await stub.WaitTask(pb.WaitTaskRequest(task_id=task.task_id, timeout=seconds(10)), timeout=20)
    assert ended.done and ended.task.state == pb.TASK_STATE_SUCCESS
