"""Schedules: a task submitted again and again, on a cron expression in a time zone or at a fixed interval.

A schedule is its definition (what to submit, when, and what to do about due times missed while no server ran)
and its state (paused or not, its next due time, what its last firing did). Each firing submits the task under the
id `<schedule id>:<due time in UTC>`, so a firing that is made twice (a crash between the Submit and moving the
schedule on, or two servers at once) makes one task: the second Submit is the same request under the same id.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

from taskservice.core.engine.validation import TASK_ID_PATTERN
from taskservice.core.model.errors import InvalidRequest
from taskservice.core.model.models import SubmitSpec

# A firing's task id is `<schedule id>:<due time>`, 21 characters after the schedule id; task ids stop at 128.
MAX_SCHEDULE_ID = 100
MIN_INTERVAL_SECONDS = 1.0
MAX_INTERVAL_SECONDS = 366 * 24 * 3600.0
# At most this many missed due times are submitted by one catch-up (CatchUp.ALL); older ones are dropped.
MAX_CATCH_UP = 1000
# A due time found at most this late (or half the schedule's period, if less) is on time, not missed.
ON_TIME_SECONDS = 60.0


class CatchUp(enum.Enum):
    """What a schedule does about due times that passed while no server ran it (or it could not submit)."""

    SKIP = "SKIP"  # none of them; only due times found on time are submitted
    ONCE = "ONCE"  # one task, for the latest of them
    ALL = "ALL"  # one task for each (at most MAX_CATCH_UP, the latest)


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """What a user defines: the task to submit, and when (a cron expression in a time zone, or an interval)."""

    schedule_id: str
    task: SubmitSpec
    cron: str = ""
    time_zone: str = "UTC"
    interval: float | None = None
    catch_up: CatchUp = CatchUp.ONCE

    def digest(self) -> str:
        """A fingerprint: creating a schedule again with the same definition is the same schedule."""
        return hashlib.sha256(json.dumps(spec_to_json(self), sort_keys=True).encode()).hexdigest()

    def next_after(self, when: float) -> float:
        """The first due time strictly after `when` (Unix seconds)."""
        if self.interval is not None:
            return when + self.interval
        start = datetime.fromtimestamp(when, ZoneInfo(self.time_zone))
        return float(croniter(self.cron, start).get_next(datetime).timestamp())


@dataclass(slots=True)
class Schedule:
    spec: ScheduleSpec
    created_at: float
    next_due: float
    paused: bool = False
    # The due time of the last firing, the task it submitted, and why it could not, if it could not.
    last_due: float | None = None
    last_task_id: str = ""
    last_error: str = ""

    @property
    def schedule_id(self) -> str:
        return self.spec.schedule_id

    def copy(self) -> Schedule:
        return replace(self)


@dataclass(frozen=True, slots=True)
class Firing:
    """What one pass over a due schedule does: the due times to submit a task for, and its next due time after."""

    due: list[float] = field(default_factory=list)
    next_due: float = 0.0
    # Due times that passed and are not fired (the catch-up policy skips them; counted up to MAX_CATCH_UP).
    missed: int = 0


def firing_for(schedule: Schedule, now: float) -> Firing:
    """The due times of `schedule` that have come by `now`, as its catch-up policy keeps them, and the next one."""
    spec = schedule.spec
    passed = latest_due_times(spec, schedule.next_due, now, MAX_CATCH_UP)
    if not passed:
        return Firing([], schedule.next_due)
    due = spec.next_after(passed[-1])
    period = spec.next_after(passed[-1]) - passed[-1]
    on_time = min(ON_TIME_SECONDS, max(1.0, period / 2))
    if spec.catch_up is CatchUp.ALL:
        kept = passed[-MAX_CATCH_UP:]
    elif spec.catch_up is CatchUp.ONCE or now - passed[-1] <= on_time:
        kept = passed[-1:]
    else:
        kept = []
    return Firing(kept, due, len(passed) - len(kept))


def latest_due_times(spec: ScheduleSpec, first: float, now: float, most: int) -> list[float]:
    """The latest `most` due times from `first` (itself a due time) to `now`, oldest first: counted back from now,
    so a long downtime costs `most` steps, not one per due time missed (a year of seconds)."""
    if first > now:
        return []
    if spec.interval is not None:
        last = math.floor((now - first) / spec.interval)
        return [first + k * spec.interval for k in range(max(0, last - most + 1), last + 1)]
    zone = ZoneInfo(spec.time_zone)
    times = croniter(spec.cron, datetime.fromtimestamp(now, zone))
    earlier = float(times.get_prev(datetime).timestamp())  # strictly before now: now itself may be due
    found = [exactly_now] if (exactly_now := spec.next_after(earlier)) <= now else []
    while len(found) < most and earlier >= first and (not found or earlier < found[-1]):
        found.append(earlier)
        earlier = float(times.get_prev(datetime).timestamp())
    found.reverse()
    return found


def firing_task_id(schedule_id: str, due: float) -> str:
    return f"{schedule_id}:{datetime.fromtimestamp(due, UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"


def check_spec(spec: ScheduleSpec, now: float) -> float:
    """InvalidRequest naming the field for a definition that cannot be run; else its first due time after `now`."""
    if not TASK_ID_PATTERN.fullmatch(spec.schedule_id) or len(spec.schedule_id) > MAX_SCHEDULE_ID:
        raise InvalidRequest(
            "invalid schedule id",
            [("schedule.schedule_id", f"must be 1-{MAX_SCHEDULE_ID} characters from A-Z a-z 0-9 . _ : -")],
        )
    task = spec.task
    if task.task_id or task.after or task.not_before is not None or task.delay is not None:
        raise InvalidRequest(
            "a schedule's task has no id, dependencies or run-later time of its own",
            [("schedule.task", "leave task_id, after, not_before and delay unset: each firing sets its own id")],
        )
    if bool(spec.cron) == (spec.interval is not None):
        raise InvalidRequest("a schedule needs one of cron or interval", [("schedule", "set cron or interval")])
    if spec.interval is not None:
        if not math.isfinite(spec.interval) or not MIN_INTERVAL_SECONDS <= spec.interval <= MAX_INTERVAL_SECONDS:
            raise InvalidRequest(
                f"interval of {spec.interval} seconds is out of range",
                [("schedule.interval", "must be 1 second to 366 days")],
            )
        return now + spec.interval
    try:
        ZoneInfo(spec.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidRequest(
            f"unknown time zone {spec.time_zone[:60]!r}",
            [("schedule.cron.time_zone", "must be an IANA time zone, e.g. UTC or Europe/Paris")],
        ) from None
    if not croniter.is_valid(spec.cron):
        raise InvalidRequest(
            f"invalid cron expression {spec.cron[:100]!r}",
            [("schedule.cron.expression", "five fields (minute hour day month weekday), or six with seconds last")],
        )
    try:
        return spec.next_after(now)
    except (CroniterBadDateError, CroniterBadCronError):
        raise InvalidRequest(
            f"cron expression {spec.cron[:100]!r} never fires",
            [("schedule.cron.expression", "names no date that exists (e.g. February 30)")],
        ) from None


# ---------------------------------------------------------------------- storage form


def spec_to_json(spec: ScheduleSpec) -> dict[str, Any]:
    task = spec.task
    return {
        "task": {
            "task_type": task.task_type,
            "args": task.args,
            "time_limit": task.time_limit,
            "priority": task.priority,
            "labels": task.labels,
            "retention": task.retention,
        },
        "cron": spec.cron,
        "time_zone": spec.time_zone,
        "interval": spec.interval,
        "catch_up": spec.catch_up.value,
    }


def spec_from_json(schedule_id: str, data: dict[str, Any]) -> ScheduleSpec:
    task = data["task"]
    return ScheduleSpec(
        schedule_id=schedule_id,
        task=SubmitSpec(
            task_type=task["task_type"],
            args=task["args"],
            time_limit=task["time_limit"],
            priority=task["priority"],
            labels=task["labels"],
            retention=task["retention"],
        ),
        cron=data["cron"],
        time_zone=data["time_zone"],
        interval=data["interval"],
        catch_up=CatchUp(data["catch_up"]),
    )


# The columns of a schedule row, in the order of schedule_row(), on both databases.
SCHEDULE_COLUMNS = "schedule_id, definition, paused, next_due, created_at, last_due, last_task_id, last_error"


def schedule_row(schedule: Schedule) -> tuple[Any, ...]:
    """(id, definition JSON, paused, next due, created, last due, last task id, last error): both databases."""
    return (
        schedule.schedule_id, json.dumps(spec_to_json(schedule.spec), separators=(",", ":")), schedule.paused,
        schedule.next_due, schedule.created_at, schedule.last_due, schedule.last_task_id, schedule.last_error,
    )  # fmt: skip


def schedule_from_row(row: Any) -> Schedule:
    schedule_id, definition, paused, next_due, created_at, last_due, last_task_id, last_error = row
    data = definition if isinstance(definition, dict) else json.loads(definition)
    return Schedule(
        spec_from_json(schedule_id, data),
        created_at=created_at,
        next_due=next_due,
        paused=bool(paused),
        last_due=last_due,
        last_task_id=last_task_id or "",
        last_error=last_error or "",
    )
