"""Schedules over the wire: created, fired at their due times under ids that make one task per due time, paused,
resumed, listed and deleted; definitions that cannot run are INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf import duration_pb2

from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc
from tests.grpc.helpers import eventually_holds, field_violations, struct


def every(schedule_id: str, seconds: int = 1, **task: object) -> pb.Schedule:
    return pb.Schedule(
        schedule_id=schedule_id,
        task=pb.SubmitRequest(task_type="echo", args=struct(**task), labels={"team": "ops"}),
        interval=duration_pb2.Duration(seconds=seconds),
    )


async def fired(stub: pb_grpc.TaskServiceStub, schedule_id: str) -> list[pb.Task]:
    """The tasks a schedule submitted, oldest first."""
    listed = await stub.ListTasks(pb.ListTasksRequest(labels={"schedule": schedule_id}, page_size=1000))
    return list(reversed(listed.tasks))


async def until_fired(stub: pb_grpc.TaskServiceStub, schedule_id: str, count: int) -> list[pb.Task]:
    tasks: list[pb.Task] = []

    async def enough() -> bool:
        tasks[:] = await fired(stub, schedule_id)
        return len(tasks) >= count

    await eventually_holds(enough, 15.0, f"{count} firings of {schedule_id}")
    return tasks


def due_of(task: pb.Task) -> datetime:
    return datetime.strptime(task.task_id.split(":", 1)[1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


async def test_an_interval_schedule_submits_one_task_per_due_time_under_its_id(stub: pb_grpc.TaskServiceStub) -> None:
    tick = every("tick", value=7)
    tick.catch_up = pb.CATCH_UP_ALL  # a firing late under load must not skip a due time this test counts
    created = await stub.CreateSchedule(pb.CreateScheduleRequest(schedule=tick))
    assert created.created and not created.schedule.paused
    assert created.schedule.next_due.ToNanoseconds() > created.schedule.created_at.ToNanoseconds()
    tasks = await until_fired(stub, "tick", 3)
    dues = [due_of(task) for task in tasks]
    assert dues == sorted(set(dues)), "one task per due time"
    assert all((b - a).total_seconds() == 1 for a, b in itertools.pairwise(dues)), dues
    for task in tasks:
        assert task.task_type == "echo" and dict(task.labels) == {"team": "ops", "schedule": "tick"}
    done = await stub.WaitTask(pb.WaitTaskRequest(task_id=tasks[0].task_id, timeout=duration_pb2.Duration(seconds=10)))
    assert done.task.state == pb.TASK_STATE_SUCCESS and done.task.result.number_value == 7
    got = (await stub.GetSchedule(pb.GetScheduleRequest(schedule_id="tick"))).schedule
    assert got.last_task_id.startswith("tick:") and got.last_error == ""
    assert got.next_due.ToNanoseconds() > got.last_due.ToNanoseconds()


async def test_a_cron_schedule_in_a_time_zone_fires_on_its_whole_seconds(stub: pb_grpc.TaskServiceStub) -> None:
    schedule = pb.Schedule(
        schedule_id="every-second",
        task=pb.SubmitRequest(task_type="echo"),
        cron=pb.CronSchedule(expression="* * * * * *", time_zone="Asia/Kolkata"),
    )
    created = (await stub.CreateSchedule(pb.CreateScheduleRequest(schedule=schedule))).schedule
    assert created.cron.time_zone == "Asia/Kolkata" and created.next_due.nanos == 0
    tasks = await until_fired(stub, "every-second", 2)
    assert due_of(tasks[0]).timestamp() >= created.next_due.seconds


async def test_a_paused_schedule_fires_no_more_until_resumed(stub: pb_grpc.TaskServiceStub) -> None:
    await stub.CreateSchedule(pb.CreateScheduleRequest(schedule=every("paused-one")))
    await stub.CreateSchedule(pb.CreateScheduleRequest(schedule=every("clock")))
    await until_fired(stub, "paused-one", 1)
    paused = (await stub.PauseSchedule(pb.PauseScheduleRequest(schedule_id="paused-one"))).schedule
    assert paused.paused
    # A firing under way at the pause may still submit: count once the other schedule has fired since.
    seen = len(await fired(stub, "clock"))
    await until_fired(stub, "clock", seen + 1)
    before = len(await fired(stub, "paused-one"))
    # The other schedule firing twice more shows the scheduler went past the paused one's due times.
    await until_fired(stub, "clock", seen + 3)
    assert len(await fired(stub, "paused-one")) == before
    resumed = (await stub.ResumeSchedule(pb.ResumeScheduleRequest(schedule_id="paused-one"))).schedule
    assert not resumed.paused and resumed.next_due.ToNanoseconds() > paused.next_due.ToNanoseconds()
    await until_fired(stub, "paused-one", before + 1)


async def test_create_again_is_idempotent_list_pages_and_delete_keeps_the_tasks(
    stub: pb_grpc.TaskServiceStub,
) -> None:
    first = await stub.CreateSchedule(pb.CreateScheduleRequest(schedule=every("report", seconds=3600)))
    again = await stub.CreateSchedule(pb.CreateScheduleRequest(schedule=every("report", seconds=3600)))
    assert first.created and not again.created and again.schedule == first.schedule
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateSchedule(pb.CreateScheduleRequest(schedule=every("report", seconds=60)))
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    for name in ("b-hourly", "a-hourly", "c-hourly"):
        await stub.CreateSchedule(pb.CreateScheduleRequest(schedule=every(name, seconds=3600)))
    page = await stub.ListSchedules(pb.ListSchedulesRequest(page_size=2))
    assert [s.schedule_id for s in page.schedules] == ["a-hourly", "b-hourly"] and page.next_page_token
    rest = await stub.ListSchedules(pb.ListSchedulesRequest(page_size=2, page_token=page.next_page_token))
    assert [s.schedule_id for s in rest.schedules] == ["c-hourly", "report"] and not rest.next_page_token
    await stub.CreateSchedule(pb.CreateScheduleRequest(schedule=every("short")))
    tasks = await until_fired(stub, "short", 1)
    deleted = (await stub.DeleteSchedule(pb.DeleteScheduleRequest(schedule_id="short"))).schedule
    assert deleted.schedule_id == "short"
    for call in (stub.GetSchedule(pb.GetScheduleRequest(schedule_id="short")),
                 stub.DeleteSchedule(pb.DeleteScheduleRequest(schedule_id="short"))):  # fmt: skip
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await call
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert (await stub.GetState(pb.GetStateRequest(task_id=tasks[0].task_id))).task.task_id == tasks[0].task_id


def _with(**changes: object) -> pb.Schedule:
    schedule = every("bad")
    for name, value in changes.items():
        if name == "cron":
            schedule.cron.CopyFrom(value)  # type: ignore[arg-type]
        elif name == "task":
            schedule.task.CopyFrom(value)  # type: ignore[arg-type]
        else:
            setattr(schedule, name, value)
    return schedule


@pytest.mark.parametrize(
    ("schedule", "blamed"),
    [
        (_with(cron=pb.CronSchedule(expression="0 0 30 2 *")), "schedule.cron.expression"),
        (_with(cron=pb.CronSchedule(expression="* * * * *", time_zone="Nowhere/City")), "schedule.cron.time_zone"),
        (pb.Schedule(schedule_id="bad", task=pb.SubmitRequest(task_type="echo")), "schedule"),
        (every("bad", seconds=0), "schedule.interval"),
        (every("bad id!"), "schedule.schedule_id"),
        (_with(task=pb.SubmitRequest(task_type="echo", task_id="fixed")), "schedule.task"),
        (_with(task=pb.SubmitRequest(task_type="no-such-type")), "schedule.task.task_type"),
        (_with(task=pb.SubmitRequest(task_type="echo", args=struct(nope=1))), "schedule.task.args.nope"),
    ],
)
async def test_definitions_that_cannot_run_are_invalid_argument_naming_the_field(
    stub: pb_grpc.TaskServiceStub, schedule: pb.Schedule, blamed: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateSchedule(pb.CreateScheduleRequest(schedule=schedule))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == [blamed]
    listed = await stub.ListSchedules(pb.ListSchedulesRequest())
    assert list(listed.schedules) == [], "nothing stored"
