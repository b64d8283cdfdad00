"""Limits over the wire: created (idempotently), read, listed, replaced and deleted; obeyed by the server's
claims from the next one; bad definitions are INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import duration_pb2

from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc
from tests.grpc.helpers import eventually_holds, field_violations, struct
from tests.support.task_types import Gates

ONE_PER_SECOND = pb.Rate(count=1, period=duration_pb2.Duration(seconds=1))


def per_customer(limit_id: str = "per-customer", max_running: int = 2, **fields: object) -> pb.Limit:
    return pb.Limit(limit_id=limit_id, task_type="gate", key_label="customer", max_running=max_running, **fields)  # type: ignore[arg-type]


async def states(stub: pb_grpc.TaskServiceStub, *task_ids: str) -> list[int]:
    return [(await stub.GetState(pb.GetStateRequest(task_id=t))).task.state for t in task_ids]


async def gated(stub: pb_grpc.TaskServiceStub, task_id: str, customer: str) -> None:
    await stub.Submit(pb.SubmitRequest(task_id=task_id, task_type="gate", args=struct(name=task_id),
                                       labels={"customer": customer}))  # fmt: skip


async def test_a_limit_is_created_once_read_listed_replaced_and_deleted(stub: pb_grpc.TaskServiceStub) -> None:
    paced = per_customer(rate=pb.Rate(count=10, period=duration_pb2.Duration(seconds=1)), weights={"gold": 3.0})
    created = await stub.CreateLimit(pb.CreateLimitRequest(limit=paced))
    assert created.created and created.limit.on_full == pb.ON_FULL_QUEUE and created.limit.rate.burst == 1
    again = await stub.CreateLimit(pb.CreateLimitRequest(limit=paced))
    assert not again.created and again.limit == created.limit
    with pytest.raises(grpc.aio.AioRpcError) as conflict:
        await stub.CreateLimit(pb.CreateLimitRequest(limit=per_customer(max_running=9)))
    assert conflict.value.code() == grpc.StatusCode.ALREADY_EXISTS and "per-customer" in conflict.value.details()
    for limit_id in ("b", "a"):
        await stub.CreateLimit(pb.CreateLimitRequest(limit=pb.Limit(limit_id=limit_id, max_running=1)))
    first = await stub.ListLimits(pb.ListLimitsRequest(page_size=2))
    assert [limit.limit_id for limit in first.limits] == ["a", "b"] and first.next_page_token
    rest = await stub.ListLimits(pb.ListLimitsRequest(page_size=2, page_token=first.next_page_token))
    assert [limit.limit_id for limit in rest.limits] == ["per-customer"] and not rest.next_page_token
    updated = await stub.UpdateLimit(pb.UpdateLimitRequest(limit=per_customer(max_running=5)))
    assert updated.limit.max_running == 5 and not updated.limit.HasField("rate")
    got = await stub.GetLimit(pb.GetLimitRequest(limit_id="per-customer"))
    assert got.limit == updated.limit and got.limit.created_at == created.limit.created_at
    deleted = await stub.DeleteLimit(pb.DeleteLimitRequest(limit_id="per-customer"))
    assert deleted.limit == updated.limit
    for call in (
        stub.GetLimit(pb.GetLimitRequest(limit_id="per-customer")),
        stub.DeleteLimit(pb.DeleteLimitRequest(limit_id="per-customer")),
        stub.UpdateLimit(pb.UpdateLimitRequest(limit=per_customer())),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await call
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND and "per-customer" in missing.value.details()


@pytest.mark.parametrize(
    ("limit", "field"),
    [
        (pb.Limit(limit_id="x", max_running=-1), "limit.max_running"),
        (pb.Limit(limit_id="x", rate=pb.Rate(count=0, period=ONE_PER_SECOND.period)), "limit.rate.count"),
        (pb.Limit(limit_id="x", rate=pb.Rate(count=5)), "limit.rate.period"),
        (pb.Limit(limit_id="x", max_running=1, on_full=99), "limit.on_full"),  # type: ignore[arg-type]
        (pb.Limit(limit_id="x"), "limit"),
        (pb.Limit(limit_id="bad id!", max_running=1), "limit.limit_id"),
        (pb.Limit(limit_id="x", max_running=1, labels={"k" * 64: "v"}), f"limit.labels[{'k' * 40!r}]"),
        (pb.Limit(limit_id="x", rate=ONE_PER_SECOND, on_full=pb.ON_FULL_STOP_OLDEST), "limit.on_full"),
        (pb.Limit(limit_id="x", max_running=1, weights={"a": 0.0}, key_label="k"), "limit.weights['a']"),
        (pb.Limit(limit_id="x", max_running=1, weights={"a": 2.0}), "limit.weights"),
    ],
)
async def test_a_definition_that_cannot_be_enforced_is_invalid_argument_naming_the_field(
    stub: pb_grpc.TaskServiceStub, limit: pb.Limit, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.CreateLimit(pb.CreateLimitRequest(limit=limit))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(refused.value), (field, refused.value.details())


async def test_the_server_runs_at_most_max_running_of_a_group_and_the_others_meanwhile(
    stub: pb_grpc.TaskServiceStub, gates: Gates
) -> None:
    await stub.CreateLimit(pb.CreateLimitRequest(limit=per_customer(max_running=2)))
    for i in range(4):
        await gated(stub, f"a{i}", "a")
    await gated(stub, "b0", "b")

    async def three_run() -> bool:
        return (await states(stub, "a0", "a1", "b0")).count(pb.TASK_STATE_RUNNING) == 3

    await eventually_holds(three_run, 10.0, "two of a and one of b running")
    # b0 was claimed after every task of a was queued: a2 and a3 were passed over, held back by the limit.
    assert await states(stub, "a2", "a3") == [pb.TASK_STATE_PENDING] * 2
    gates.open("a0")

    async def a2_runs() -> bool:
        return await states(stub, "a2") == [pb.TASK_STATE_RUNNING]

    await eventually_holds(a2_runs, 10.0, "a2 takes a0's place")
    assert await states(stub, "a3") == [pb.TASK_STATE_PENDING]
    await stub.UpdateLimit(pb.UpdateLimitRequest(limit=per_customer(max_running=3)))

    async def a3_runs() -> bool:
        return await states(stub, "a3") == [pb.TASK_STATE_RUNNING]

    await eventually_holds(a3_runs, 10.0, "a raised cap lets a3 start")


async def test_refuse_newest_is_resource_exhausted_naming_the_limit(stub: pb_grpc.TaskServiceStub) -> None:
    full = per_customer("imports", max_running=1, on_full=pb.ON_FULL_REFUSE_NEWEST, max_waiting=1)
    await stub.CreateLimit(pb.CreateLimitRequest(limit=full))
    await gated(stub, "a0", "a")
    await gated(stub, "a1", "a")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await gated(stub, "a2", "a")
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "limit 'imports' is full of customer=a" in refused.value.details()
    await gated(stub, "b0", "b")  # another group has room


async def test_stop_oldest_stops_the_running_task_for_the_newer_one(stub: pb_grpc.TaskServiceStub) -> None:
    latest = per_customer("latest", max_running=1, on_full=pb.ON_FULL_STOP_OLDEST)
    await stub.CreateLimit(pb.CreateLimitRequest(limit=latest))
    await gated(stub, "build-1", "web")

    async def first_runs() -> bool:
        return await states(stub, "build-1") == [pb.TASK_STATE_RUNNING]

    await eventually_holds(first_runs, 10.0, "the first build running")
    await gated(stub, "build-2", "web")

    async def second_runs() -> bool:
        return await states(stub, "build-1", "build-2") == [pb.TASK_STATE_REVOKED, pb.TASK_STATE_RUNNING]

    await eventually_holds(second_runs, 10.0, "the older build stopped, the newer one running")
    stopped = (await stub.GetState(pb.GetStateRequest(task_id="build-1"))).task
    assert "stopped by limit 'latest': newer tasks of customer=web took its place" in stopped.error.message


async def test_get_state_and_list_tasks_say_what_a_pending_task_waits_for(stub: pb_grpc.TaskServiceStub) -> None:
    await stub.CreateLimit(pb.CreateLimitRequest(limit=per_customer(max_running=1)))
    await gated(stub, "a0", "a")
    await gated(stub, "a1", "a")
    await stub.Submit(pb.SubmitRequest(task_id="then", task_type="echo", after=["a0"]))

    async def a0_runs() -> bool:
        return await states(stub, "a0") == [pb.TASK_STATE_RUNNING]

    await eventually_holds(a0_runs, 10.0, "a0 running")
    await gated(stub, "b0", "b")  # a claim after a1 was queued: it passes a1 over

    async def b0_runs() -> bool:
        return await states(stub, "b0") == [pb.TASK_STATE_RUNNING]

    await eventually_holds(b0_runs, 10.0, "b0 running")
    held = (await stub.GetState(pb.GetStateRequest(task_id="a1"))).task
    assert list(held.waiting_for.limit_ids) == ["per-customer"] and not held.waiting_for.task_ids
    held_back = await stub.ListTasks(pb.ListTasksRequest(waiting_for_limit="per-customer"))
    assert [t.task_id for t in held_back.tasks] == ["a1"]
    listed = {t.task_id: t for t in (await stub.ListTasks(pb.ListTasksRequest(page_size=100))).tasks}
    assert list(listed["then"].waiting_for.task_ids) == ["a0"]
    assert not listed["b0"].HasField("waiting_for")
