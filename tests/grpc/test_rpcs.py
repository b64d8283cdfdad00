"""Each RPC's success and error codes, over the wire, against a real server and SQLite file."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf import duration_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from taskservice.server.app import RunningServer
from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc
from tests.grpc.conftest import StartServer
from tests.grpc.helpers import field_violations, struct, wait_for_state, watch_all


async def submit(stub: pb_grpc.TaskServiceStub, task_type: str, **kwargs: object) -> pb.SubmitResponse:
    args = kwargs.pop("args", {})
    return await stub.Submit(pb.SubmitRequest(task_type=task_type, args=struct(**args), **kwargs))  # type: ignore[arg-type]


async def test_submit_then_watch_to_success_and_get_the_result(stub: pb_grpc.TaskServiceStub) -> None:
    response = await submit(stub, "demo", args={"steps": 3, "step_seconds": 0.01}, labels={"team": "infra"})
    assert response.created
    task = response.task
    assert task.state == pb.TASK_STATE_PENDING
    assert task.args["steps"] == 3.0 and dict(task.labels) == {"team": "infra"}
    assert task.HasField("submitted_at") and not task.HasField("started_at")
    events = await watch_all(stub, task.task_id)
    assert events[-1].state == pb.TASK_STATE_SUCCESS
    final = (await stub.GetState(pb.GetStateRequest(task_id=task.task_id))).task
    assert final.state == pb.TASK_STATE_SUCCESS
    assert final.result.struct_value["steps"] == 3.0
    assert final.progress.percent == 100.0 and final.attempt == 1
    assert final.HasField("started_at") and final.HasField("ended_at")


async def test_failure_carries_type_message_and_traceback(stub: pb_grpc.TaskServiceStub) -> None:
    task_id = (await submit(stub, "fail", args={"message": "nope"})).task.task_id
    final = (await watch_all(stub, task_id))[-1].task
    assert final.state == pb.TASK_STATE_FAILURE
    assert (final.error.type, final.error.message) == ("ValueError", "nope")
    assert "Traceback" in final.error.traceback


@pytest.mark.parametrize(
    ("task_type", "args", "field"),
    [
        ("demo", {"steps": 10.5}, "args.steps"),
        ("demo", {"steps": "ten"}, "args.steps"),
        ("demo", {"stepz": 1}, "args.stepz"),
        ("sleep", {}, "args.seconds"),
        ("no.such.type", {}, "task_type"),
        ("", {}, "task_type"),
    ],
)
async def test_bad_submits_are_invalid_argument_with_the_field_named(
    stub: pb_grpc.TaskServiceStub, server: RunningServer, task_type: str, args: dict, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await submit(stub, task_type, args=args)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(caught.value)
    assert field in caught.value.details()
    listed = await stub.ListTasks(pb.ListTasksRequest())
    assert list(listed.tasks) == [], "nothing stored"


async def test_nan_args_bad_ids_and_bad_time_limits_are_invalid_argument(stub: pb_grpc.TaskServiceStub) -> None:
    cases = [
        pb.SubmitRequest(task_type="demo", args=struct(step_seconds=float("nan"))),
        pb.SubmitRequest(task_type="demo", task_id="bad id!"),
        pb.SubmitRequest(task_type="demo", time_limit=duration_pb2.Duration(seconds=-5)),
        pb.SubmitRequest(task_type="demo", time_limit=duration_pb2.Duration(seconds=0)),
    ]
    for request in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Submit(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request


async def test_submit_with_the_same_id_is_idempotent_and_a_different_request_already_exists(
    stub: pb_grpc.TaskServiceStub,
) -> None:
    first = await submit(stub, "sleep", args={"seconds": 0.01}, task_id="nightly-1")
    again = await submit(stub, "sleep", args={"seconds": 0.01}, task_id="nightly-1")
    assert first.created and not again.created
    assert again.task.task_id == "nightly-1" and again.task.submitted_at == first.task.submitted_at
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await submit(stub, "sleep", args={"seconds": 5}, task_id="nightly-1")
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "nightly-1" in caught.value.details()


async def test_racing_submits_of_one_new_id_create_one_task_and_answer_all(stub: pb_grpc.TaskServiceStub) -> None:
    request = pb.SubmitRequest(task_type="echo", task_id="raced", args=struct(value=1))
    answers = await asyncio.gather(*(stub.Submit(request) for _ in range(32)))
    assert sorted(a.created for a in answers) == [False] * 31 + [True]
    assert {a.task.task_id for a in answers} == {"raced"}


async def test_get_state_of_unknown_and_malformed_ids(stub: pb_grpc.TaskServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetState(pb.GetStateRequest(task_id="never-submitted"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "never-submitted" in caught.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetState(pb.GetStateRequest(task_id=""))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == ["task_id"]


async def test_stop_pending_running_finished_and_unknown(start_server: StartServer) -> None:
    server = await start_server(workers=1)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.TaskServiceStub(channel)
        running = (await submit(stub, "gate", args={"name": "g"})).task.task_id
        await wait_for_state(stub, running, pb.TASK_STATE_RUNNING)
        queued = (await submit(stub, "echo")).task.task_id

        revoked = (await stub.Stop(pb.StopRequest(task_id=queued, reason="not needed"))).task
        assert revoked.state == pb.TASK_STATE_REVOKED and "not needed" in revoked.error.message

        stopping = (await stub.Stop(pb.StopRequest(task_id=running))).task
        assert stopping.state == pb.TASK_STATE_STOPPING
        final = (await watch_all(stub, running))[-1].task
        assert final.state == pb.TASK_STATE_REVOKED

        again = (await stub.Stop(pb.StopRequest(task_id=running))).task
        assert again.state == pb.TASK_STATE_REVOKED and again.ended_at == final.ended_at

        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Stop(pb.StopRequest(task_id="ghost"))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_time_limit_from_the_request_times_the_task_out(stub: pb_grpc.TaskServiceStub) -> None:
    response = await submit(stub, "sleep", args={"seconds": 60}, time_limit=duration_pb2.Duration(nanos=200_000_000))
    assert response.task.time_limit.ToMilliseconds() == 200
    final = (await watch_all(stub, response.task.task_id))[-1].task
    assert final.state == pb.TASK_STATE_TIMED_OUT and final.error.type == "TimeLimitExceeded"


async def test_queue_at_its_bound_is_resource_exhausted(start_server: StartServer) -> None:
    server = await start_server(workers=1, max_queue=1)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.TaskServiceStub(channel)
        running = (await submit(stub, "gate", args={"name": "q"})).task.task_id
        await wait_for_state(stub, running, pb.TASK_STATE_RUNNING)
        await submit(stub, "echo")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await submit(stub, "echo")
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "--max-queue" in caught.value.details()


async def test_a_draining_server_refuses_submits_as_unavailable_and_reports_not_serving(
    server: RunningServer, channel: grpc.aio.Channel, stub: pb_grpc.TaskServiceStub
) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    assert (await health.Check(health_pb2.HealthCheckRequest())).status == health_pb2.HealthCheckResponse.SERVING
    await server.set_serving(False)
    server.manager.begin_shutdown()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await submit(stub, "echo")
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert (await health.Check(health_pb2.HealthCheckRequest())).status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_list_tasks_is_newest_first_pages_stably_and_filters(stub: pb_grpc.TaskServiceStub) -> None:
    ids = []
    for i in range(7):
        labels = {"batch": "even" if i % 2 == 0 else "odd"}
        ids.append((await submit(stub, "echo", args={"value": i}, labels=labels)).task.task_id)
    for task_id in ids:
        await watch_all(stub, task_id)
    first = await stub.ListTasks(pb.ListTasksRequest(page_size=3))
    assert [t.task_id for t in first.tasks] == ids[::-1][:3]
    # A task added between pages does not shift the next page.
    late = (await submit(stub, "echo", labels={"batch": "late"})).task.task_id
    second = await stub.ListTasks(pb.ListTasksRequest(page_size=3, page_token=first.next_page_token))
    assert [t.task_id for t in second.tasks] == ids[::-1][3:6]
    third = await stub.ListTasks(pb.ListTasksRequest(page_size=3, page_token=second.next_page_token))
    assert [t.task_id for t in third.tasks] == ids[:1] and third.next_page_token == ""

    odd = await stub.ListTasks(pb.ListTasksRequest(labels={"batch": "odd"}))
    assert [t.task_id for t in odd.tasks] == [ids[5], ids[3], ids[1]]
    await watch_all(stub, late)
    done = await stub.ListTasks(pb.ListTasksRequest(states=[pb.TASK_STATE_SUCCESS], task_type="echo"))
    assert {t.task_id for t in done.tasks} == {*ids, late}
    failed = await stub.ListTasks(pb.ListTasksRequest(states=[pb.TASK_STATE_FAILURE]))
    assert list(failed.tasks) == []


async def test_list_tasks_rejects_bad_tokens_sizes_and_states(stub: pb_grpc.TaskServiceStub) -> None:
    for request, field in [
        (pb.ListTasksRequest(page_token="garbage!"), "page_token"),
        (pb.ListTasksRequest(page_size=-1), "page_size"),
        (pb.ListTasksRequest(states=[99]), "states"),  # type: ignore[list-item]
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListTasks(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(caught.value) == [field]


async def test_health_and_reflection_are_served(channel: grpc.aio.Channel) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    health = health_pb2_grpc.HealthStub(channel)
    response = await health.Check(health_pb2.HealthCheckRequest(service="taskservice.v1.TaskService"))
    assert response.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    names: list[str] = []
    async for answer in reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    ):
        names.extend(service.name for service in answer.list_services_response.service)
    assert "taskservice.v1.TaskService" in names and "grpc.health.v1.Health" in names
