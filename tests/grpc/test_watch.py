"""WatchProgress over the wire: many watchers, order, replay, disconnects."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from taskservice.server.app import RunningServer
from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc
from tests.grpc.helpers import TERMINAL, eventually, struct, wait_for_state, watch_all
from tests.support.task_types import Gates


def state_changes(events: list[pb.WatchProgressResponse]) -> list[tuple[int, int]]:
    return [(e.sequence, e.state) for e in events if e.HasField("task")]


async def test_200_watchers_see_the_same_ordered_state_changes_and_the_end(
    stub: pb_grpc.TaskServiceStub, server: RunningServer, gates: Gates
) -> None:
    task_id = (await stub.Submit(pb.SubmitRequest(task_type="progress_then_wait", args=struct(name="w")))).task.task_id
    await wait_for_state(stub, task_id, pb.TASK_STATE_RUNNING)
    watches = [asyncio.create_task(watch_all(stub, task_id, timeout=60)) for _ in range(200)]
    await eventually(lambda: server.manager.stats().watchers >= 200, what="200 watchers attached")
    await stub.Stop(pb.StopRequest(task_id=task_id))
    results = await asyncio.gather(*watches)
    expected = [state for _, state in state_changes(results[0])]
    assert expected[-2:] == [pb.TASK_STATE_STOPPING, pb.TASK_STATE_REVOKED]
    for events in results:
        sequences = [e.sequence for e in events]
        assert sequences == sorted(set(sequences)), "sequence only grows"
        assert events[-1].state == pb.TASK_STATE_REVOKED and events[-1].HasField("task")
        # Each watcher may join at a different moment, so compare the state changes after its snapshot.
        changes = [state for _, state in state_changes(events)[1:]]
        assert changes == [pb.TASK_STATE_STOPPING, pb.TASK_STATE_REVOKED]
    await eventually(lambda: server.manager.stats().watchers == 0, what="watchers detached")


async def test_first_event_is_a_snapshot_and_a_finished_task_ends_right_after_it(
    stub: pb_grpc.TaskServiceStub,
) -> None:
    task_id = (await stub.Submit(pb.SubmitRequest(task_type="echo", args=struct(value=1)))).task.task_id
    await watch_all(stub, task_id)
    events = await watch_all(stub, task_id)
    assert len(events) == 1
    assert events[0].state == pb.TASK_STATE_SUCCESS and events[0].task.result.number_value == 1


async def test_resume_after_sequence_replays_what_was_missed(stub: pb_grpc.TaskServiceStub, gates: Gates) -> None:
    task_id = (await stub.Submit(pb.SubmitRequest(task_type="gate", args=struct(name="r")))).task.task_id
    running = await wait_for_state(stub, task_id, pb.TASK_STATE_RUNNING)
    await stub.Stop(pb.StopRequest(task_id=task_id))
    resumed = await watch_all(stub, task_id, after_sequence=running.sequence)
    assert [e.state for e in resumed] == [pb.TASK_STATE_STOPPING, pb.TASK_STATE_REVOKED]
    assert all(e.sequence > running.sequence for e in resumed)


async def test_watch_errors_not_found_out_of_range_invalid(stub: pb_grpc.TaskServiceStub, gates: Gates) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await watch_all(stub, "nobody")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await watch_all(stub, "bad id")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    task_id = (await stub.Submit(pb.SubmitRequest(task_type="gate", args=struct(name="o")))).task.task_id
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await watch_all(stub, task_id, after_sequence=10**9)
    assert caught.value.code() == grpc.StatusCode.OUT_OF_RANGE
    gates.open("o")


async def test_watchers_that_vanish_mid_stream_leave_the_server_healthy(
    channel: grpc.aio.Channel, stub: pb_grpc.TaskServiceStub, server: RunningServer, gates: Gates
) -> None:
    task_id = (await stub.Submit(pb.SubmitRequest(task_type="progress_then_wait", args=struct(name="v")))).task.task_id
    calls = [stub.WatchProgress(pb.WatchProgressRequest(task_id=task_id)) for _ in range(50)]
    for call in calls:
        await call.read()  # the snapshot: the stream is open on the server
    await eventually(lambda: server.manager.stats().watchers == 50, what="50 watchers attached")
    for call in calls:
        call.cancel()
    await eventually(lambda: server.manager.stats().watchers == 0, what="vanished watchers detached")
    health = health_pb2_grpc.HealthStub(channel)
    assert (await health.Check(health_pb2.HealthCheckRequest())).status == health_pb2.HealthCheckResponse.SERVING
    gates.open("v")
    final = (await watch_all(stub, task_id))[-1]
    assert final.state in TERMINAL and final.state == pb.TASK_STATE_SUCCESS


async def test_a_watcher_whose_connection_dies_does_not_disturb_others(
    server: RunningServer, stub: pb_grpc.TaskServiceStub, gates: Gates
) -> None:
    task_id = (await stub.Submit(pb.SubmitRequest(task_type="gate", args=struct(name="c")))).task.task_id
    doomed = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    call = pb_grpc.TaskServiceStub(doomed).WatchProgress(pb.WatchProgressRequest(task_id=task_id))
    await call.read()
    survivor = asyncio.create_task(watch_all(stub, task_id))
    await eventually(lambda: server.manager.stats().watchers == 2, what="both watchers attached")
    await doomed.close(grace=None)
    await eventually(lambda: server.manager.stats().watchers == 1, what="the dead watcher detached")
    gates.open("c")
    events = await survivor
    assert events[-1].state == pb.TASK_STATE_SUCCESS


async def test_resuming_after_the_terminal_event_ends_ok_with_no_events(
    stub: pb_grpc.TaskServiceStub, gates: Gates
) -> None:
    """A watcher that got the terminal event but lost the final OK resumes from it: nothing more, and OK."""
    for task_type, args in (("gate", {"name": "resume-end"}), ("echo", {"value": 1})):
        task_id = (await stub.Submit(pb.SubmitRequest(task_type=task_type, args=struct(**args)))).task.task_id
        watched = asyncio.create_task(watch_all(stub, task_id))
        gates.open("resume-end")
        terminal = (await watched)[-1]
        assert terminal.state in TERMINAL
        assert await watch_all(stub, task_id, after_sequence=terminal.sequence) == []
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await watch_all(stub, task_id, after_sequence=terminal.sequence + 1)
        assert caught.value.code() == grpc.StatusCode.OUT_OF_RANGE
        assert "ahead" in (caught.value.details() or "")
