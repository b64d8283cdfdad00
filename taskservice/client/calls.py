"""Each unary call as a descriptor (stub method, request, conversion of the answer), built once for both clients."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import grpc

from taskservice.client.convert import (
    list_request,
    page_from_pb,
    progress_from_pb,
    state_from_pb,
    struct_to_dict,
    submit_request,
    task_from_pb,
    value_to_python,
)
from taskservice.client.errors import ERROR_CLASSES, TaskServiceError
from taskservice.client.models import (
    HistoryEntry,
    LimitCount,
    MinuteCounts,
    Node,
    Schedule,
    SchedulePage,
    ScheduleResult,
    Stats,
    StopCount,
    SubmitResult,
    Task,
    TaskArgInfo,
    TaskCount,
    TaskPage,
    TaskTypeInfo,
)
from taskservice.client.wire import Unary, duration_to_seconds, seconds_to_duration, timestamp_to_datetime
from taskservice.handles import TaskCall
from taskservice.v1 import task_service_pb2 as pb


def submit_call(task_type: str, args: Mapping[str, Any] | None, **options: Any) -> Unary[SubmitResult]:
    return Unary(
        "Submit",
        submit_request(task_type, args, **options),
        lambda r: SubmitResult(task=task_from_pb(r.task), created=r.created),
    )


# Most requests one SubmitBatch call carries (the server's limit).
MAX_BATCH = 10_000


def _batch_result(result: pb.SubmitBatchResult) -> SubmitResult | TaskServiceError:
    if result.error_code:
        code = next((c for c in grpc.StatusCode if c.value[0] == result.error_code), grpc.StatusCode.UNKNOWN)
        violations = [(v.field, v.description) for v in result.field_violations]
        return ERROR_CLASSES.get(code, TaskServiceError)(result.error_message, code=code, field_violations=violations)
    return SubmitResult(task=task_from_pb(result.task), created=result.created)


def as_submit_request(request: pb.SubmitRequest | TaskCall[Any]) -> pb.SubmitRequest:
    """A bound handle's SubmitRequest; a SubmitRequest as it is."""
    if isinstance(request, TaskCall):
        return submit_request(request.task_type, request.args, **request.options)
    return request


def typed_calls(requests: Sequence[pb.SubmitRequest | TaskCall[Any]]) -> list[TaskCall[Any]]:
    """The bound handles of a batch (none for SubmitRequests); TypeError when it mixes both (their results differ)."""
    calls = [r for r in requests if isinstance(r, TaskCall)]
    if calls and len(calls) != len(requests):
        raise TypeError("submit_batch takes bound handles (handle.bind(...)) or SubmitRequests, not both at once")
    return calls


def batch_call(requests: Sequence[pb.SubmitRequest]) -> Unary[list[SubmitResult | TaskServiceError]]:
    return Unary(
        "SubmitBatch",
        pb.SubmitBatchRequest(requests=requests),
        lambda r: [_batch_result(result) for result in r.results],
    )


def get_call(task_id: str) -> Unary[Task]:
    return Unary("GetState", pb.GetStateRequest(task_id=task_id), lambda r: task_from_pb(r.task))


def stop_call(task_id: str, reason: str) -> Unary[Task]:
    return Unary("Stop", pb.StopRequest(task_id=task_id, reason=reason), lambda r: task_from_pb(r.task))


def stop_tasks_call(reason: str, everything: bool, **filters: Any) -> Unary[StopCount]:
    listed = list_request(**filters)
    request = pb.StopTasksRequest(
        states=listed.states,
        task_type=listed.task_type,
        labels=listed.labels,
        scheduled=listed.scheduled,
        reason=reason,
        all=everything,
    )
    return Unary("StopTasks", request, lambda r: StopCount(revoked=r.revoked, stopping=r.stopping))


def delete_call(task_id: str) -> Unary[Task]:
    return Unary("DeleteTask", pb.DeleteTaskRequest(task_id=task_id), lambda r: task_from_pb(r.task))


def delete_tasks_call(ended_before: datetime | None, everything: bool, **filters: Any) -> Unary[int]:
    listed = list_request(**filters)
    request = pb.DeleteTasksRequest(
        states=listed.states, task_type=listed.task_type, labels=listed.labels, all=everything
    )
    if ended_before is not None:
        if ended_before.tzinfo is None:
            raise ValueError("ended_before must be an aware datetime")
        request.ended_before.FromDatetime(ended_before.astimezone(UTC))
    return Unary("DeleteTasks", request, lambda r: int(r.deleted))


def retry_call(task_id: str, reason: str) -> Unary[Task]:
    return Unary("RetryTask", pb.RetryTaskRequest(task_id=task_id, reason=reason), lambda r: task_from_pb(r.task))


def schedule_from_pb(s: pb.Schedule) -> Schedule:
    """A pb.Schedule as Schedule."""

    def when(name: str) -> datetime | None:
        return timestamp_to_datetime(getattr(s, name)) if s.HasField(name) else None  # type: ignore[arg-type]

    task = s.task
    return Schedule(
        schedule_id=s.schedule_id,
        task_type=task.task_type,
        args=struct_to_dict(task.args),
        cron=s.cron.expression if s.HasField("cron") else "",
        time_zone=s.cron.time_zone if s.HasField("cron") else "",
        interval=duration_to_seconds(s.interval) if s.HasField("interval") else None,
        catch_up=pb.CatchUp.Name(s.catch_up).removeprefix("CATCH_UP_"),
        paused=s.paused,
        next_due=when("next_due"),
        created_at=when("created_at"),
        last_due=when("last_due"),
        last_task_id=s.last_task_id,
        last_error=s.last_error,
        time_limit=duration_to_seconds(task.time_limit) if task.HasField("time_limit") else None,
        priority=task.priority,
        labels=dict(task.labels),
        retention=duration_to_seconds(task.retention) if task.HasField("retention") else None,
        upcoming=tuple(timestamp_to_datetime(due) for due in s.upcoming),
        wire=s,
    )


def schedule_request(
    schedule_id: str,
    task_type: str,
    args: Mapping[str, Any] | None = None,
    *,
    cron: str = "",
    time_zone: str = "",
    interval: float | None = None,
    catch_up: str = "ONCE",
    paused: bool = False,
    time_limit: float | None = None,
    priority: int = 0,
    labels: Mapping[str, str] | None = None,
    retention: float | None = None,
) -> pb.CreateScheduleRequest:
    """The CreateScheduleRequest for these arguments: `cron` (five fields, or six with seconds last; read in
    `time_zone`, UTC when empty) or `interval` (seconds), not both."""
    if catch_up.upper() not in ("SKIP", "ONCE", "ALL"):
        raise ValueError(f"catch_up must be SKIP, ONCE or ALL, not {catch_up!r}")
    task = submit_request(task_type, args, time_limit=time_limit, priority=priority, labels=labels, retention=retention)
    schedule = pb.Schedule(
        schedule_id=schedule_id, task=task, paused=paused, catch_up=pb.CatchUp.Value(f"CATCH_UP_{catch_up.upper()}")
    )
    if interval is not None:
        schedule.interval.CopyFrom(seconds_to_duration(interval))
    if cron or interval is None:
        schedule.cron.CopyFrom(pb.CronSchedule(expression=cron, time_zone=time_zone))
    return pb.CreateScheduleRequest(schedule=schedule)


def create_schedule_call(*args: Any, validate_only: bool = False, **options: Any) -> Unary[ScheduleResult]:
    request = schedule_request(*args, **options)
    request.validate_only = validate_only
    return Unary("CreateSchedule", request, lambda r: ScheduleResult(schedule_from_pb(r.schedule), r.created))


def schedule_call(method: str, schedule_id: str) -> Unary[Schedule]:
    """GetSchedule, PauseSchedule, ResumeSchedule or DeleteSchedule of one schedule."""
    request = getattr(pb, f"{method}Request")(schedule_id=schedule_id)
    return Unary(method, request, lambda r: schedule_from_pb(r.schedule))


def list_schedules_call(page_size: int, page_token: str) -> Unary[SchedulePage]:
    return Unary(
        "ListSchedules",
        pb.ListSchedulesRequest(page_size=page_size, page_token=page_token),
        lambda r: SchedulePage([schedule_from_pb(s) for s in r.schedules], r.next_page_token),
    )


def task_types_call() -> Unary[list[TaskTypeInfo]]:
    def convert(r: pb.ListTaskTypesResponse) -> list[TaskTypeInfo]:
        return [
            TaskTypeInfo(
                t.name,
                t.description,
                [TaskArgInfo(a.name, a.kind, a.required, a.path_role, [value_to_python(c) for c in a.choices], a.rule,
                             value_to_python(a.default_value) if a.HasField("default_value") else None,
                             a.HasField("default_value"), a.description)
                 for a in t.args],
                t.accepts_extra_args,
                t.rerun_on_restart,
                [node.node for node in t.nodes],
                wire=t,
            )
            for t in r.task_types
        ]  # fmt: skip

    return Unary("ListTaskTypes", pb.ListTaskTypesRequest(), convert)


def stats_call() -> Unary[Stats]:
    def convert(r: pb.GetStatsResponse) -> Stats:
        return Stats(
            counts=[TaskCount(c.task_type, state_from_pb(c.state), c.count) for c in r.counts],
            minutes=[MinuteCounts(timestamp_to_datetime(m.start) if m.HasField("start") else None, m.started,
                                  m.succeeded, m.failed) for m in r.minutes],
            oldest_runnable_age=(duration_to_seconds(r.oldest_runnable_age) if r.HasField("oldest_runnable_age")
                                 else None),
            time=timestamp_to_datetime(r.time) if r.HasField("time") else None,
            limits=[LimitCount(c.limit_id, c.running, c.waiting) for c in r.limits],
            wire=r,
        )  # fmt: skip

    return Unary("GetStats", pb.GetStatsRequest(), convert)


def history_call(task_id: str) -> Unary[list[HistoryEntry]]:
    def convert(r: pb.GetTaskHistoryResponse) -> list[HistoryEntry]:
        return [HistoryEntry(timestamp_to_datetime(e.time) if e.HasField("time") else None, state_from_pb(e.state),
                             e.attempt, progress_from_pb(e.progress) if e.HasField("progress") else None)
                for e in r.entries]  # fmt: skip

    return Unary("GetTaskHistory", pb.GetTaskHistoryRequest(task_id=task_id), convert)


def nodes_call() -> Unary[list[Node]]:
    def when(message: Any, name: str) -> datetime | None:
        return timestamp_to_datetime(getattr(message, name)) if message.HasField(name) else None

    return Unary("ListNodes", pb.ListNodesRequest(), lambda r: [
        Node(n.node, tuple(n.task_types), dict(n.only_labels), when(n, "started_at"), when(n, "last_seen"), n.workers,
             n.busy, n.abandoned, n) for n in r.nodes])  # fmt: skip


def list_call(**filters: Any) -> Unary[TaskPage]:
    return Unary("ListTasks", list_request(**filters), page_from_pb)
