"""Schedule timing: due times of cron expressions in time zones and of intervals, and the catch-up policies."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from taskservice.core.board import SQLiteBoard
from taskservice.core.board.base import Answer
from taskservice.core.engine.clock import ManualClock
from taskservice.core.engine.scheduling import Scheduler
from taskservice.core.model.errors import InvalidRequest
from taskservice.core.model.models import SubmitOutcome, SubmitSpec, Task, TaskState
from taskservice.core.model.schedules import (
    MAX_CATCH_UP,
    CatchUp,
    Schedule,
    ScheduleSpec,
    check_spec,
    firing_for,
    firing_task_id,
    spec_from_json,
    spec_to_json,
)
from tests.unit.conftest import MakeManager

PARIS = ZoneInfo("Europe/Paris")
TASK = SubmitSpec("echo", {"value": 1})


def at(*fields: int, tz: ZoneInfo = PARIS) -> float:
    return datetime(*fields, tzinfo=tz).timestamp()  # type: ignore[misc]


def every(seconds: float, catch_up: CatchUp = CatchUp.ONCE) -> ScheduleSpec:
    return ScheduleSpec("s", TASK, interval=seconds, catch_up=catch_up)


def test_a_cron_expression_is_read_in_its_time_zone_across_daylight_saving() -> None:
    nightly = ScheduleSpec("nightly", TASK, cron="30 2 * * *", time_zone="Europe/Paris")
    before_spring = nightly.next_after(at(2026, 3, 28, 12))
    assert before_spring == at(2026, 3, 29, 3, 0), "02:30 does not exist that night: the next moment after it"
    assert nightly.next_after(before_spring) == at(2026, 3, 30, 2, 30)
    summer = nightly.next_after(at(2026, 7, 1, 0))
    assert datetime.fromtimestamp(summer, PARIS).utcoffset().total_seconds() == 7200  # type: ignore[union-attr]
    assert summer == at(2026, 7, 1, 2, 30)


def test_a_firing_id_is_the_schedule_id_and_the_due_time_in_utc() -> None:
    assert firing_task_id("nightly", at(2026, 12, 1, 3, 0)) == "nightly:2026-12-01T02:00:00Z"


@pytest.mark.parametrize(
    ("catch_up", "fired"),
    [(CatchUp.ALL, [100.0, 110.0, 120.0, 130.0]), (CatchUp.ONCE, [130.0]), (CatchUp.SKIP, [])],
)
def test_after_downtime_the_catch_up_policy_decides(catch_up: CatchUp, fired: list[float]) -> None:
    schedule = Schedule(every(10.0, catch_up), created_at=90.0, next_due=100.0)
    firing = firing_for(schedule, now=136.0)
    assert firing.due == fired
    assert firing.next_due == 140.0


def test_a_due_time_found_on_time_fires_whatever_the_policy() -> None:
    for catch_up in CatchUp:
        firing = firing_for(Schedule(every(10.0, catch_up), created_at=90.0, next_due=100.0), now=100.3)
        assert firing.due == [100.0] and firing.next_due == 110.0, catch_up


def test_a_catch_up_of_all_keeps_the_latest_ones_and_moves_past_now() -> None:
    schedule = Schedule(every(1.0, CatchUp.ALL), created_at=0.0, next_due=1.0)
    firing = firing_for(schedule, now=5000.5)
    assert len(firing.due) == MAX_CATCH_UP and firing.due[-1] <= 5000.5
    assert firing.next_due > 5000.5


def test_nothing_is_due_before_its_time() -> None:
    firing = firing_for(Schedule(every(10.0), created_at=0.0, next_due=10.0), now=9.9)
    assert firing.due == [] and firing.next_due == 10.0


@pytest.mark.parametrize(
    ("spec", "blamed"),
    [
        (ScheduleSpec("s", TASK, cron="0 0 30 2 *"), "schedule.cron.expression"),
        (ScheduleSpec("s", TASK, cron="every day"), "schedule.cron.expression"),
        (ScheduleSpec("s", TASK, cron="* * * * *", time_zone="Mars/Olympus"), "schedule.cron.time_zone"),
        (ScheduleSpec("s", TASK), "schedule"),
        (ScheduleSpec("s", TASK, cron="* * * * *", interval=60.0), "schedule"),
        (ScheduleSpec("s", TASK, interval=0.5), "schedule.interval"),
        (ScheduleSpec("s" * 101, TASK, interval=60.0), "schedule.schedule_id"),
        (ScheduleSpec("s", SubmitSpec("echo", task_id="fixed"), interval=60.0), "schedule.task"),
        (ScheduleSpec("s", SubmitSpec("echo", after=("a",)), interval=60.0), "schedule.task"),
    ],
)
def test_definitions_that_cannot_run_are_refused_naming_the_field(spec: ScheduleSpec, blamed: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_spec(spec, 1_000_000.0)
    assert [field for field, _ in caught.value.field_violations] == [blamed]


def test_a_definition_survives_its_storage_form() -> None:
    spec = ScheduleSpec(
        "s", SubmitSpec("echo", {"v": [1]}, time_limit=5.0, priority=2, labels={"a": "b"}, retention=0.0),
        cron="*/5 * * * *", time_zone="Asia/Tokyo", catch_up=CatchUp.ALL,
    )  # fmt: skip
    assert spec_from_json("s", spec_to_json(spec)) == spec
    assert spec_from_json("s", spec_to_json(spec)).digest() == spec.digest()


@pytest.mark.parametrize("spec", [every(60.0, CatchUp.ALL), ScheduleSpec("m", TASK, cron="* * * * *",
                                                                           catch_up=CatchUp.ALL)])  # fmt: skip
def test_a_catch_up_of_all_after_5000_missed_minutes_keeps_the_latest_1000(spec: ScheduleSpec) -> None:
    start = at(2026, 11, 1, 0, 0)
    now = start + 5000 * 60 + 30  # 5,001 due times passed, the last 30 s ago
    firing = firing_for(Schedule(spec, created_at=start - 60, next_due=start), now=now)
    assert len(firing.due) == MAX_CATCH_UP
    assert firing.due[-1] == start + 5000 * 60, "the most recent due time is kept"
    assert firing.due[0] == start + 4001 * 60 and firing.due == sorted(firing.due)
    assert firing.next_due == start + 5001 * 60


def test_a_due_time_exactly_now_counts_for_cron_and_interval_alike() -> None:
    start = at(2026, 11, 1, 0, 0)
    for spec in (every(60.0, CatchUp.ALL), ScheduleSpec("m", TASK, cron="* * * * *", catch_up=CatchUp.ALL)):
        firing = firing_for(Schedule(spec, created_at=start - 60, next_due=start), now=start + 120)
        assert firing.due == [start, start + 60, start + 120] and firing.next_due == start + 180, spec


def test_a_year_of_missed_seconds_is_counted_back_from_now_at_once() -> None:
    schedule = Schedule(every(1.0, CatchUp.ALL), created_at=0.0, next_due=1.0)
    firing = firing_for(schedule, now=366 * 86400.0)
    assert firing.due[-1] == 366 * 86400.0 and len(firing.due) == MAX_CATCH_UP


def test_creating_one_schedule_twice_in_the_same_instant_says_created_once(make_manager: MakeManager) -> None:
    manager = make_manager(clock=ManualClock())
    assert manager.schedules.create(every(60.0))[1] is True
    assert manager.schedules.create(every(60.0))[1] is False, "the same clock reading does not make it new"


def test_a_firing_whose_submit_does_not_end_in_time_leaves_the_rest_of_the_pass_to_fire(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("taskservice.core.engine.scheduling.SUBMIT_WAIT_SECONDS", 0.05)
    clock = ManualClock()
    board = SQLiteBoard(tmp_path / "tasks.db")
    submitted: list[str] = []

    def submit_many(requests: Sequence[SubmitSpec]) -> Future[list[Answer]]:
        answered: Future[list[Answer]] = Future()
        if requests[0].task_id.startswith("stuck:"):
            return answered  # never durable
        submitted.extend(request.task_id for request in requests)
        answered.set_result(
            [SubmitOutcome(Task(r.task_id, r.task_type, {}, TaskState.PENDING, 0.0), True) for r in requests]
        )
        return answered

    scheduler = Scheduler(board, clock, submit_many, lambda spec, now: None, poll_seconds=1.0)
    for schedule_id in ("stuck", "works"):
        scheduler.create(ScheduleSpec(schedule_id, TASK, interval=10.0))
    clock.advance(10.0)
    assert scheduler.fire_due() == 2
    assert [task_id.split(":")[0] for task_id in submitted] == ["works"], "the second schedule fired all the same"
    assert scheduler.get("stuck").next_due == clock.time(), "the stuck one fires its due time again next pass"
    board.close()
