"""Schedules between the wire and the engine."""

from __future__ import annotations

import base64
import binascii

from taskservice.core.model.errors import InvalidRequest
from taskservice.core.model.schedules import CatchUp, Schedule, ScheduleSpec
from taskservice.server.convert import (
    duration_seconds,
    duration_to_proto,
    submit_spec_from_proto,
    timestamp_to_proto,
)
from taskservice.v1 import task_service_pb2 as pb

_CATCH_UP_FROM_PROTO = {
    pb.CATCH_UP_UNSPECIFIED: CatchUp.ONCE,
    pb.CATCH_UP_SKIP: CatchUp.SKIP,
    pb.CATCH_UP_ONCE: CatchUp.ONCE,
    pb.CATCH_UP_ALL: CatchUp.ALL,
}
_CATCH_UP_TO_PROTO = {
    CatchUp.SKIP: pb.CATCH_UP_SKIP,
    CatchUp.ONCE: pb.CATCH_UP_ONCE,
    CatchUp.ALL: pb.CATCH_UP_ALL,
}
_PAGE_TOKEN_PREFIX = "after:"


def schedule_spec_from_proto(message: pb.Schedule) -> tuple[ScheduleSpec, bool]:
    """The definition of a CreateSchedule, and whether it is created paused."""
    if message.catch_up not in _CATCH_UP_FROM_PROTO:
        raise InvalidRequest(f"unknown catch_up {message.catch_up}", [("schedule.catch_up", "SKIP, ONCE or ALL")])
    when = message.WhichOneof("when")
    spec = ScheduleSpec(
        schedule_id=message.schedule_id,
        task=submit_spec_from_proto(message.task),
        cron=message.cron.expression if when == "cron" else "",
        time_zone=(message.cron.time_zone or "UTC") if when == "cron" else "UTC",
        interval=duration_seconds(message.interval) if when == "interval" else None,
        catch_up=_CATCH_UP_FROM_PROTO[message.catch_up],
    )
    if when == "cron" and not spec.cron:
        raise InvalidRequest("an empty cron expression", [("schedule.cron.expression", "must not be empty")])
    return spec, message.paused


# How many of a schedule's next due times its messages carry.
UPCOMING = 5


def upcoming(schedule: Schedule) -> list[float]:
    """The next UPCOMING due times from next_due on (none while paused)."""
    if schedule.paused:
        return []
    due = [schedule.next_due]
    while len(due) < UPCOMING:
        due.append(schedule.spec.next_after(due[-1]))
    return due


def schedule_to_proto(schedule: Schedule) -> pb.Schedule:
    spec, task = schedule.spec, schedule.spec.task
    message = pb.Schedule(
        schedule_id=schedule.schedule_id,
        task=pb.SubmitRequest(
            task_type=task.task_type,
            time_limit=duration_to_proto(task.time_limit),
            priority=task.priority,
            labels=task.labels,
            retention=duration_to_proto(task.retention),
        ),
        catch_up=_CATCH_UP_TO_PROTO[spec.catch_up],
        paused=schedule.paused,
        next_due=timestamp_to_proto(schedule.next_due),
        created_at=timestamp_to_proto(schedule.created_at),
        last_due=timestamp_to_proto(schedule.last_due),
        last_task_id=schedule.last_task_id,
        last_error=schedule.last_error,
        upcoming=[stamp for stamp in map(timestamp_to_proto, upcoming(schedule)) if stamp is not None],
    )
    message.task.args.update(task.args)
    if spec.interval is not None:
        message.interval.FromNanoseconds(round(spec.interval * 1e9))
    else:
        message.cron.CopyFrom(pb.CronSchedule(expression=spec.cron, time_zone=spec.time_zone))
    return message


def encode_id_page_token(after_id: str) -> str:
    return base64.urlsafe_b64encode(f"{_PAGE_TOKEN_PREFIX}{after_id}".encode()).decode() if after_id else ""


def decode_id_page_token(token: str) -> str:
    """The id (of a schedule, a limit) a page continues after; InvalidRequest for a token no response gave."""
    if not token:
        return ""
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeError, ValueError):
        text = ""
    if not text.startswith(_PAGE_TOKEN_PREFIX):
        raise InvalidRequest("invalid page_token", [("page_token", "pass next_page_token from a previous response")])
    return text.removeprefix(_PAGE_TOKEN_PREFIX)
