"""Dependencies over the wire: Submit with `after` waits for tasks to succeed, and ends REVOKED (DependencyFailed,
naming the one) down the chain as soon as one ends otherwise; a watcher sees why."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf import duration_pb2

from taskservice.server.app import RunningServer
from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc
from tests.grpc.helpers import eventually, field_violations, struct, wait_for_state, watch_all
from tests.support.task_types import Gates


async def ended(stub: pb_grpc.TaskServiceStub, task_id: str) -> pb.Task:
    answer = await stub.WaitTask(
        pb.WaitTaskRequest(task_id=task_id, timeout=duration_pb2.Duration(seconds=15)), timeout=20
    )
    assert answer.done, answer
    return answer.task


async def submit(stub: pb_grpc.TaskServiceStub, task_type: str, task_id: str, *after: str, **args: object) -> pb.Task:
    request = pb.SubmitRequest(task_type=task_type, task_id=task_id, args=struct(**args), after=list(after))
    return (await stub.Submit(request)).task


async def test_a_chain_runs_in_order_each_only_after_the_one_before_succeeded(
    stub: pb_grpc.TaskServiceStub, gates: Gates
) -> None:
    await submit(stub, "gate", "fetch", name="fetch")
    second = await submit(stub, "echo", "resize", "fetch", value=2)
    await submit(stub, "echo", "publish", "resize", "fetch", value=3)
    assert list(second.after) == ["fetch"] and second.state == pb.TASK_STATE_PENDING
    await wait_for_state(stub, "fetch", pb.TASK_STATE_RUNNING)
    for waiting in ("resize", "publish"):
        task = (await stub.GetState(pb.GetStateRequest(task_id=waiting))).task
        assert task.state == pb.TASK_STATE_PENDING and not task.HasField("started_at"), waiting
    gates.open("fetch")
    fetch, resize, publish = [await ended(stub, task_id) for task_id in ("fetch", "resize", "publish")]
    assert [t.state for t in (fetch, resize, publish)] == [pb.TASK_STATE_SUCCESS] * 3
    assert resize.started_at.ToNanoseconds() >= fetch.ended_at.ToNanoseconds()
    assert publish.started_at.ToNanoseconds() >= resize.ended_at.ToNanoseconds()


async def test_a_failed_dependency_revokes_its_dependents_down_the_chain_and_their_watchers_see_why(
    stub: pb_grpc.TaskServiceStub, server: RunningServer, gates: Gates
) -> None:
    await submit(stub, "gate", "parse", name="parse-then-fail")
    await submit(stub, "echo", "load", "parse")
    await submit(stub, "echo", "report", "load")
    watching = asyncio.ensure_future(watch_all(stub, "report"))
    await eventually(lambda: server.manager.stats().watchers >= 1, what="the watcher attached")
    await stub.Stop(pb.StopRequest(task_id="parse", reason="wrong input"))
    events = await watching
    assert [e.state for e in events if e.HasField("task")] == [pb.TASK_STATE_PENDING, pb.TASK_STATE_REVOKED]
    last = events[-1].task
    assert last.error.type == "DependencyFailed"
    assert last.error.message.startswith("dependency 'load' ended REVOKED (DependencyFailed: dependency 'parse'")
    load = await ended(stub, "load")
    assert load.error.type == "DependencyFailed" and "wrong input" in load.error.message
    assert not load.HasField("started_at"), "a dependent of a failed task never runs"


async def test_a_dependency_that_raises_revokes_its_dependent(stub: pb_grpc.TaskServiceStub) -> None:
    await submit(stub, "fail", "convert", message="corrupt header")
    await submit(stub, "echo", "thumbnail", "convert")
    thumbnail = await ended(stub, "thumbnail")
    assert thumbnail.state == pb.TASK_STATE_REVOKED
    assert "dependency 'convert' ended FAILURE" in thumbnail.error.message
    assert "corrupt header" in thumbnail.error.message


async def test_dependencies_ended_already_decide_at_submit(stub: pb_grpc.TaskServiceStub) -> None:
    await submit(stub, "echo", "done")
    await submit(stub, "fail", "broken")
    await ended(stub, "done"), await ended(stub, "broken")
    runs = await submit(stub, "echo", "runs", "done", value=1)
    assert (await ended(stub, runs.task_id)).state == pb.TASK_STATE_SUCCESS
    response = await stub.Submit(pb.SubmitRequest(task_type="echo", task_id="never", after=["done", "broken"]))
    assert response.created and response.task.state == pb.TASK_STATE_REVOKED
    assert response.task.error.type == "DependencyFailed"


async def test_a_batch_may_name_its_own_earlier_tasks(stub: pb_grpc.TaskServiceStub) -> None:
    requests = [
        pb.SubmitRequest(task_type="echo", task_id="b1", args=struct(value=1)),
        pb.SubmitRequest(task_type="echo", task_id="b2", args=struct(value=2), after=["b1"]),
        pb.SubmitRequest(task_type="echo", task_id="b3", after=["b2", "nowhere"]),
    ]
    results = (await stub.SubmitBatch(pb.SubmitBatchRequest(requests=requests))).results
    assert results[0].created and results[1].created
    assert results[2].error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert [v.field for v in results[2].field_violations] == ["after"] and "nowhere" in results[2].error_message
    assert (await ended(stub, "b2")).state == pb.TASK_STATE_SUCCESS


@pytest.mark.parametrize(
    ("after", "blamed"),
    [
        (["no-such-task"], "after"),
        (["self"], "after"),
        (["bad id!"], "after[0]"),
        ([f"t{i}" for i in range(101)], "after"),
    ],
)
async def test_bad_dependencies_are_invalid_argument_naming_the_field(
    stub: pb_grpc.TaskServiceStub, after: list[str], blamed: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Submit(pb.SubmitRequest(task_type="echo", task_id="self", after=after))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == [blamed]


async def test_the_same_submit_again_is_the_same_task_and_other_dependencies_conflict(
    stub: pb_grpc.TaskServiceStub, gates: Gates
) -> None:
    await submit(stub, "gate", "first", name="first")
    await submit(stub, "gate", "other", name="other")
    request = pb.SubmitRequest(task_type="echo", task_id="then", after=["first"])
    assert (await stub.Submit(request)).created
    assert not (await stub.Submit(request)).created
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Submit(pb.SubmitRequest(task_type="echo", task_id="then", after=["other"]))
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    gates.open_all()
