"""Misbehaving handlers, through a real in-process server: each ends its own task clearly (or is abandoned)
while tasks submitted alongside run to SUCCESS and the service stays fine for everyone."""

from __future__ import annotations

import asyncio

import pytest
from google.protobuf import duration_pb2

from taskservice.server.app import RunningServer
from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc
from tests.faults.conftest import StartServer
from tests.faults.helpers import (
    assert_service_fine,
    connect,
    final,
    get,
    list_all,
    state_name,
    submit,
    wait_state,
    watch_to_end,
)
from tests.grpc.helpers import eventually, struct
from tests.support.fault_task_types import MIB, Probe
from tests.support.task_types import Gates

# How long a task that should end at once may take before the test calls it stuck.
STUCK_SECONDS = 3.0


async def submit_bystanders(stub: pb_grpc.TaskServiceStub, count: int = 3) -> list[str]:
    return [await submit(stub, "demo", steps=2, step_seconds=0.01) for _ in range(count)]


async def assert_bystanders_succeed(stub: pb_grpc.TaskServiceStub, task_ids: list[str]) -> None:
    for task_id in task_ids:
        task = await final(stub, task_id)
        assert task.state == pb.TASK_STATE_SUCCESS, f"bystander {task_id} ended {state_name(task.state)}"
        assert task.progress.percent == 100


def error_of(task: pb.Task) -> str:
    return f"{task.error.type}: {task.error.message}"


# ---------------------------------------------------------------------------------------------------------------
# A handler that never returns and ignores stop


async def test_a_handler_that_ignores_stop_is_abandoned_after_the_grace_and_capacity_is_restored(
    start_server: StartServer, gates: Gates
) -> None:
    grace = 0.3
    running = await start_server(workers=2, stop_grace=grace)
    async with connect(running) as stub:
        stopped = await submit(stub, "stubborn", name="stopped", seconds=60)
        limited = (
            await stub.Submit(
                pb.SubmitRequest(
                    task_type="stubborn",
                    args=struct(name="limited", seconds=60),
                    time_limit=duration_pb2.Duration(nanos=300_000_000),
                )
            )
        ).task.task_id
        for task_id in (stopped, limited):
            await wait_state(stub, task_id, {pb.TASK_STATE_RUNNING, pb.TASK_STATE_STOPPING})
        # Both workers are held by handlers that will never look at a stop.
        bystanders = await submit_bystanders(stub, 4)
        await stub.Stop(pb.StopRequest(task_id=stopped, reason="enough"))

        revoked = await final(stub, stopped, timeout=grace + STUCK_SECONDS)
        assert revoked.state == pb.TASK_STATE_REVOKED, error_of(revoked)
        assert "abandoned" in revoked.error.message and "enough" in revoked.error.message
        timed_out = await final(stub, limited, timeout=grace + STUCK_SECONDS)
        assert timed_out.state == pb.TASK_STATE_TIMED_OUT, error_of(timed_out)
        assert timed_out.error.type == "TimeLimitExceeded" and "abandoned" in timed_out.error.message

        # Fresh workers took the place of the two stuck threads: the queued tasks run while those still hang.
        await assert_bystanders_succeed(stub, bystanders)
        stats = running.manager.stats()
        assert (stats.workers, stats.abandoned_handlers) == (2, 2), stats

        # The handlers return at last: their late result is discarded and their threads end.
        gates.open("stopped")
        gates.open("limited")
        await eventually(lambda: running.manager.stats().abandoned_handlers == 0, what="abandoned threads ended")
        for task_id, state in ((stopped, pb.TASK_STATE_REVOKED), (limited, pb.TASK_STATE_TIMED_OUT)):
            late = await get(stub, task_id)
            assert late.state == state and not late.HasField("result"), "the late result is discarded"
        assert running.manager.stats().workers == 2
        await assert_service_fine(running, stub)


# ---------------------------------------------------------------------------------------------------------------
# A handler that passes bad values to ctx.progress()


@pytest.mark.parametrize(
    "kind",
    [
        "nan",
        "infinity",
        "string_percent",
        pytest.param("string_current"),
    ],
)
async def test_a_non_number_progress_fails_the_task_clearly(
    kind: str, server: RunningServer, stub: pb_grpc.TaskServiceStub
) -> None:
    bad = await submit(stub, "bad_progress", kind=kind)
    bystanders = await submit_bystanders(stub)
    task = await final(stub, bad, timeout=STUCK_SECONDS)
    assert task.state == pb.TASK_STATE_FAILURE, f"{kind}: {state_name(task.state)}"
    assert "progress" in task.error.message.lower(), f"the error should say progress was wrong: {error_of(task)}"
    events = await watch_to_end(stub, bad)
    assert [e.state for e in events] == [pb.TASK_STATE_FAILURE]
    await assert_bystanders_succeed(stub, bystanders)
    await assert_service_fine(server, stub)


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("huge_current"),
        pytest.param("surrogate_message"),
    ],
)
async def test_progress_the_wire_cannot_carry_ends_the_task_and_leaves_it_readable(
    kind: str, server: RunningServer, stub: pb_grpc.TaskServiceStub
) -> None:
    """Refused with a clear error (FAILURE) or cleaned up (SUCCESS): either way the task ends and can be read."""
    bad = await submit(stub, "bad_progress", kind=kind)
    bystanders = await submit_bystanders(stub)
    task = await final(stub, bad, timeout=STUCK_SECONDS)
    if task.state == pb.TASK_STATE_FAILURE:
        assert "progress" in task.error.message.lower(), error_of(task)
    else:
        assert task.state == pb.TASK_STATE_SUCCESS and task.result.string_value == "accepted"
    await watch_to_end(stub, bad)
    await assert_bystanders_succeed(stub, bystanders)
    await assert_service_fine(server, stub)


# ---------------------------------------------------------------------------------------------------------------
# A handler that returns something JSON (or protobuf) cannot carry


@pytest.mark.parametrize("kind", ["object", "nan", "infinity", "set", "bytes"])
async def test_a_result_that_is_not_json_is_a_failure(
    kind: str, server: RunningServer, stub: pb_grpc.TaskServiceStub
) -> None:
    bad = await submit(stub, "returns", kind=kind)
    bystanders = await submit_bystanders(stub)
    task = await final(stub, bad)
    assert task.state == pb.TASK_STATE_FAILURE, f"{kind}: {state_name(task.state)}"
    assert task.error.type == "ResultNotJSON", error_of(task)
    assert "JSON" in task.error.message
    await assert_bystanders_succeed(stub, bystanders)
    await assert_service_fine(server, stub)


async def test_a_result_over_1_mib_is_a_failure_that_says_so_and_one_under_it_is_kept_whole(
    server: RunningServer, stub: pb_grpc.TaskServiceStub
) -> None:
    huge = await submit(stub, "returns", kind="huge")
    under = await submit(stub, "returns", kind="just_under_limit")
    bystanders = await submit_bystanders(stub)
    task = await final(stub, huge)
    assert task.state == pb.TASK_STATE_FAILURE, state_name(task.state)
    assert str(MIB) in task.error.message and "bytes" in task.error.message, error_of(task)
    assert not task.HasField("result")
    kept = await final(stub, under)
    assert kept.state == pb.TASK_STATE_SUCCESS, error_of(kept)
    assert kept.result.string_value == "y" * (MIB - 100)
    await assert_bystanders_succeed(stub, bystanders)
    await assert_service_fine(server, stub)


@pytest.mark.parametrize(
    "kind",
    [
        "int_keys",
        "big_int",
        "too_deep",
        "surrogate",
    ],
)
async def test_a_result_protobuf_cannot_carry_is_refused_not_stored_unreadable(
    kind: str, server: RunningServer, stub: pb_grpc.TaskServiceStub, gates: Gates
) -> None:
    """json.dumps takes it but the wire cannot: the task must still be readable (FAILURE ResultNotJSON, or a
    SUCCESS whose result GetState, ListTasks and WatchProgress can send), by a watcher who sees it end too."""
    bad = await submit(stub, "returns", kind=kind, gate=kind)
    await wait_state(stub, bad, {pb.TASK_STATE_RUNNING})
    watching = asyncio.create_task(watch_to_end(stub, bad))
    await eventually(lambda: server.manager.stats().watchers == 1, what="the watcher is attached")
    gates.open(kind)
    bystanders = await submit_bystanders(stub)
    seen_end = (await watching)[-1]
    task = await final(stub, bad)
    assert seen_end.task == task, "the watcher saw the end every reader sees"
    if task.state == pb.TASK_STATE_FAILURE:
        assert task.error.type == "ResultNotJSON", error_of(task)
    else:
        assert task.state == pb.TASK_STATE_SUCCESS, state_name(task.state)
    await watch_to_end(stub, bad)
    await assert_bystanders_succeed(stub, bystanders)
    await assert_service_fine(server, stub)  # lists every task, this one included


# ---------------------------------------------------------------------------------------------------------------
# A handler that raises what is not an Exception, or an exception that cannot be shown


@pytest.mark.parametrize(
    ("kind", "error_type"),
    [
        ("sys_exit", "SystemExit"),
        ("keyboard_interrupt", "KeyboardInterrupt"),
        pytest.param("unprintable", "UnprintableError"),
        pytest.param("surrogate_message", "ValueError"),
    ],
)
async def test_a_handler_raising_the_unusual_fails_its_task_and_its_worker_survives(
    kind: str, error_type: str, start_server: StartServer, probe: Probe
) -> None:
    running = await start_server(workers=1)
    async with connect(running) as stub:
        before = await final(stub, await submit(stub, "whoami"))
        bad = await submit(stub, "raises", kind=kind)
        after = await submit(stub, "whoami")
        bystanders = await submit_bystanders(stub)
        task = await final(stub, bad, timeout=STUCK_SECONDS)
        assert task.state == pb.TASK_STATE_FAILURE, f"{kind}: {state_name(task.state)}"
        assert task.error.type == error_type, error_of(task)
        assert task.error.traceback, "a traceback to debug with"
        assert probe.threads[bad] == before.result.string_value
        # The one worker thread itself lived on (it was not replaced, nothing was abandoned).
        survivor = await final(stub, after)
        assert survivor.result.string_value == before.result.string_value
        assert running.manager.stats().workers == 1 and running.manager.stats().abandoned_handlers == 0
        await assert_bystanders_succeed(stub, bystanders)
        await assert_service_fine(running, stub)


# ---------------------------------------------------------------------------------------------------------------
# A handler whose threads outlive it


async def test_a_handler_whose_thread_keeps_reporting_after_it_returned_still_succeeds_and_stays_done(
    start_server: StartServer, probe: Probe, gates: Gates
) -> None:
    running = await start_server(workers=1)
    async with connect(running) as stub:
        leaky = await submit(stub, "leaks_thread", name="leak")
        done = await final(stub, leaky)
        assert done.state == pb.TASK_STATE_SUCCESS, error_of(done)
        reports_at_end = probe.count("leak:reports")
        # Its thread goes on calling ctx.progress() and ctx.log() on a finished task.
        await eventually(lambda: probe.count("leak:reports") >= reports_at_end + 100, what="the leaked thread ran on")
        bystanders = await submit_bystanders(stub, 4)
        await assert_bystanders_succeed(stub, bystanders)
        later = await get(stub, leaky)
        assert later.state == pb.TASK_STATE_SUCCESS
        assert later.progress == done.progress, "a finished task's progress never moves again"
        assert later.ended_at == done.ended_at and later.result == done.result
        events = await watch_to_end(stub, leaky)
        assert len(events) == 1 and events[0].state == pb.TASK_STATE_SUCCESS and events[0].progress == done.progress
        assert [t.state for t in await list_all(stub) if t.task_id == leaky] == [pb.TASK_STATE_SUCCESS]
        await assert_service_fine(running, stub)
        gates.open("leak")  # lets the leaked thread end
