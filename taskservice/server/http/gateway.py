"""The HTTP face calls the very servicer gRPC calls: one implementation, one error table.

A call runs the servicer's method with a context of its own, whose abort() raises RpcAbort carrying the status the
servicer chose (its code, message and google.rpc.Status details), for the HTTP side to turn into a response.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
from google.protobuf.message import Message
from google.rpc import status_pb2

from taskservice.server.http.fast_json import message_to_dict
from taskservice.server.servicer import TaskServiceServicer
from taskservice.v1 import task_service_pb2 as pb

_DETAILS_KEY = "grpc-status-details-bin"


class RpcAbort(Exception):
    """The servicer ended a call with a status other than OK."""

    def __init__(self, code: grpc.StatusCode, message: str, metadata: Sequence[tuple[str, Any]] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.metadata = tuple(metadata)

    def status(self) -> status_pb2.Status:
        """google.rpc.Status with the details the servicer attached (e.g. google.rpc.BadRequest)."""
        for key, value in self.metadata:
            if key == _DETAILS_KEY:
                return status_pb2.Status.FromString(value)
        return status_pb2.Status(code=self.code.value[0], message=self.message)


class _Context:
    """What the servicer's methods use of a grpc.aio.ServicerContext."""

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Sequence[Any] = ()) -> None:
        raise RpcAbort(code, details, trailing_metadata)

    def time_remaining(self) -> float | None:
        return None


# How many recent events' Server-Sent Events form are kept: the watchers of a task all get the same event, which
# is then turned into JSON once, not once per watcher.
SSE_CACHE = 1024


class Gateway:
    def __init__(self, servicer: TaskServiceServicer) -> None:
        self.servicer = servicer
        self._sse: OrderedDict[bytes, bytes] = OrderedDict()

    async def watch_sse(self, request: pb.WatchProgressRequest | pb.WatchTasksRequest) -> AsyncIterator[bytes]:
        """The events of WatchProgress (or of WatchTasks) as Server-Sent Events (id, event, data lines); RpcAbort
        as for unary()."""
        if isinstance(request, pb.WatchProgressRequest):
            async for data in self.servicer.WatchProgress(request, _Context()):  # type: ignore[arg-type]
                yield self._sse_of(data)
            return
        async for data in self.servicer.WatchTasks(request, _Context()):  # type: ignore[arg-type]
            # One SSE event per task event: a browser's EventSource takes them one by one.
            yield b"".join(sse_event(event) for event in pb.WatchTasksResponse.FromString(data).events)

    def _sse_of(self, data: bytes) -> bytes:
        """An encoded WatchProgressResponse as an SSE event, made once for all the watchers of that event."""
        encoded = self._sse.get(data)
        if encoded is None:
            encoded = sse_event(pb.WatchProgressResponse.FromString(data))
            self._sse[data] = encoded
            if len(self._sse) > SSE_CACHE:
                self._sse.popitem(last=False)
        return encoded

    async def unary(self, method: str, request: Message) -> Any:
        """The response of a unary RPC; RpcAbort for any other status than OK."""
        return await getattr(self.servicer, method)(request, _Context())

    async def logs(self, request: pb.WatchLogsRequest) -> AsyncIterator[pb.WatchLogsResponse]:
        async for chunk in self.servicer.WatchLogs(request, _Context()):  # type: ignore[arg-type]
            yield chunk


def sse_event(event: pb.WatchProgressResponse) -> bytes:
    """One Server-Sent Event: `id:` the sequence, `event:` state (a state change, with the task) or progress."""
    kind = "state" if event.HasField("task") else "progress"
    data = json.dumps(message_to_dict(event), separators=(",", ":"))
    return f"id: {event.sequence}\nevent: {kind}\ndata: {data}\n\n".encode()
