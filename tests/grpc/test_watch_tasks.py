"""WatchTasks against a real server: the events of many tasks in one stream, each as WatchProgress would send
them, resumable per task, by ids or by a filter, ending OK once every task has ended."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import grpc
import pytest

from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc
from tests.grpc.helpers import field_violations, struct, wait_for_state, watch_all
from tests.support.task_types import Gates

TERMINAL = {pb.TASK_STATE_SUCCESS, pb.TASK_STATE_FAILURE, pb.TASK_STATE_REVOKED, pb.TASK_STATE_TIMED_OUT,
            pb.TASK_STATE_LOST}  # fmt: skip


async def submit(stub: pb_grpc.TaskServiceStub, task_type: str, task_id: str = "", **fields: object) -> str:
    labels = fields.pop("labels", {})
    request = pb.SubmitRequest(task_type=task_type, task_id=task_id, args=struct(**fields), labels=labels)
    return (await stub.Submit(request)).task.task_id


async def watch_tasks(stub: pb_grpc.TaskServiceStub, request: pb.WatchTasksRequest) -> list[pb.WatchProgressResponse]:
    return [event async for message in stub.WatchTasks(request, timeout=20) for event in message.events]


async def snapshots_then_rest(
    stub: pb_grpc.TaskServiceStub, request: pb.WatchTasksRequest, snapshots: int, then: Callable[[], None]
) -> list[pb.WatchProgressResponse]:
    """Every event of the stream; `then()` once the first `snapshots` events (one per task) have come."""
    events = []
    called = False
    async for message in stub.WatchTasks(request, timeout=20):
        events.extend(message.events)
        if len(events) >= snapshots and not called:
            called = True
            then()
    return events


def by_task(events: list[pb.WatchProgressResponse]) -> dict[str, list[pb.WatchProgressResponse]]:
    grouped = defaultdict(list)
    for event in events:
        grouped[event.task_id].append(event)
    return grouped


async def test_many_tasks_in_one_stream_each_as_watchprogress_sends_it(
    stub: pb_grpc.TaskServiceStub, gates: Gates
) -> None:
    quick = [await submit(stub, "echo", value=i) for i in range(3)]
    held = await submit(stub, "progress_then_wait", name="held")
    await wait_for_state(stub, held, pb.TASK_STATE_RUNNING)
    request = pb.WatchTasksRequest(task_ids=[*quick, held])
    events = await snapshots_then_rest(stub, request, 4, lambda: gates.open("held"))
    grouped = by_task(events)
    assert set(grouped) == {*quick, held}
    for task_id, own in grouped.items():
        sequences = [event.sequence for event in own]
        assert sequences == sorted(set(sequences)), f"{task_id}: sequences only grow"
        assert own[0].HasField("task"), "each task starts with its snapshot"
        assert own[-1].state in TERMINAL and [e for e in own if e.state in TERMINAL] == [own[-1]]
    assert events[-1].state in TERMINAL, "the stream ends right after the last terminal event"
    single = await watch_all(stub, held)
    assert single[-1].sequence == grouped[held][-1].sequence, "the same events as WatchProgress"


async def test_unknown_ids_are_not_found_unless_they_are_to_be_left_out(stub: pb_grpc.TaskServiceStub) -> None:
    known = await submit(stub, "echo", value=1)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await watch_tasks(stub, pb.WatchTasksRequest(task_ids=[known, "nope-1", "nope-2"]))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "nope-1" in (caught.value.details() or "") and "nope-2" in (caught.value.details() or "")
    events = await watch_tasks(stub, pb.WatchTasksRequest(task_ids=[known, "nope-1"], ignore_missing=True))
    assert {event.task_id for event in events} == {known} and events[-1].state == pb.TASK_STATE_SUCCESS


async def test_a_reconnect_resumes_each_task_after_its_last_sequence(
    stub: pb_grpc.TaskServiceStub, gates: Gates
) -> None:
    first = await submit(stub, "echo", value=1)
    second = await submit(stub, "gate", name="r2")
    await wait_for_state(stub, second, pb.TASK_STATE_RUNNING)
    request = pb.WatchTasksRequest(task_ids=[first, second])
    grouped = by_task(await snapshots_then_rest(stub, request, 2, lambda: gates.open("r2")))
    assert len(grouped[second]) >= 2, "its snapshot (RUNNING), then its end"
    resumed = await watch_tasks(
        stub,
        pb.WatchTasksRequest(
            task_ids=[first, second],
            after_sequences={first: grouped[first][-1].sequence, second: grouped[second][-2].sequence},
        ),
    )
    assert [(e.task_id, e.sequence) for e in resumed] == [(second, grouped[second][-1].sequence)]


async def test_a_filter_watches_the_unfinished_tasks_it_matches_when_the_call_starts(
    stub: pb_grpc.TaskServiceStub, gates: Gates
) -> None:
    batch = [await submit(stub, "gate", name=f"b{i}", labels={"batch": "7"}) for i in range(3)]
    await submit(stub, "gate", name="other", labels={"batch": "8"})
    for task_id in batch:
        await wait_for_state(stub, task_id, pb.TASK_STATE_RUNNING)

    def open_batch() -> None:
        for i in range(3):
            gates.open(f"b{i}")

    events = await snapshots_then_rest(stub, pb.WatchTasksRequest(labels={"batch": "7"}), 3, open_batch)
    assert {event.task_id for event in events} == set(batch)
    assert {own[-1].state for own in by_task(events).values()} == {pb.TASK_STATE_SUCCESS}
    gates.open("other")
    nothing = await watch_tasks(stub, pb.WatchTasksRequest(labels={"batch": "none"}))
    assert nothing == [], "no task matches: the stream ends at once"


@pytest.mark.parametrize(
    ("request_fields", "blamed"),
    [
        ({"task_ids": [f"t{i}" for i in range(10_001)]}, "task_ids"),
        ({"task_ids": ["a"], "task_type": "echo"}, "task_ids"),
        ({}, "task_ids"),
        ({"states": [pb.TASK_STATE_SUCCESS]}, "states"),
        ({"task_ids": ["bad id!"]}, "task_id"),
    ],
)
async def test_requests_that_name_no_tasks_clearly_are_invalid(
    stub: pb_grpc.TaskServiceStub, request_fields: dict[str, object], blamed: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await watch_tasks(stub, pb.WatchTasksRequest(**request_fields))  # type: ignore[arg-type]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert any(field.startswith(blamed) for field in field_violations(caught.value)), field_violations(caught.value)
