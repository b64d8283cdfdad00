"""Conversion between protobuf messages and the client's plain data, and the requests built from plain arguments."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format, struct_pb2

from taskservice.client.models import Progress, Task, TaskError, TaskEvent, TaskPage, TaskState
from taskservice.client.wire import duration_to_seconds, seconds_to_duration, timestamp_to_datetime
from taskservice.v1 import task_service_pb2 as pb

_STATE_PREFIX = "TASK_STATE_"
# Doubles with an integral value up to 2**53 are shown as ints: a Struct carries every number as a
# double, so `steps: 10` comes back as 10.0, which reads wrongly in Python and in JSON output.
_MAX_EXACT_INT = 2**53


def _normalize_numbers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) <= _MAX_EXACT_INT:
        return int(value)
    if isinstance(value, dict):
        return {k: _normalize_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalize_numbers(v) for v in value]
    return value


def struct_to_dict(s: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as a dict; integral numbers come back as ints (a Struct carries only doubles)."""
    result: dict[str, Any] = _normalize_numbers(json_format.MessageToDict(s))
    return result


def dict_to_struct(data: Mapping[str, Any] | None) -> struct_pb2.Struct:
    """A JSON-like mapping as a Struct; raises TypeError/ValueError for values JSON cannot carry."""
    s = struct_pb2.Struct()
    if data:
        s.update(dict(data))
    return s


def value_to_python(v: struct_pb2.Value) -> Any:
    """A Value as a Python value (None, bool, number, str, list, dict)."""
    if v.WhichOneof("kind") is None:
        return None
    return _normalize_numbers(json_format.MessageToDict(v))


def state_from_pb(value: int) -> TaskState:
    """A TaskState enum number as TaskState; unknown numbers become UNSPECIFIED."""
    try:
        name = pb.TaskState.Name(value)  # type: ignore[arg-type]
    except ValueError:
        return TaskState.UNSPECIFIED
    return TaskState.__members__.get(name.removeprefix(_STATE_PREFIX), TaskState.UNSPECIFIED)


def state_to_pb(state: TaskState | str) -> pb.TaskState.ValueType:
    """A TaskState (or its name, any case) as the protobuf enum number."""
    name = state.value if isinstance(state, TaskState) else TaskState(state.upper()).value
    return pb.TaskState.Value(_STATE_PREFIX + name)


def progress_from_pb(p: pb.Progress) -> Progress:
    """A Progress message as Progress."""
    return Progress(
        percent=p.percent,
        message=p.message,
        current=p.current,
        total=p.total,
        updated_at=timestamp_to_datetime(p.updated_at) if p.HasField("updated_at") else None,
    )


def task_from_pb(t: pb.Task) -> Task:
    """A Task message as Task."""

    def when(name: str) -> datetime | None:
        return timestamp_to_datetime(getattr(t, name)) if t.HasField(name) else None  # type: ignore[arg-type]

    return Task(
        task_id=t.task_id,
        task_type=t.task_type,
        args=struct_to_dict(t.args),
        state=state_from_pb(t.state),
        progress=progress_from_pb(t.progress),
        result=value_to_python(t.result) if t.HasField("result") else None,
        error=TaskError(t.error.type, t.error.message, t.error.traceback) if t.HasField("error") else None,
        submitted_at=when("submitted_at"),
        started_at=when("started_at"),
        ended_at=when("ended_at"),
        time_limit=duration_to_seconds(t.time_limit) if t.HasField("time_limit") else None,
        priority=t.priority,
        labels=dict(t.labels),
        attempt=t.attempt,
        scheduled_at=when("scheduled_at"),
        retention=duration_to_seconds(t.retention) if t.HasField("retention") else None,
        after=tuple(t.after),
        waiting_for_limits=tuple(t.waiting_for.limit_ids),
        waiting_for_tasks=tuple(t.waiting_for.task_ids),
        parent_id=t.parent_id,
        detached=t.detached,
        wire=t,
    )


def event_from_pb(e: pb.WatchProgressResponse) -> TaskEvent:
    """A WatchProgressResponse as TaskEvent."""
    return TaskEvent(
        task_id=e.task_id,
        sequence=e.sequence,
        state=state_from_pb(e.state),
        progress=progress_from_pb(e.progress),
        time=timestamp_to_datetime(e.time) if e.HasField("time") else None,
        task=task_from_pb(e.task) if e.HasField("task") else None,
        wire=e,
    )


def page_from_pb(r: pb.ListTasksResponse) -> TaskPage:
    """A ListTasksResponse as TaskPage."""
    return TaskPage(tasks=[task_from_pb(t) for t in r.tasks], next_page_token=r.next_page_token)


def submit_request(
    task_type: str,
    args: Mapping[str, Any] | None = None,
    *,
    task_id: str | None = None,
    time_limit: float | None = None,
    priority: int = 0,
    labels: Mapping[str, str] | None = None,
    not_before: datetime | None = None,
    delay: float | None = None,
    retention: float | None = None,
    after: Iterable[str] = (),
) -> pb.SubmitRequest:
    """The SubmitRequest for these arguments; time_limit in seconds, None for the server default. To run later:
    `not_before` (an aware datetime) or `delay` (seconds), not both. To run after other tasks succeeded: `after`,
    their ids."""
    if isinstance(after, str):
        raise TypeError("after takes a list of task ids, not one string")
    req = pb.SubmitRequest(
        task_type=task_type,
        args=dict_to_struct(args),
        task_id=task_id or "",
        priority=priority,
        labels=dict(labels or {}),
        after=list(after),
    )
    if time_limit is not None:
        req.time_limit.CopyFrom(seconds_to_duration(time_limit))
    if not_before is not None:
        req.not_before.FromDatetime(_aware(not_before, "not_before"))
    if delay is not None:
        req.delay.CopyFrom(seconds_to_duration(delay))
    if retention is not None:
        req.retention.CopyFrom(seconds_to_duration(retention))
    return req


def list_request(
    *,
    states: Iterable[TaskState | str] = (),
    task_type: str = "",
    labels: Mapping[str, str] | None = None,
    page_size: int = 100,
    page_token: str = "",
    scheduled: bool = False,
    waiting_for_limit: str = "",
    parent_id: str = "",
    search: str = "",
    submitted_after: datetime | None = None,
    submitted_before: datetime | None = None,
    depends_on: str = "",
    order_by: str = "",
) -> pb.ListTasksRequest:
    """The ListTasksRequest for these filters; states may be TaskState or names. `scheduled`: only PENDING tasks
    with a scheduled_at; `waiting_for_limit`: only PENDING tasks that limit holds back; `parent_id`: only the
    children of that task; `search`: an id prefix, or text in the args or the error; `submitted_after` and
    `submitted_before` (aware datetimes): a time range; `depends_on`: the tasks that run after that one;
    `order_by`: "submitted_at", "started_at", "ended_at" or "duration", with " asc" or " desc"."""
    req = pb.ListTasksRequest(
        page_size=page_size,
        page_token=page_token,
        states=[state_to_pb(s) for s in states],
        task_type=task_type,
        labels=dict(labels or {}),
        scheduled=scheduled,
        waiting_for_limit=waiting_for_limit,
        parent_id=parent_id,
        search=search,
        depends_on=depends_on,
        order_by=order_by,
    )
    if submitted_after is not None:
        req.submitted_after.FromDatetime(_aware(submitted_after, "submitted_after"))
    if submitted_before is not None:
        req.submitted_before.FromDatetime(_aware(submitted_before, "submitted_before"))
    return req


def _aware(when: datetime, name: str) -> datetime:
    if when.tzinfo is None:
        raise ValueError(f"{name} must be an aware datetime (e.g. datetime.now(UTC) - timedelta(hours=1))")
    return when.astimezone(UTC)
