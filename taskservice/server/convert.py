"""Domain <-> protobuf, both directions, and nowhere else."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from google.protobuf import duration_pb2, json_format, struct_pb2, timestamp_pb2

from taskservice.core.engine.manager import SubmitSpec
from taskservice.core.engine.validation import MAX_LABELS, check_task_id
from taskservice.core.handlers.type_info import TypeInfo
from taskservice.core.model.errors import InvalidRequest, TaskServiceError
from taskservice.core.model.models import (
    Progress,
    SubmitOutcome,
    Task,
    TaskError,
    TaskEvent,
    TaskFilter,
    TaskState,
    WaitingFor,
)
from taskservice.core.model.nodes import NodeInfo
from taskservice.server.status import status_code_for
from taskservice.v1 import task_service_pb2 as pb

_STATE_TO_PROTO = {state: pb.TaskState.Value(f"TASK_STATE_{state.value}") for state in TaskState}
_STATE_FROM_PROTO = {number: state for state, number in _STATE_TO_PROTO.items()}

DEFAULT_PAGE_SIZE = 100
# A task carries at most this many labels, so more filters could never match.
MAX_LABEL_FILTERS = MAX_LABELS
MAX_PAGE_SIZE = 1000


def state_to_proto(state: TaskState) -> pb.TaskState.ValueType:
    return _STATE_TO_PROTO[state]


def state_from_proto(number: int, field: str) -> TaskState:
    state: TaskState | None = _STATE_FROM_PROTO.get(number)  # type: ignore[call-overload]
    if state is None:
        names = ", ".join(s.value for s in TaskState)
        raise InvalidRequest(f"unknown task state {number}", [(field, f"must be one of {names}")])
    return state


def timestamp_to_proto(seconds: float | None) -> timestamp_pb2.Timestamp | None:
    if seconds is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def timestamp_seconds(stamp: timestamp_pb2.Timestamp, field: str) -> float:
    """A Timestamp as Unix seconds; InvalidRequest naming `field` for one outside protobuf's range (years 1 to
    9999, nanos 0 to 999,999,999)."""
    try:
        return stamp.ToNanoseconds() / 1e9
    except ValueError:
        raise InvalidRequest(
            f"{field} is not a valid time (seconds {stamp.seconds}, nanos {stamp.nanos})",
            [(field, "must be a time from year 1 to 9999, with nanos from 0 to 999,999,999")],
        ) from None


def duration_seconds(duration: duration_pb2.Duration) -> float:
    return duration.seconds + duration.nanos / 1e9


def duration_to_proto(seconds: float | None) -> duration_pb2.Duration | None:
    if seconds is None:
        return None
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(round(seconds * 1e9))
    return duration


def args_from_proto(args: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as plain JSON: numbers are floats, as every client sends them."""
    return {key: _value_from_proto(value, f"args.{key}") for key, value in args.fields.items()}


def _value_from_proto(value: struct_pb2.Value, field: str) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        if not math.isfinite(number):
            raise InvalidRequest(
                f"{field} is {number}, which JSON cannot carry", [(field, "NaN and infinite numbers are not allowed")]
            )
        return number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return {key: _value_from_proto(item, f"{field}.{key}") for key, item in value.struct_value.fields.items()}
    if kind == "list_value":
        return [_value_from_proto(item, f"{field}[{i}]") for i, item in enumerate(value.list_value.values)]
    return None  # null_value, or no kind set


def submit_spec_from_proto(request: pb.SubmitRequest) -> SubmitSpec:
    time_limit = duration_seconds(request.time_limit) if request.HasField("time_limit") else None
    not_before = timestamp_seconds(request.not_before, "not_before") if request.HasField("not_before") else None
    delay = duration_seconds(request.delay) if request.HasField("delay") else None
    retention = duration_seconds(request.retention) if request.HasField("retention") else None
    return SubmitSpec(
        task_type=request.task_type,
        args=args_from_proto(request.args),
        task_id=request.task_id,
        time_limit=time_limit,
        priority=request.priority,
        labels=dict(request.labels),
        not_before=not_before,
        delay=delay,
        retention=retention,
        after=tuple(request.after),
    )


def batch_result_to_proto(outcome: SubmitOutcome | TaskServiceError) -> pb.SubmitBatchResult:
    if isinstance(outcome, SubmitOutcome):
        return pb.SubmitBatchResult(task=task_to_proto(outcome.task), created=outcome.created)
    return pb.SubmitBatchResult(
        error_code=status_code_for(outcome).value[0],
        error_message=outcome.message,
        field_violations=[
            pb.FieldViolation(field=field, description=description)
            for field, description in getattr(outcome, "field_violations", [])
        ],
    )


def progress_to_proto(progress: Progress) -> pb.Progress:
    return pb.Progress(
        percent=progress.percent,
        message=progress.message,
        current=progress.current,
        total=progress.total,
        updated_at=timestamp_to_proto(progress.updated_at),
    )


def _error_to_proto(error: TaskError | None) -> pb.TaskError | None:
    if error is None:
        return None
    return pb.TaskError(type=error.type, message=error.message, traceback=error.traceback)


def task_to_proto(task: Task, waiting: WaitingFor | None = None) -> pb.Task:
    message = pb.Task(
        task_id=task.task_id,
        task_type=task.task_type,
        state=_STATE_TO_PROTO[task.state],
        progress=progress_to_proto(task.progress),
        error=_error_to_proto(task.error),
        submitted_at=timestamp_to_proto(task.submitted_at),
        started_at=timestamp_to_proto(task.started_at),
        ended_at=timestamp_to_proto(task.ended_at),
        time_limit=duration_to_proto(task.time_limit),
        priority=task.priority,
        labels=task.labels,
        attempt=task.attempt,
        scheduled_at=timestamp_to_proto(task.run_after) if task.state is TaskState.PENDING else None,
        retention=duration_to_proto(task.retention),
        after=task.after,
        parent_id=task.parent_id,
        detached=task.detached,
    )
    message.args.update(task.args)
    if waiting is not None:
        message.waiting_for.CopyFrom(pb.WaitingFor(limit_ids=waiting.limit_ids, task_ids=waiting.task_ids))
    if task.result is not None or task.state is TaskState.SUCCESS:
        json_format.ParseDict(task.result, message.result)
    return message


def event_to_proto(event: TaskEvent) -> pb.WatchProgressResponse:
    return pb.WatchProgressResponse(
        task_id=event.task_id,
        sequence=event.sequence,
        state=_STATE_TO_PROTO[event.state],
        progress=progress_to_proto(event.progress),
        time=timestamp_to_proto(event.time),
        task=task_to_proto(event.task) if event.task is not None else None,
    )


def filter_from_proto(request: pb.ListTasksRequest | pb.StopTasksRequest) -> TaskFilter:
    parent_id = getattr(request, "parent_id", "")
    if parent_id:
        check_task_id(parent_id, "parent_id")
    return TaskFilter(
        states=frozenset(state_from_proto(number, "states") for number in request.states),
        task_type=request.task_type,
        labels=tuple(sorted(request.labels.items())),
        scheduled=request.scheduled,
        waiting_for_limit=getattr(request, "waiting_for_limit", ""),
        parent_id=parent_id,
    )


def stop_filter_from_proto(request: pb.StopTasksRequest) -> TaskFilter:
    """A StopTasks filter: states only among those a stop changes, and no filter at all only with all=true."""
    task_filter = filter_from_proto(request)
    others = sorted(s.value for s in task_filter.states - {TaskState.PENDING, TaskState.RUNNING})
    if others:
        raise InvalidRequest(
            f"StopTasks cannot stop tasks in {', '.join(others)}",
            [("states", "only PENDING and RUNNING (empty: both)")],
        )
    if task_filter == TaskFilter() and not request.all:
        raise InvalidRequest(
            "StopTasks without a filter would stop every unfinished task",
            [("all", "set all=true to stop every unfinished task, or give states, task_type, labels or scheduled")],
        )
    return task_filter


def delete_filter_from_proto(request: pb.DeleteTasksRequest) -> tuple[TaskFilter, float | None]:
    """A DeleteTasks filter and its ended_before: ended states only, and no filter at all only with all=true."""
    task_filter = TaskFilter(
        states=frozenset(state_from_proto(number, "states") for number in request.states),
        task_type=request.task_type,
        labels=tuple(sorted(request.labels.items())),
    )
    unfinished = sorted(s.value for s in task_filter.states if not s.is_terminal)
    if unfinished:
        raise InvalidRequest(
            f"DeleteTasks deletes only ended tasks, not {', '.join(unfinished)}",
            [("states", "only SUCCESS, FAILURE, REVOKED, TIMED_OUT and LOST (empty: any end)")],
        )
    ended_before = timestamp_seconds(request.ended_before, "ended_before") if request.HasField("ended_before") else None
    if task_filter == TaskFilter() and ended_before is None and not request.all:
        raise InvalidRequest(
            "DeleteTasks without a filter would delete every ended task",
            [("all", "set all=true to delete every ended task, or give states, task_type, labels or ended_before")],
        )
    return task_filter, ended_before


def wait_timeout_from_proto(request: pb.WaitTaskRequest) -> float | None:
    """WaitTask's timeout in seconds; None when unset (wait until the call's deadline)."""
    if not request.HasField("timeout"):
        return None
    seconds = duration_seconds(request.timeout)
    if seconds < 0:
        raise InvalidRequest(
            f"timeout {seconds:g} s is negative", [("timeout", "must be 0 or more; leave it unset to wait for the end")]
        )
    return seconds


def page_size_from_proto(page_size: int) -> int:
    if not 0 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidRequest(
            f"page_size {page_size} is out of range",
            [("page_size", f"must be 0 (the default, {DEFAULT_PAGE_SIZE}) to {MAX_PAGE_SIZE}")],
        )
    return page_size or DEFAULT_PAGE_SIZE


def task_type_to_proto(info: TypeInfo, nodes: Sequence[NodeInfo] = ()) -> pb.TaskType:
    message = pb.TaskType(
        name=info.name,
        description=info.description,
        accepts_extra_args=info.accepts_extra_args,
        rerun_on_restart=info.rerun_on_restart,
        nodes=[
            pb.ServingNode(node=node.name, only_labels=dict(node.labels), last_seen=timestamp_to_proto(node.seen_at))
            for node in nodes
        ],
    )
    for arg in info.args:
        added = message.args.add(
            name=arg.name,
            kind=arg.kind,
            required=arg.required,
            path_role=arg.path_role,
            rule=arg.rule,
            description=arg.description,
        )
        for choice in arg.choices:
            json_format.ParseDict(choice, added.choices.add())
        if arg.has_default:
            json_format.ParseDict(arg.default, added.default_value)
    return message
