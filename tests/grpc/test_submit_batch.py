"""SubmitBatch: each request checked and idempotent as Submit, one result each, new tasks in one commit."""

from __future__ import annotations

import grpc
import pytest

from taskservice.server.app import RunningServer
from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc
from tests.grpc.helpers import struct, wait_for_state, watch_all
from tests.support.task_types import Gates


def request(task_type: str = "echo", **fields: object) -> pb.SubmitRequest:
    args = fields.pop("args", {})
    return pb.SubmitRequest(task_type=task_type, args=struct(**args), **fields)  # type: ignore[arg-type]


async def test_each_request_gets_its_own_result_in_order(stub: pb_grpc.TaskServiceStub) -> None:
    await stub.Submit(request(args={"value": "before"}, task_id="kept"))
    response = await stub.SubmitBatch(
        pb.SubmitBatchRequest(
            requests=[
                request(args={"value": 1}),
                request("no.such.type"),
                request(args={"value": "before"}, task_id="kept"),  # the same request again
                request(args={"value": "other"}, task_id="kept"),  # a different one under a taken id
                request("typed", args={"i": 1.5}),
                request(args={"value": 2}, task_id="twice"),
                request(args={"value": 2}, task_id="twice"),  # twice in one batch
            ]
        )
    )
    results = list(response.results)
    assert len(results) == 7
    assert results[0].created and results[0].error_code == 0 and results[0].task.state == pb.TASK_STATE_PENDING
    assert results[1].error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert [v.field for v in results[1].field_violations] == ["task_type"]
    assert not results[2].created and results[2].task.task_id == "kept" and results[2].error_code == 0
    assert results[3].error_code == grpc.StatusCode.ALREADY_EXISTS.value[0] and "kept" in results[3].error_message
    assert [v.field for v in results[4].field_violations] == ["args.i"]
    assert results[5].created and not results[6].created
    assert results[5].task.task_id == results[6].task.task_id == "twice"
    for result in (results[0], results[5]):
        assert (await watch_all(stub, result.task.task_id))[-1].state == pb.TASK_STATE_SUCCESS
    listed = await stub.ListTasks(pb.ListTasksRequest())
    assert len(listed.tasks) == 3, "kept, the new one and twice; nothing of the refused requests"


async def test_a_batch_is_one_commit(server: RunningServer, stub: pb_grpc.TaskServiceStub, gates: Gates) -> None:
    # Keep every worker busy, so that the batch's tasks stay queued and write nothing else.
    for i in range(server.manager.config.workers):
        task_id = (await stub.Submit(request("gate", args={"name": f"busy-{i}"}))).task.task_id
        await wait_for_state(stub, task_id, pb.TASK_STATE_RUNNING)
    before = server.manager.stats().store_commits
    response = await stub.SubmitBatch(pb.SubmitBatchRequest(requests=[request(args={"value": i}) for i in range(500)]))
    assert all(r.created for r in response.results)
    # One for the batch (a commit per task would be 500); the server's own periodic writes (the queue's recount,
    # a run's start written, a lease renewal) may commit beside it, a few at most in that moment on a busy machine.
    assert server.manager.stats().store_commits - before < 10


async def test_too_many_requests_in_one_batch_are_refused(stub: pb_grpc.TaskServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.SubmitBatch(pb.SubmitBatchRequest(requests=[request() for _ in range(10_001)]))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list((await stub.ListTasks(pb.ListTasksRequest())).tasks) == []


async def test_a_draining_server_refuses_each_request_as_unavailable(
    server: RunningServer, stub: pb_grpc.TaskServiceStub
) -> None:
    server.manager.begin_shutdown()
    response = await stub.SubmitBatch(pb.SubmitBatchRequest(requests=[request(), request()]))
    assert [r.error_code for r in response.results] == [grpc.StatusCode.UNAVAILABLE.value[0]] * 2
