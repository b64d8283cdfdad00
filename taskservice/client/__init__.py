"""The typed Python client of taskservice: `TaskClient` (sync) and `AsyncTaskClient` (asyncio).

Both return plain Python objects (`Task`, `TaskEvent`, ...), never protobuf messages, and raise one exception tree
rooted at `TaskServiceError`. Written once: async_client.py is the source, sync_client.py is generated from it by
scripts/unasync.py. What both share lives beside them, one concern per module:

- models: the plain data returned; errors: the exception tree and how a gRPC status maps onto it;
- convert: protobuf <-> plain data and the requests built from arguments; calls: each unary call as a descriptor;
- cursors: a stream's state across reconnects; security: address, token, TLS; wire: times and trace headers;
- limits: the limit data and calls; base: settings and the channel both clients hold;
- async_run (and sync_run, generated): `TaskRun[R]`, a task submitted by function (a `@task` handle, see
  taskservice.handles); results: its result decoded into the handler's return type, or `TaskFailed`.

This package imports grpc and the generated `taskservice.v1` code only, never the server's engine.
"""

from __future__ import annotations

from taskservice.client.async_client import AsyncTaskClient
from taskservice.client.async_run import AsyncTaskRun
from taskservice.client.base import CHANNEL_OPTIONS, DEFAULT_RECONNECT_TIMEOUT, DEFAULT_TIMEOUT
from taskservice.client.calls import MAX_BATCH, schedule_request
from taskservice.client.convert import list_request, submit_request
from taskservice.client.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    OutOfRange,
    QueueFull,
    TaskNotFound,
    TaskServiceError,
    Unavailable,
)
from taskservice.client.limits import Limit, LimitPage, LimitResult, parse_rate
from taskservice.client.models import (
    HistoryEntry,
    LimitCount,
    LogChunk,
    MinuteCounts,
    Node,
    Progress,
    Schedule,
    SchedulePage,
    ScheduleResult,
    Stats,
    StopCount,
    SubmitResult,
    Task,
    TaskArgInfo,
    TaskCount,
    TaskError,
    TaskEvent,
    TaskPage,
    TaskState,
    TaskTypeInfo,
    TaskTypes,
)
from taskservice.client.results import ResultTypeError, TaskFailed
from taskservice.client.security import ADDRESS_ENV, DEFAULT_ADDRESS, Security, resolve_address
from taskservice.client.sync_client import TaskClient
from taskservice.client.sync_run import TaskRun
from taskservice.handles import TaskCall, TaskDef

__all__ = [
    "ADDRESS_ENV",
    "CHANNEL_OPTIONS",
    "DEFAULT_ADDRESS",
    "DEFAULT_RECONNECT_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "MAX_BATCH",
    "AlreadyExists",
    "AsyncTaskClient",
    "AsyncTaskRun",
    "DeadlineExceeded",
    "FailedPrecondition",
    "HistoryEntry",
    "InvalidArgument",
    "Limit",
    "LimitCount",
    "LimitPage",
    "LimitResult",
    "LogChunk",
    "MinuteCounts",
    "Node",
    "OutOfRange",
    "Progress",
    "QueueFull",
    "ResultTypeError",
    "Schedule",
    "SchedulePage",
    "ScheduleResult",
    "Security",
    "Stats",
    "StopCount",
    "SubmitResult",
    "Task",
    "TaskArgInfo",
    "TaskCall",
    "TaskClient",
    "TaskCount",
    "TaskDef",
    "TaskError",
    "TaskEvent",
    "TaskFailed",
    "TaskNotFound",
    "TaskPage",
    "TaskRun",
    "TaskServiceError",
    "TaskState",
    "TaskTypeInfo",
    "TaskTypes",
    "Unavailable",
    "list_request",
    "parse_rate",
    "resolve_address",
    "schedule_request",
    "submit_request",
]
