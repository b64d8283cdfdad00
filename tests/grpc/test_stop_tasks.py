"""StopTasks over the wire: every match stopped as Stop would, counted; no filter needs all=true."""

from __future__ import annotations

import grpc
import pytest

from taskservice.server.app import RunningServer
from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc
from tests.grpc.helpers import field_violations, struct, wait_for_state
from tests.support.task_types import Gates


async def test_stop_tasks_stops_what_matches_and_counts_it(
    stub: pb_grpc.TaskServiceStub, server: RunningServer, gates: Gates
) -> None:
    async def submit(name: str, batch: str) -> str:
        request = pb.SubmitRequest(task_type="gate", args=struct(name=name), labels={"batch": batch})
        return (await stub.Submit(request)).task.task_id

    running = [await submit(f"r{i}", "nightly") for i in range(4)]
    for task_id in running:
        await wait_for_state(stub, task_id, pb.TASK_STATE_RUNNING)
    queued = [await submit(f"q{i}", "nightly") for i in range(2)]  # all 4 workers are busy: these wait
    other = await submit("other", "manual")
    answer = await stub.StopTasks(pb.StopTasksRequest(labels={"batch": "nightly"}, reason="cancelled run"))
    assert (answer.revoked, answer.stopping) == (2, 4)
    for task_id in running + queued:
        task = (await wait_for_state(stub, task_id, pb.TASK_STATE_REVOKED)).task
        assert "cancelled run" in task.error.message
    left = (await stub.GetState(pb.GetStateRequest(task_id=other))).task
    assert left.state in (pb.TASK_STATE_PENDING, pb.TASK_STATE_RUNNING), "a task the filter does not match runs on"
    again = await stub.StopTasks(pb.StopTasksRequest(labels={"batch": "nightly"}))
    assert (again.revoked, again.stopping) == (0, 0), "nothing left to stop"


async def test_stop_tasks_of_pending_ones_only_leaves_the_running_ones(
    stub: pb_grpc.TaskServiceStub, gates: Gates
) -> None:
    busy = (await stub.Submit(pb.SubmitRequest(task_type="gate", args=struct(name="b1")))).task.task_id
    await wait_for_state(stub, busy, pb.TASK_STATE_RUNNING)
    answer = await stub.StopTasks(pb.StopTasksRequest(states=[pb.TASK_STATE_PENDING], all=True))
    assert answer.stopping == 0
    assert (await stub.GetState(pb.GetStateRequest(task_id=busy))).task.state == pb.TASK_STATE_RUNNING


@pytest.mark.parametrize(
    ("request_fields", "blamed"),
    [({}, "all"), ({"states": [pb.TASK_STATE_SUCCESS]}, "states")],
)
async def test_stop_tasks_refuses_no_filter_without_all_and_states_it_cannot_stop(
    stub: pb_grpc.TaskServiceStub, request_fields: dict[str, object], blamed: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.StopTasks(pb.StopTasksRequest(**request_fields))  # type: ignore[arg-type]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == [blamed]
