"""Typed Python client of taskservice, sync (`TaskClient`) and asyncio (`AsyncTaskClient`).

Both return plain Python objects (`Task`, `TaskEvent`, ...), never protobuf messages, and raise one
exception tree rooted at `TaskServiceError`. The conversion, error mapping and watch-resume logic live
once in this module and are shared by both clients, which only differ in how they wait on the wire.

This module imports grpc and the generated `taskservice.v1` code only, never the server's engine.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import enum
import os
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
import grpc.aio
from google.protobuf import json_format, struct_pb2
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from taskservice.client_limits import AsyncLimitMethods, Limit, LimitMethods, LimitPage, LimitResult, parse_rate
from taskservice.client_wire import R, duration_to_seconds, seconds_to_duration, timestamp_to_datetime, trace_headers
from taskservice.client_wire import Unary as _Unary
from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc

__all__ = [
    "AlreadyExists",
    "AsyncTaskClient",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "Limit",
    "LimitPage",
    "LimitResult",
    "LogChunk",
    "OutOfRange",
    "Progress",
    "QueueFull",
    "Schedule",
    "SchedulePage",
    "ScheduleResult",
    "Security",
    "StopCount",
    "SubmitResult",
    "Task",
    "TaskClient",
    "TaskError",
    "TaskEvent",
    "TaskNotFound",
    "TaskPage",
    "TaskServiceError",
    "TaskState",
    "TaskTypeInfo",
    "Unavailable",
    "parse_rate",
]

DEFAULT_ADDRESS = "127.0.0.1:50051"
ADDRESS_ENV = "TASKSERVICE_ADDR"
TOKEN_ENV = "TASKSERVICE_TOKEN"
TLS_CA_ENV = "TASKSERVICE_TLS_CA"
CLIENT_CERT_ENV = "TASKSERVICE_CLIENT_CERT"
CLIENT_KEY_ENV = "TASKSERVICE_CLIENT_KEY"
# Per-RPC deadline of unary calls, seconds; streams (watch) have none, they last as long as the task.
DEFAULT_TIMEOUT = 30.0
# How long watch() keeps reconnecting to an unreachable server before it gives up, seconds.
DEFAULT_RECONNECT_TIMEOUT = 30.0
# Backoff between watch reconnect attempts: first delay, cap (seconds) and relative jitter.
_BACKOFF_INITIAL = 0.1
_BACKOFF_MAX = 1.0
_BACKOFF_JITTER = 0.2
_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# wait(): one WaitTask call waits at most this long (a lost connection or a proxy's idle limit then costs one
# call, retried), and its deadline leaves the server this much longer to answer "not yet".
_WAIT_CALL_SECONDS = 60.0
_WAIT_CALL_GRACE = 5.0
CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    # Ping so that a dead server is noticed during a long, quiet watch instead of hanging forever.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
    # gRPC's own reconnect backoff starts at 1 s and grows to 120 s; keep it short so that a watch
    # finds a restarted server within our reconnect budget.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
)
_STATE_PREFIX = "TASK_STATE_"
_DETAILS_KEY = "grpc-status-details-bin"
# Doubles with an integral value up to 2**53 are shown as ints: a Struct carries every number as a
# double, so `steps: 10` comes back as 10.0, which reads wrongly in Python and in JSON output.
_MAX_EXACT_INT = 2**53


# ---------------------------------------------------------------------------------------------------
# Plain data


class TaskState(enum.Enum):
    """Where a task is in its lifecycle."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    REVOKED = "REVOKED"
    TIMED_OUT = "TIMED_OUT"
    LOST = "LOST"
    # The server sent TASK_STATE_UNSPECIFIED or a state newer than this client; kept so that an
    # older client does not crash on a newer server.
    UNSPECIFIED = "UNSPECIFIED"

    @property
    def is_terminal(self) -> bool:
        """True for states a task never leaves: SUCCESS, FAILURE, REVOKED, TIMED_OUT, LOST."""
        return self in _TERMINAL_STATES


_TERMINAL_STATES = frozenset(
    {TaskState.SUCCESS, TaskState.FAILURE, TaskState.REVOKED, TaskState.TIMED_OUT, TaskState.LOST}
)


@dataclass(frozen=True)
class Progress:
    """What a handler last reported."""

    percent: float = 0.0
    message: str = ""
    current: int = 0
    total: int = 0
    updated_at: datetime | None = None


@dataclass(frozen=True)
class TaskError:
    """Why a task did not succeed: an exception class name or a reason code such as TimeLimitExceeded."""

    type: str
    message: str = ""
    traceback: str = ""


@dataclass(frozen=True)
class Task:
    """One submitted task. Times are aware UTC datetimes (None until they happen); time_limit is seconds."""

    task_id: str
    task_type: str
    args: dict[str, Any] = field(default_factory=dict)
    state: TaskState = TaskState.UNSPECIFIED
    progress: Progress = field(default_factory=Progress)
    result: Any = None
    error: TaskError | None = None
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    time_limit: float | None = None
    priority: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    attempt: int = 0
    # A PENDING task is not run before this (submitted to run later, or waiting for a retry); else None.
    scheduled_at: datetime | None = None
    # How long it is kept once ended, when submitted with its own (seconds; 0: for ever); None: the server's.
    retention: float | None = None
    # The tasks it was submitted to run after.
    after: tuple[str, ...] = ()
    # What holds a PENDING task back: the limits whose group is full, the dependencies not met yet.
    waiting_for_limits: tuple[str, ...] = ()
    waiting_for_tasks: tuple[str, ...] = ()
    # The message it was read from (taskctl --json prints it as the HTTP API's canonical JSON); None when made here.
    wire: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class StopCount:
    """What stop_tasks() did: PENDING tasks revoked at once, RUNNING ones asked to stop."""

    revoked: int
    stopping: int


@dataclass(frozen=True)
class TaskEvent:
    """One event of a watch: a state change (with the full task) or a progress update (task is None)."""

    task_id: str
    sequence: int
    state: TaskState
    progress: Progress
    time: datetime | None
    task: Task | None = None
    # The message it was read from (taskctl --json prints it as the HTTP API's canonical JSON); None when made here.
    wire: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class TaskPage:
    """One page of ListTasks, newest first; next_page_token is empty on the last page."""

    tasks: list[Task]
    next_page_token: str


@dataclass(frozen=True)
class Schedule:
    """A task submitted again and again: on `cron` (in `time_zone`) or every `interval` seconds. Each firing's task
    id is `<schedule_id>:<due time, UTC>`."""

    schedule_id: str
    task_type: str
    args: dict[str, Any] = field(default_factory=dict)
    cron: str = ""
    time_zone: str = ""
    interval: float | None = None
    # What to do about due times missed while no server ran: "SKIP", "ONCE" or "ALL".
    catch_up: str = "ONCE"
    paused: bool = False
    next_due: datetime | None = None
    created_at: datetime | None = None
    last_due: datetime | None = None
    last_task_id: str = ""
    last_error: str = ""
    time_limit: float | None = None
    priority: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    retention: float | None = None
    # The message it was read from (taskctl --json prints it as the HTTP API's canonical JSON); None when made here.
    wire: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class TaskArgInfo:
    """One argument of a task type: its kind of value (string, integer, number, boolean, array, object, any),
    whether it is required, the data-root role of a path (input, output, directory), its choices and other checks."""

    name: str
    kind: str
    required: bool
    path_role: str = ""
    choices: list[Any] = field(default_factory=list)
    rule: str = ""
    # What the handler takes when the arg is left out; has_default False for a required arg (default None then).
    default: Any = None
    has_default: bool = False


@dataclass(frozen=True)
class TaskTypeInfo:
    """A task type the server runs, and what it takes."""

    name: str
    description: str
    args: list[TaskArgInfo]
    accepts_extra_args: bool
    rerun_on_restart: bool
    # The servers on the server's database that claim tasks of this type, by name.
    nodes: list[str] = field(default_factory=list)
    # The message it was read from (taskctl --json prints it as the HTTP API's canonical JSON); None when made here.
    wire: Any = field(default=None, compare=False, repr=False)


# A module-level name: inside the clients, `list` is their method.
TaskTypes = list[TaskTypeInfo]


@dataclass(frozen=True)
class ScheduleResult:
    schedule: Schedule
    # False when the same definition was there already.
    created: bool


@dataclass(frozen=True)
class SchedulePage:
    """One page of ListSchedules, in id order; next_page_token is empty on the last page."""

    schedules: list[Schedule]
    next_page_token: str


@dataclass(frozen=True)
class LogChunk:
    """Bytes of a task's log; `offset` is where data[0] sits in the whole log (resume at offset + len(data))."""

    task_id: str
    offset: int
    data: bytes


@dataclass(frozen=True)
class SubmitResult:
    """The submitted task; created is False when an identical request with this task_id existed."""

    task: Task
    created: bool


# ---------------------------------------------------------------------------------------------------
# Exceptions


class TaskServiceError(Exception):
    """An RPC failed. `code` is the gRPC status code, `message` the server's text, and
    `field_violations` the (field, description) pairs of google.rpc.BadRequest details, if any."""

    default_code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        field_violations: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(message)
        self.code: grpc.StatusCode = code if code is not None else self.default_code
        self.message = message
        self.field_violations: list[tuple[str, str]] = list(field_violations)

    def __str__(self) -> str:
        # One line a person can act on; violations the message does not already say are appended.
        text = f"{self.code.name}: {self.message}" if self.message else self.code.name
        extra = [f"{f}: {d}" if d else f for f, d in self.field_violations if not (d and d in self.message)]
        if extra:
            text += f" ({'; '.join(extra)})"
        return " ".join(text.split())


class TaskNotFound(TaskServiceError):
    """No task has this id (NOT_FOUND)."""

    default_code = grpc.StatusCode.NOT_FOUND


class InvalidArgument(TaskServiceError):
    """The request was rejected: unknown type, args that do not fit, bad id or limit (INVALID_ARGUMENT)."""

    default_code = grpc.StatusCode.INVALID_ARGUMENT


class AlreadyExists(TaskServiceError):
    """A different request was submitted before under this task_id (ALREADY_EXISTS)."""

    default_code = grpc.StatusCode.ALREADY_EXISTS


class QueueFull(TaskServiceError):
    """The server's queue is at its bound (RESOURCE_EXHAUSTED); retry later."""

    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(TaskServiceError):
    """The server cannot be reached or is draining (UNAVAILABLE)."""

    default_code = grpc.StatusCode.UNAVAILABLE


class OutOfRange(TaskServiceError):
    """A watch asked to resume after events the server no longer keeps (OUT_OF_RANGE)."""

    default_code = grpc.StatusCode.OUT_OF_RANGE


class FailedPrecondition(TaskServiceError):
    """The task's state does not allow the request (FAILED_PRECONDITION), e.g. a retry of a task that succeeded."""

    default_code = grpc.StatusCode.FAILED_PRECONDITION


class DeadlineExceeded(TaskServiceError, TimeoutError):
    """A call or a wait() did not finish in time (DEADLINE_EXCEEDED); also a TimeoutError. From wait(), `task` is
    the task as the server last showed it (not ended); else None."""

    default_code = grpc.StatusCode.DEADLINE_EXCEEDED
    task: Task | None = None


_ERROR_CLASSES: dict[grpc.StatusCode, type[TaskServiceError]] = {
    cls.default_code: cls
    for cls in (
        TaskNotFound,
        InvalidArgument,
        AlreadyExists,
        QueueFull,
        Unavailable,
        OutOfRange,
        DeadlineExceeded,
        FailedPrecondition,
    )
}


def error_from_status(
    code: grpc.StatusCode, message: str, trailing_metadata: Iterable[tuple[str, str | bytes]] | None = None
) -> TaskServiceError:
    """Build the typed exception of a failed call from its status and trailing metadata."""
    violations: list[tuple[str, str]] = []
    for key, value in trailing_metadata or ():
        if key == _DETAILS_KEY and isinstance(value, bytes):
            violations.extend(_field_violations(value))
    cls = _ERROR_CLASSES.get(code, TaskServiceError)
    return cls(message or "", code=code, field_violations=violations)


def error_from_rpc(err: grpc.RpcError) -> TaskServiceError:
    """Map a grpc (sync or aio) RpcError to the typed exception tree."""
    # grpc.RpcError declares nothing; the instances raised by calls are also grpc.Call / AioRpcError.
    code = _call_attr(err, "code") or grpc.StatusCode.UNKNOWN
    return error_from_status(code, _call_attr(err, "details") or "", _call_attr(err, "trailing_metadata"))


# How gRPC describes a connection the server closed before any call: a TLS handshake it refused.
_CLOSED_AT_CONNECT = ("Socket closed", "handshake", "Connection reset")


def connection_hint(error: TaskServiceError, security: Security) -> TaskServiceError:
    """The error, with a likely cause added when the server shut the connection at once: a TLS setting."""
    if error.code is not grpc.StatusCode.UNAVAILABLE or not any(m in error.message for m in _CLOSED_AT_CONNECT):
        return error
    if not security.uses_tls:
        hint = "the server may speak TLS only: pass its CA (tls_ca, taskctl --tls-ca, TASKSERVICE_TLS_CA)"
    elif not security.tls_cert:
        hint = (
            "the server probably requires a client certificate (mutual TLS): pass tls_cert and tls_key "
            "(taskctl --tls-cert/--tls-key, TASKSERVICE_CLIENT_CERT/_KEY)"
        )
    else:
        hint = "the server probably does not trust this client certificate: it must be signed by its --tls-client-ca"
    error.message = f"{error.message} ({hint})"
    error.args = (error.message,)
    return error


@contextlib.contextmanager
def _rpc_errors(security: Security | None = None) -> Iterator[None]:
    """Raise the typed exception for a grpc error inside the block."""
    try:
        yield
    except grpc.RpcError as err:
        error = error_from_rpc(err)
        raise (connection_hint(error, security) if security is not None else error) from err


def _call_attr(err: grpc.RpcError, name: str) -> Any:
    getter = getattr(err, name, None)
    return getter() if callable(getter) else None


def _field_violations(status_bytes: bytes) -> list[tuple[str, str]]:
    # A malformed details trailer must not hide the error itself: ignore what cannot be parsed.
    try:
        status = status_pb2.Status.FromString(status_bytes)
    except DecodeError:
        return []
    violations: list[tuple[str, str]] = []
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):  # False for other kinds of detail
            violations.extend((v.field, v.description) for v in bad_request.field_violations)
    return violations


# ---------------------------------------------------------------------------------------------------
# Conversion between protobuf and plain Python


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
        if not_before.tzinfo is None:
            raise ValueError("not_before must be an aware datetime (e.g. datetime.now(UTC) + timedelta(hours=1))")
        req.not_before.FromDatetime(not_before.astimezone(UTC))
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
) -> pb.ListTasksRequest:
    """The ListTasksRequest for these filters; states may be TaskState or names. `scheduled`: only PENDING tasks
    with a scheduled_at; `waiting_for_limit`: only PENDING tasks that limit holds back."""
    return pb.ListTasksRequest(
        page_size=page_size,
        page_token=page_token,
        states=[state_to_pb(s) for s in states],
        task_type=task_type,
        labels=dict(labels or {}),
        scheduled=scheduled,
        waiting_for_limit=waiting_for_limit,
    )


# ---------------------------------------------------------------------------------------------------
# Shared call plumbing


def _submit_call(task_type: str, args: Mapping[str, Any] | None, **options: Any) -> _Unary[SubmitResult]:
    return _Unary(
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
        return _ERROR_CLASSES.get(code, TaskServiceError)(result.error_message, code=code, field_violations=violations)
    return SubmitResult(task=task_from_pb(result.task), created=result.created)


def _batch_call(requests: Sequence[pb.SubmitRequest]) -> _Unary[list[SubmitResult | TaskServiceError]]:
    return _Unary(
        "SubmitBatch",
        pb.SubmitBatchRequest(requests=requests),
        lambda r: [_batch_result(result) for result in r.results],
    )


def _get_call(task_id: str) -> _Unary[Task]:
    return _Unary("GetState", pb.GetStateRequest(task_id=task_id), lambda r: task_from_pb(r.task))


def _stop_call(task_id: str, reason: str) -> _Unary[Task]:
    return _Unary("Stop", pb.StopRequest(task_id=task_id, reason=reason), lambda r: task_from_pb(r.task))


def _stop_tasks_call(reason: str, everything: bool, **filters: Any) -> _Unary[StopCount]:
    listed = list_request(**filters)
    request = pb.StopTasksRequest(
        states=listed.states,
        task_type=listed.task_type,
        labels=listed.labels,
        scheduled=listed.scheduled,
        reason=reason,
        all=everything,
    )
    return _Unary("StopTasks", request, lambda r: StopCount(revoked=r.revoked, stopping=r.stopping))


def _delete_call(task_id: str) -> _Unary[Task]:
    return _Unary("DeleteTask", pb.DeleteTaskRequest(task_id=task_id), lambda r: task_from_pb(r.task))


def _delete_tasks_call(ended_before: datetime | None, everything: bool, **filters: Any) -> _Unary[int]:
    listed = list_request(**filters)
    request = pb.DeleteTasksRequest(
        states=listed.states, task_type=listed.task_type, labels=listed.labels, all=everything
    )
    if ended_before is not None:
        if ended_before.tzinfo is None:
            raise ValueError("ended_before must be an aware datetime")
        request.ended_before.FromDatetime(ended_before.astimezone(UTC))
    return _Unary("DeleteTasks", request, lambda r: int(r.deleted))


def _retry_call(task_id: str, reason: str) -> _Unary[Task]:
    return _Unary("RetryTask", pb.RetryTaskRequest(task_id=task_id, reason=reason), lambda r: task_from_pb(r.task))


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


def _create_schedule_call(*args: Any, **options: Any) -> _Unary[ScheduleResult]:
    return _Unary(
        "CreateSchedule",
        schedule_request(*args, **options),
        lambda r: ScheduleResult(schedule_from_pb(r.schedule), r.created),
    )


def _schedule_call(method: str, schedule_id: str) -> _Unary[Schedule]:
    """GetSchedule, PauseSchedule, ResumeSchedule or DeleteSchedule of one schedule."""
    request = getattr(pb, f"{method}Request")(schedule_id=schedule_id)
    return _Unary(method, request, lambda r: schedule_from_pb(r.schedule))


def _list_schedules_call(page_size: int, page_token: str) -> _Unary[SchedulePage]:
    return _Unary(
        "ListSchedules",
        pb.ListSchedulesRequest(page_size=page_size, page_token=page_token),
        lambda r: SchedulePage([schedule_from_pb(s) for s in r.schedules], r.next_page_token),
    )


def _task_types_call() -> _Unary[list[TaskTypeInfo]]:
    def convert(r: pb.ListTaskTypesResponse) -> list[TaskTypeInfo]:
        return [
            TaskTypeInfo(
                t.name,
                t.description,
                [TaskArgInfo(a.name, a.kind, a.required, a.path_role, [value_to_python(c) for c in a.choices], a.rule,
                             value_to_python(a.default_value) if a.HasField("default_value") else None,
                             a.HasField("default_value"))
                 for a in t.args],
                t.accepts_extra_args,
                t.rerun_on_restart,
                [node.node for node in t.nodes],
                wire=t,
            )
            for t in r.task_types
        ]  # fmt: skip

    return _Unary("ListTaskTypes", pb.ListTaskTypesRequest(), convert)


def _list_call(**filters: Any) -> _Unary[TaskPage]:
    return _Unary("ListTasks", list_request(**filters), page_from_pb)


def resolve_address(address: str | None) -> str:
    """The address to dial: the given one, else $TASKSERVICE_ADDR, else 127.0.0.1:50051."""
    return address or os.environ.get(ADDRESS_ENV) or DEFAULT_ADDRESS


@dataclass(frozen=True)
class Security:
    """How a client proves itself and checks the server. Each field defaults to its environment variable.

    `tls_ca` (a PEM file) turns TLS on and is the CA that signed the server's certificate; `tls_cert` and
    `tls_key` add a client certificate for mutual TLS; `token` is sent as `authorization: Bearer <token>`.
    """

    token: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None

    @classmethod
    def resolve(cls, *, token: str | None, tls_ca: str | None, tls_cert: str | None, tls_key: str | None) -> Security:
        env = os.environ
        return cls(
            token=token or env.get(TOKEN_ENV) or None,
            tls_ca=tls_ca or env.get(TLS_CA_ENV) or None,
            tls_cert=tls_cert or env.get(CLIENT_CERT_ENV) or None,
            tls_key=tls_key or env.get(CLIENT_KEY_ENV) or None,
        )

    @property
    def uses_tls(self) -> bool:
        return bool(self.tls_ca or self.tls_cert)

    def channel_credentials(self) -> grpc.ChannelCredentials:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("a client certificate needs both tls_cert and tls_key")
        return grpc.ssl_channel_credentials(
            root_certificates=_read_file(self.tls_ca, "TLS CA") if self.tls_ca else None,
            private_key=_read_file(self.tls_key, "TLS key") if self.tls_key else None,
            certificate_chain=_read_file(self.tls_cert, "TLS certificate") if self.tls_cert else None,
        )

    def metadata(self) -> tuple[tuple[str, str], ...] | None:
        return (("authorization", f"Bearer {self.token}"),) if self.token else None


def _read_file(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ValueError(f"cannot read the {what} file {path}: {exc.strerror or exc}") from exc


class _WatchCursor:
    """The state of one watch across reconnects, shared by the sync and async clients.

    It remembers the last sequence seen (to resume after it and to drop replayed events), keeps the
    bounded reconnect budget, and decides after each failed or cut stream whether and when to retry.
    """

    def __init__(
        self,
        task_id: str,
        after_sequence: int,
        *,
        reconnect_timeout: float,
        timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        security: Security | None = None,
        started: float | None = None,
    ) -> None:
        """`started`: when the timeout began (default: now), for a watch that continues an earlier wait."""
        self.task_id = task_id
        self._security = security
        self.last_sequence = after_sequence
        self.final: TaskEvent | None = None
        self._reconnect_timeout = reconnect_timeout
        self._timeout = timeout
        self._clock = clock
        self.started = clock() if started is None else started
        self._deadline = None if timeout is None else self.started + timeout
        self._failing_since: float | None = None
        self._failures = 0
        # Reconnecting is for a connection that was lost; a watch that never got an event fails at once
        # (a wrong address should not make `taskctl watch` hang for reconnect_timeout).
        self._connected = False
        # After OUT_OF_RANGE the fresh snapshot may carry any sequence (e.g. a restarted server).
        self._resync = False
        self._error: TaskServiceError | None = None
        # Messages of the current stream, and whether the server said the task ended at last_sequence.
        self._received = 0
        self._ended_at_resume = False

    @property
    def done(self) -> bool:
        return self.final is not None or self._ended_at_resume

    def request(self) -> pb.WatchProgressRequest:
        return pb.WatchProgressRequest(task_id=self.task_id, after_sequence=self.last_sequence)

    def call_timeout(self) -> float | None:
        """The deadline for the next stream: what is left of the overall timeout."""
        if self._deadline is None:
            return None
        left = self._deadline - self._clock()
        if left <= 0:
            raise self._timed_out()
        return left

    def accept(self, message: pb.WatchProgressResponse) -> tuple[TaskEvent, ...]:
        """The events to yield for `message`: none when it was seen before a reconnect, else one."""
        event = event_from_pb(message)
        self._received += 1
        self._failing_since, self._failures, self._connected = None, 0, True
        if not self._resync and event.sequence <= self.last_sequence:
            return ()
        self._resync = False
        self.last_sequence = event.sequence
        if event.state.is_terminal:
            self.final = event
        return (event,)

    @contextlib.contextmanager
    def attempt(self, stream: grpc.Call | grpc.aio.Call) -> Iterator[None]:
        """Wraps the reading of one stream: notes why it ended (for next_delay) and always cancels it,
        which frees the call when the caller stops iterating early."""
        self._error = None
        self._received = 0
        try:
            yield
        except grpc.RpcError as err:
            self._error = error_from_rpc(err)
            if self._security is not None:
                self._error = connection_hint(self._error, self._security)
        finally:
            stream.cancel()
        if self._error is None:
            self._ended_cleanly()

    def _ended_cleanly(self) -> None:
        """A stream ended with OK. A watch must have reached the terminal event; else it is retried.

        A resumed stream that ends OK at once means the task ended at exactly the sequence resumed after.
        """
        if not self.done and self._received == 0 and self.last_sequence > 0 and not self._resync:
            self._ended_at_resume = True
        if not self.done:
            self._error = self.ended_early()

    def next_delay(self) -> float:
        """After an attempt that did not reach the end: seconds to wait before the next, or raise."""
        return self.retry_delay(self._error or self.ended_early())

    def ended_early(self) -> Unavailable:
        """The error for a stream that ended OK before a terminal event (retried like a lost connection)."""
        return Unavailable(f"the watch of task {self.task_id!r} ended before the task did")

    def retry_delay(self, err: TaskServiceError) -> float:
        """Seconds to wait before the next attempt after `err`, or raise when it is not worth retrying."""
        if self._deadline is not None and self._clock() >= self._deadline:
            raise self._timed_out() from err
        if isinstance(err, OutOfRange) and self.last_sequence != 0:
            # The events after last_sequence are gone: start again from a fresh snapshot.
            self.last_sequence, self._resync = 0, True
            return 0.0
        if not isinstance(err, Unavailable) or not self._connected:
            raise err
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
        budget = self._failing_since + self._reconnect_timeout - now
        if budget <= 0:
            raise Unavailable(
                f"{err.message} (gave up reconnecting the watch of task {self.task_id!r} "
                f"after {self._reconnect_timeout:g}s)",
                field_violations=err.field_violations,
            ) from err
        delay = min(_BACKOFF_MAX, _BACKOFF_INITIAL * 2.0**self._failures)
        delay *= 1 + random.uniform(-_BACKOFF_JITTER, _BACKOFF_JITTER)
        self._failures += 1
        if self._deadline is not None:
            budget = min(budget, self._deadline - now)
        return max(0.0, min(delay, budget))

    def final_task(self) -> Task | None:
        return self.final.task if self.final is not None else None

    def _timed_out(self) -> DeadlineExceeded:
        return DeadlineExceeded(f"task {self.task_id!r} did not finish within {self._timeout:g}s")


class _WaitCursor(_WatchCursor):
    """One wait() across WaitTask calls: the overall timeout, and reconnects on UNAVAILABLE as a watch's."""

    def __init__(self, task_id: str, **options: Any) -> None:
        super().__init__(task_id, 0, **options)
        self.task: Task | None = None

    @property
    def done(self) -> bool:
        return self.task is not None and self.task.state.is_terminal

    def wait_request(self) -> tuple[pb.WaitTaskRequest, float]:
        """The next call: its request and its deadline (DeadlineExceeded once the overall timeout passed)."""
        wait = _WAIT_CALL_SECONDS
        if self._deadline is not None:
            left = self._deadline - self._clock()
            if left <= 0 and self.task is not None:  # the first call always asks, even with a timeout of 0
                raise self._timed_out()
            wait = min(max(left, 0.0), _WAIT_CALL_SECONDS)
        request = pb.WaitTaskRequest(task_id=self.task_id, timeout=seconds_to_duration(wait))
        return request, wait + _WAIT_CALL_GRACE

    def accept_wait(self, response: pb.WaitTaskResponse) -> Task | None:
        """The ended task, or None to call again; DeadlineExceeded when the timeout passed before the end."""
        self._failing_since, self._failures, self._connected = None, 0, True
        self.task = task_from_pb(response.task)
        if response.done:
            return self.task
        if self._deadline is not None and self._clock() >= self._deadline:
            raise self._timed_out()
        return None

    def _timed_out(self) -> DeadlineExceeded:
        now = f" (still {self.task.state.value})" if self.task is not None else ""
        error = DeadlineExceeded(f"task {self.task_id!r} did not finish within {self._timeout:g}s{now}")
        error.task = self.task
        return error


def _unimplemented(err: TaskServiceError) -> bool:
    """A server older than WaitTask: wait() falls back to watching."""
    return err.code is grpc.StatusCode.UNIMPLEMENTED


class _ManyCursor(_WatchCursor):
    """The state of one WatchTasks across reconnects: per task, the last sequence seen; done once every task has
    ended. A reconnect asks again for the tasks not ended, each after its own last sequence."""

    def __init__(self, task_ids: Sequence[str], *, ignore_missing: bool, reconnect_timeout: float,
                 timeout: float | None, security: Security | None) -> None:  # fmt: skip
        super().__init__(f"{len(task_ids)} tasks", 0, reconnect_timeout=reconnect_timeout, timeout=timeout,
                         security=security)  # fmt: skip
        self._ignore_missing = ignore_missing
        self._open = dict.fromkeys(task_ids, 0)  # task id -> the last sequence seen of it

    @property
    def done(self) -> bool:
        return not self._open

    def request(self) -> pb.WatchTasksRequest:  # type: ignore[override]
        return pb.WatchTasksRequest(
            task_ids=list(self._open),
            after_sequences={task_id: seen for task_id, seen in self._open.items() if seen},
            ignore_missing=self._ignore_missing,
        )

    def accept(self, message: pb.WatchTasksResponse) -> tuple[TaskEvent, ...]:  # type: ignore[override]
        self._received += 1
        self._failing_since, self._failures, self._connected = None, 0, True
        fresh: list[TaskEvent] = []
        for item in message.events:
            event = event_from_pb(item)
            seen = self._open.get(event.task_id)
            if seen is None or event.sequence <= seen:
                continue  # ended already, or seen before a reconnect
            if event.state.is_terminal:
                del self._open[event.task_id]
            else:
                self._open[event.task_id] = event.sequence
            fresh.append(event)
        return tuple(fresh)

    def _ended_cleanly(self) -> None:
        """The server ends a WatchTasks OK only once every task it watched has ended: those still open ended
        before the sequence resumed after, or do not exist (ignore_missing)."""
        self._open.clear()


class _LogCursor(_WatchCursor):
    """The state of one WatchLogs across reconnects: the next offset; done when a stream ends with OK."""

    def __init__(
        self, task_id: str, offset: int, follow: bool, *, reconnect_timeout: float, security: Security | None = None
    ) -> None:
        super().__init__(task_id, 0, reconnect_timeout=reconnect_timeout, security=security)
        self.offset = offset
        self.follow = follow
        self._finished = False

    @property
    def done(self) -> bool:
        return self._finished

    def request(self) -> pb.WatchLogsRequest:  # type: ignore[override]
        return pb.WatchLogsRequest(task_id=self.task_id, offset=self.offset, follow=self.follow)

    def accept(self, message: pb.WatchLogsResponse) -> tuple[LogChunk, ...]:  # type: ignore[override]
        self._failing_since, self._failures, self._connected = None, 0, True
        skip = max(0, self.offset - message.offset)  # bytes already yielded before a reconnect
        data = message.data[skip:]
        if not data:
            return ()
        start = message.offset + skip
        self.offset = start + len(data)
        return (LogChunk(message.task_id, start, data),)

    def _ended_cleanly(self) -> None:
        self._finished = True

    def ended_early(self) -> Unavailable:
        return Unavailable(f"the log stream of task {self.task_id!r} was cut")


# ---------------------------------------------------------------------------------------------------
# Clients


class _ClientBase(abc.ABC):
    """What TaskClient and AsyncTaskClient share: settings, channel and stub, watch cursors."""

    def __init__(
        self,
        address: str | None = None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        reconnect_timeout: float = DEFAULT_RECONNECT_TIMEOUT,
        token: str | None = None,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        trace_context: Mapping[str, str] | None = None,
    ) -> None:
        self.address = resolve_address(address)
        # Sent with each call when no OpenTelemetry span is current (taskctl passes TRACEPARENT this way).
        self.trace_context = dict(trace_context or {})
        self.timeout = timeout
        self.reconnect_timeout = reconnect_timeout
        self.security = Security.resolve(token=token, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key)
        self._metadata = self.security.metadata()
        credentials = self.security.channel_credentials() if self.security.uses_tls else None
        self._channel = self._open_channel(self.address, credentials)
        self._stub = pb_grpc.TaskServiceStub(self._channel)

    def _call_metadata(self) -> tuple[tuple[str, str], ...] | None:
        """The token, and the caller's trace context: the server's spans and the task's join the caller's trace."""
        traced = trace_headers() or tuple(self.trace_context.items())
        if not traced:
            return self._metadata
        return (*(self._metadata or ()), *traced)

    @abc.abstractmethod
    def _open_channel(self, address: str, credentials: grpc.ChannelCredentials | None) -> Any:
        """A plaintext channel without credentials, a TLS one with them."""

    def _cursor(
        self, task_id: str, after_sequence: int, timeout: float | None, started: float | None = None
    ) -> _WatchCursor:
        return _WatchCursor(
            task_id,
            after_sequence,
            reconnect_timeout=self.reconnect_timeout,
            timeout=timeout,
            security=self.security,
            started=started,
        )

    def _many_cursor(self, task_ids: Sequence[str], timeout: float | None, ignore_missing: bool) -> _ManyCursor:
        unique = list(dict.fromkeys(task_ids))
        return _ManyCursor(unique, ignore_missing=ignore_missing, reconnect_timeout=self.reconnect_timeout,
                           timeout=timeout, security=self.security)  # fmt: skip

    def _wait_cursor(self, task_id: str, timeout: float | None) -> _WaitCursor:
        return _WaitCursor(task_id, reconnect_timeout=self.reconnect_timeout, timeout=timeout, security=self.security)


class TaskClient(LimitMethods, _ClientBase):
    """Synchronous client. Use as a context manager, or call close().

    `address` None means $TASKSERVICE_ADDR, else 127.0.0.1:50051. `timeout` is the deadline of each
    unary call in seconds (None: no deadline). `reconnect_timeout` bounds how long watch() and wait()
    keep reconnecting to an unreachable server.
    `token`, `tls_ca`, `tls_cert` and `tls_key` (default: $TASKSERVICE_TOKEN, $TASKSERVICE_TLS_CA, ...)
    send a bearer token and turn on TLS or mutual TLS; see Security.
    """

    def _open_channel(self, address: str, credentials: grpc.ChannelCredentials | None) -> grpc.Channel:
        if credentials is None:
            return grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        return grpc.secure_channel(address, credentials, options=CHANNEL_OPTIONS)

    def __enter__(self) -> TaskClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel; safe to call twice."""
        self._channel.close()

    def _invoke(self, call: _Unary[R]) -> R:
        with _rpc_errors(self.security):
            method = getattr(self._stub, call.method)
            response = method(call.request, timeout=self.timeout, metadata=self._call_metadata())
        return call.convert(response)

    def submit(
        self,
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
    ) -> SubmitResult:
        """Queue a task. time_limit is in seconds (None: the server default). To run it later: `not_before` (an
        aware datetime) or `delay` (seconds); it waits PENDING, with scheduled_at set, until then. `retention`
        (seconds; 0: for ever) keeps it that long once ended instead of the server's --retention. `after`: ids of
        tasks that must succeed first (it ends REVOKED, error type DependencyFailed, if one does not)."""
        options = {"task_id": task_id, "time_limit": time_limit, "priority": priority, "labels": labels,
                   "not_before": not_before, "delay": delay, "retention": retention, "after": after}  # fmt: skip
        return self._invoke(_submit_call(task_type, args, **options))

    def submit_batch(self, requests: Iterable[pb.SubmitRequest]) -> list[SubmitResult | TaskServiceError]:
        """Submit many tasks (build each with submit_request()), MAX_BATCH per call, one durable commit per call.

        Returns one result per request, in order: a SubmitResult, or the error that request alone got.
        """
        pending = list(requests)
        results: list[SubmitResult | TaskServiceError] = []
        for start in range(0, len(pending), MAX_BATCH):
            chunk: list[SubmitResult | TaskServiceError] = self._invoke(_batch_call(pending[start : start + MAX_BATCH]))
            results.extend(chunk)
        return results

    def get(self, task_id: str) -> Task:
        """The task as it is now; TaskNotFound for an unknown id."""
        return self._invoke(_get_call(task_id))

    def stop(self, task_id: str, reason: str = "") -> Task:
        """Revoke a pending task or ask a running one to stop; a finished task is returned unchanged."""
        return self._invoke(_stop_call(task_id, reason))

    def stop_tasks(
        self,
        *,
        states: Iterable[TaskState | str] = (),
        task_type: str = "",
        labels: Mapping[str, str] | None = None,
        scheduled: bool = False,
        reason: str = "",
        everything: bool = False,
    ) -> StopCount:
        """Stop every unfinished task matching the filters (states: PENDING and/or RUNNING), as stop() each;
        with no filter at all, only with everything=True."""
        filters = {"states": states, "task_type": task_type, "labels": labels, "scheduled": scheduled}
        return self._invoke(_stop_tasks_call(reason, everything, **filters))

    def delete(self, task_id: str) -> Task:
        """Delete an ended task now, with its log; returns it as it was. FailedPrecondition for an unfinished one."""
        return self._invoke(_delete_call(task_id))

    def delete_tasks(
        self,
        *,
        states: Iterable[TaskState | str] = (),
        task_type: str = "",
        labels: Mapping[str, str] | None = None,
        ended_before: datetime | None = None,
        everything: bool = False,
    ) -> int:
        """Delete every ended task matching the filters (states: ended ones); how many. With no filter at all,
        only with everything=True."""
        filters = {"states": states, "task_type": task_type, "labels": labels}
        return self._invoke(_delete_tasks_call(ended_before, everything, **filters))

    def retry(self, task_id: str, reason: str = "") -> Task:
        """Run a task that ended FAILURE, TIMED_OUT, REVOKED or LOST again, as its next attempt; returns it PENDING.
        FailedPrecondition for a task in another state; `reason` goes to its log."""
        return self._invoke(_retry_call(task_id, reason))

    def list(
        self,
        *,
        states: Iterable[TaskState | str] = (),
        task_type: str = "",
        labels: Mapping[str, str] | None = None,
        page_size: int = 100,
        page_token: str = "",
        scheduled: bool = False,
        waiting_for_limit: str = "",
    ) -> TaskPage:
        """One page of tasks, newest first, filtered by states, type and labels."""
        filters = {"states": states, "task_type": task_type, "labels": labels, "scheduled": scheduled,
                   "waiting_for_limit": waiting_for_limit}  # fmt: skip
        return self._invoke(_list_call(**filters, page_size=page_size, page_token=page_token))

    def iter_tasks(
        self,
        *,
        states: Iterable[TaskState | str] = (),
        task_type: str = "",
        labels: Mapping[str, str] | None = None,
        page_size: int = 100,
        scheduled: bool = False,
        waiting_for_limit: str = "",
    ) -> Iterator[Task]:
        """Every task matching the filters, page after page."""
        wanted = tuple(states)
        token = ""
        while True:
            page = self.list(
                states=wanted,
                task_type=task_type,
                labels=labels,
                page_size=page_size,
                page_token=token,
                scheduled=scheduled,
                waiting_for_limit=waiting_for_limit,
            )
            yield from page.tasks
            token = page.next_page_token
            if not token:
                return

    def create_schedule(
        self,
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
    ) -> ScheduleResult:
        """Submit `task_type` with `args` on `cron` (five fields, or six with seconds last; in `time_zone`, UTC when
        empty) or every `interval` seconds, each firing as task `<schedule_id>:<due time>`. `catch_up` ("SKIP",
        "ONCE", "ALL") decides about due times missed while no server ran. The same definition again answers
        created=False; another one under the id raises AlreadyExists."""
        options = {"cron": cron, "time_zone": time_zone, "interval": interval, "catch_up": catch_up,
                   "paused": paused, "time_limit": time_limit, "priority": priority, "labels": labels,
                   "retention": retention}  # fmt: skip
        return self._invoke(_create_schedule_call(schedule_id, task_type, args, **options))

    def get_schedule(self, schedule_id: str) -> Schedule:
        return self._invoke(_schedule_call("GetSchedule", schedule_id))

    def task_types(self) -> TaskTypes:
        """The task types the server runs, by name, with the args each takes."""
        return self._invoke(_task_types_call())

    def list_schedules(self, *, page_size: int = 100, page_token: str = "") -> SchedulePage:
        return self._invoke(_list_schedules_call(page_size, page_token))

    def iter_schedules(self, *, page_size: int = 100) -> Iterator[Schedule]:
        """Every schedule, in id order, page after page."""
        token = ""
        while True:
            page = self.list_schedules(page_size=page_size, page_token=token)
            yield from page.schedules
            token = page.next_page_token
            if not token:
                return

    def pause_schedule(self, schedule_id: str) -> Schedule:
        """No firing until resumed."""
        return self._invoke(_schedule_call("PauseSchedule", schedule_id))

    def resume_schedule(self, schedule_id: str) -> Schedule:
        """Fire again from the next due time after now (those missed while paused are skipped)."""
        return self._invoke(_schedule_call("ResumeSchedule", schedule_id))

    def delete_schedule(self, schedule_id: str) -> Schedule:
        """Remove a schedule; the tasks it submitted stay. Returns it as it was."""
        return self._invoke(_schedule_call("DeleteSchedule", schedule_id))

    def watch(self, task_id: str, *, after_sequence: int = 0, timeout: float | None = None) -> Iterator[TaskEvent]:
        """Events of a task up to and including the terminal one.

        Once connected, it reconnects on UNAVAILABLE (resuming after the last sequence seen) for up to
        reconnect_timeout seconds of failure; on OUT_OF_RANGE it goes on from a fresh snapshot. A watch
        that never got its first event raises at once. `timeout` bounds the whole watch
        (DeadlineExceeded).
        """
        return self._follow(self._cursor(task_id, after_sequence, timeout), self._stub.WatchProgress)

    def logs(self, task_id: str, *, offset: int = 0, follow: bool = False) -> Iterator[LogChunk]:
        """A task's log from `offset` on; with follow, until the task ends. Reconnects like watch()."""
        cursor = _LogCursor(task_id, offset, follow, reconnect_timeout=self.reconnect_timeout, security=self.security)
        return self._follow(cursor, self._stub.WatchLogs)

    def watch_many(
        self, task_ids: Sequence[str], *, timeout: float | None = None, ignore_missing: bool = False
    ) -> Iterator[TaskEvent]:
        """The events of many tasks (up to 10,000) in one WatchTasks stream, until every one has ended; each
        reconnect resumes every task after its last event. TaskNotFound for unknown ids unless ignore_missing."""
        return self._follow(self._many_cursor(task_ids, timeout, ignore_missing), self._stub.WatchTasks)

    def as_completed(self, task_ids: Sequence[str], *, timeout: float | None = None) -> Iterator[Task]:
        """Each task as it ends, in the order they end (one WatchTasks stream); DeadlineExceeded after `timeout`."""
        for event in self.watch_many(task_ids, timeout=timeout):
            if event.state.is_terminal and event.task is not None:
                yield event.task

    def wait_all(self, task_ids: Sequence[str], timeout: float | None = None) -> Sequence[Task]:
        """Every task once ended, in the order given (one WatchTasks stream); DeadlineExceeded after `timeout`."""
        ended = {task.task_id: task for task in self.as_completed(task_ids, timeout=timeout)}
        return [ended[task_id] for task_id in task_ids]

    def _follow(self, cursor: _WatchCursor, method: Any) -> Iterator[Any]:
        while True:
            stream = method(cursor.request(), timeout=cursor.call_timeout(), metadata=self._call_metadata())
            with cursor.attempt(stream):
                for message in stream:
                    yield from cursor.accept(message)
                    if cursor.done:
                        return
            if cursor.done:
                return
            time.sleep(cursor.next_delay())

    def wait(self, task_id: str, timeout: float | None = None) -> Task:
        """Wait until the task ends and return it; DeadlineExceeded after `timeout` seconds (None: no limit).

        One WaitTask call at a time, each at most a minute; reconnects on UNAVAILABLE as watch() does."""
        cursor = self._wait_cursor(task_id, timeout)
        while True:
            request, deadline = cursor.wait_request()
            try:
                with _rpc_errors(self.security):
                    response = self._stub.WaitTask(request, timeout=deadline, metadata=self._call_metadata())
            except TaskServiceError as err:
                if _unimplemented(err):
                    return self._wait_by_watch(task_id, timeout, cursor.started)
                time.sleep(cursor.retry_delay(err))
                continue
            task = cursor.accept_wait(response)
            if task is not None:
                return task

    def _wait_by_watch(self, task_id: str, timeout: float | None, started: float) -> Task:
        cursor = self._cursor(task_id, 0, timeout, started)
        for _ in self._follow(cursor, self._stub.WatchProgress):
            pass
        return cursor.final_task() or self.get(task_id)


class AsyncTaskClient(AsyncLimitMethods, _ClientBase):
    """asyncio client on grpc.aio with the same methods as TaskClient, as coroutines.

    Create it inside a running event loop; use `async with`, or await close().
    """

    def _open_channel(self, address: str, credentials: grpc.ChannelCredentials | None) -> grpc.aio.Channel:
        if credentials is None:
            return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
        return grpc.aio.secure_channel(address, credentials, options=CHANNEL_OPTIONS)

    async def __aenter__(self) -> AsyncTaskClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel; safe to call twice."""
        await self._channel.close()

    async def _invoke(self, call: _Unary[R]) -> R:
        with _rpc_errors(self.security):
            response = await getattr(self._stub, call.method)(
                call.request, timeout=self.timeout, metadata=self._call_metadata()
            )
        return call.convert(response)

    async def submit(
        self,
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
    ) -> SubmitResult:
        """Queue a task. time_limit is in seconds (None: the server default). To run it later: `not_before` (an
        aware datetime) or `delay` (seconds); it waits PENDING, with scheduled_at set, until then. `retention`
        (seconds; 0: for ever) keeps it that long once ended instead of the server's --retention. `after`: ids of
        tasks that must succeed first (it ends REVOKED, error type DependencyFailed, if one does not)."""
        options = {"task_id": task_id, "time_limit": time_limit, "priority": priority, "labels": labels,
                   "not_before": not_before, "delay": delay, "retention": retention, "after": after}  # fmt: skip
        return await self._invoke(_submit_call(task_type, args, **options))

    async def submit_batch(self, requests: Iterable[pb.SubmitRequest]) -> list[SubmitResult | TaskServiceError]:
        """Submit many tasks; see TaskClient.submit_batch()."""
        pending = list(requests)
        results: list[SubmitResult | TaskServiceError] = []
        for start in range(0, len(pending), MAX_BATCH):
            call = _batch_call(pending[start : start + MAX_BATCH])
            chunk: list[SubmitResult | TaskServiceError] = await self._invoke(call)
            results.extend(chunk)
        return results

    async def get(self, task_id: str) -> Task:
        """The task as it is now; TaskNotFound for an unknown id."""
        return await self._invoke(_get_call(task_id))

    async def stop(self, task_id: str, reason: str = "") -> Task:
        """Revoke a pending task or ask a running one to stop; a finished task is returned unchanged."""
        return await self._invoke(_stop_call(task_id, reason))

    async def stop_tasks(
        self,
        *,
        states: Iterable[TaskState | str] = (),
        task_type: str = "",
        labels: Mapping[str, str] | None = None,
        scheduled: bool = False,
        reason: str = "",
        everything: bool = False,
    ) -> StopCount:
        """Stop every unfinished task matching the filters; see TaskClient.stop_tasks()."""
        filters = {"states": states, "task_type": task_type, "labels": labels, "scheduled": scheduled}
        return await self._invoke(_stop_tasks_call(reason, everything, **filters))

    async def delete(self, task_id: str) -> Task:
        """Delete an ended task now; see TaskClient.delete()."""
        return await self._invoke(_delete_call(task_id))

    async def delete_tasks(
        self,
        *,
        states: Iterable[TaskState | str] = (),
        task_type: str = "",
        labels: Mapping[str, str] | None = None,
        ended_before: datetime | None = None,
        everything: bool = False,
    ) -> int:
        """Delete every ended task matching the filters; see TaskClient.delete_tasks()."""
        filters = {"states": states, "task_type": task_type, "labels": labels}
        return await self._invoke(_delete_tasks_call(ended_before, everything, **filters))

    async def retry(self, task_id: str, reason: str = "") -> Task:
        """Run an ended task again as its next attempt; see TaskClient.retry()."""
        return await self._invoke(_retry_call(task_id, reason))

    async def list(
        self,
        *,
        states: Iterable[TaskState | str] = (),
        task_type: str = "",
        labels: Mapping[str, str] | None = None,
        page_size: int = 100,
        page_token: str = "",
        scheduled: bool = False,
        waiting_for_limit: str = "",
    ) -> TaskPage:
        """One page of tasks, newest first, filtered by states, type and labels."""
        filters = {"states": states, "task_type": task_type, "labels": labels, "scheduled": scheduled,
                   "waiting_for_limit": waiting_for_limit}  # fmt: skip
        return await self._invoke(_list_call(**filters, page_size=page_size, page_token=page_token))

    async def iter_tasks(
        self,
        *,
        states: Iterable[TaskState | str] = (),
        task_type: str = "",
        labels: Mapping[str, str] | None = None,
        page_size: int = 100,
        scheduled: bool = False,
        waiting_for_limit: str = "",
    ) -> AsyncIterator[Task]:
        """Every task matching the filters, page after page."""
        wanted = tuple(states)
        token = ""
        while True:
            page = await self.list(
                states=wanted,
                task_type=task_type,
                labels=labels,
                page_size=page_size,
                page_token=token,
                scheduled=scheduled,
                waiting_for_limit=waiting_for_limit,
            )
            for task in page.tasks:
                yield task
            token = page.next_page_token
            if not token:
                return

    async def create_schedule(
        self,
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
    ) -> ScheduleResult:
        """Create a schedule; see TaskClient.create_schedule()."""
        options = {"cron": cron, "time_zone": time_zone, "interval": interval, "catch_up": catch_up,
                   "paused": paused, "time_limit": time_limit, "priority": priority, "labels": labels,
                   "retention": retention}  # fmt: skip
        return await self._invoke(_create_schedule_call(schedule_id, task_type, args, **options))

    async def get_schedule(self, schedule_id: str) -> Schedule:
        return await self._invoke(_schedule_call("GetSchedule", schedule_id))

    async def task_types(self) -> TaskTypes:
        return await self._invoke(_task_types_call())

    async def list_schedules(self, *, page_size: int = 100, page_token: str = "") -> SchedulePage:
        return await self._invoke(_list_schedules_call(page_size, page_token))

    async def pause_schedule(self, schedule_id: str) -> Schedule:
        return await self._invoke(_schedule_call("PauseSchedule", schedule_id))

    async def resume_schedule(self, schedule_id: str) -> Schedule:
        return await self._invoke(_schedule_call("ResumeSchedule", schedule_id))

    async def delete_schedule(self, schedule_id: str) -> Schedule:
        return await self._invoke(_schedule_call("DeleteSchedule", schedule_id))

    def watch(self, task_id: str, *, after_sequence: int = 0, timeout: float | None = None) -> AsyncIterator[TaskEvent]:
        """Events of a task up to and including the terminal one (see TaskClient.watch)."""
        return self._follow(self._cursor(task_id, after_sequence, timeout), self._stub.WatchProgress)

    def logs(self, task_id: str, *, offset: int = 0, follow: bool = False) -> AsyncIterator[LogChunk]:
        """A task's log from `offset` on; with follow, until the task ends. Reconnects like watch()."""
        cursor = _LogCursor(task_id, offset, follow, reconnect_timeout=self.reconnect_timeout, security=self.security)
        return self._follow(cursor, self._stub.WatchLogs)

    def watch_many(
        self, task_ids: Sequence[str], *, timeout: float | None = None, ignore_missing: bool = False
    ) -> AsyncIterator[TaskEvent]:
        """The events of many tasks in one WatchTasks stream (see TaskClient.watch_many)."""
        return self._follow(self._many_cursor(task_ids, timeout, ignore_missing), self._stub.WatchTasks)

    async def as_completed(self, task_ids: Sequence[str], *, timeout: float | None = None) -> AsyncIterator[Task]:
        """Each task as it ends, in the order they end (see TaskClient.as_completed)."""
        async for event in self.watch_many(task_ids, timeout=timeout):
            if event.state.is_terminal and event.task is not None:
                yield event.task

    async def wait_all(self, task_ids: Sequence[str], timeout: float | None = None) -> Sequence[Task]:
        """Every task once ended, in the order given (see TaskClient.wait_all)."""
        ended = {task.task_id: task async for task in self.as_completed(task_ids, timeout=timeout)}
        return [ended[task_id] for task_id in task_ids]

    async def _follow(self, cursor: _WatchCursor, method: Any) -> AsyncIterator[Any]:
        while True:
            stream = method(cursor.request(), timeout=cursor.call_timeout(), metadata=self._call_metadata())
            with cursor.attempt(stream):
                async for message in stream:
                    for item in cursor.accept(message):
                        yield item
                    if cursor.done:
                        return
            if cursor.done:
                return
            await asyncio.sleep(cursor.next_delay())

    async def wait(self, task_id: str, timeout: float | None = None) -> Task:
        """Wait until the task ends and return it; DeadlineExceeded after `timeout` seconds (None: no limit).

        One WaitTask call at a time, each at most a minute; reconnects on UNAVAILABLE as watch() does."""
        cursor = self._wait_cursor(task_id, timeout)
        while True:
            request, deadline = cursor.wait_request()
            try:
                with _rpc_errors(self.security):
                    response = await self._stub.WaitTask(request, timeout=deadline, metadata=self._call_metadata())
            except TaskServiceError as err:
                if _unimplemented(err):
                    return await self._wait_by_watch(task_id, timeout, cursor.started)
                await asyncio.sleep(cursor.retry_delay(err))
                continue
            task = cursor.accept_wait(response)
            if task is not None:
                return task

    async def _wait_by_watch(self, task_id: str, timeout: float | None, started: float) -> Task:
        cursor = self._cursor(task_id, 0, timeout, started)
        async for _ in self._follow(cursor, self._stub.WatchProgress):
            pass
        return cursor.final_task() or await self.get(task_id)
