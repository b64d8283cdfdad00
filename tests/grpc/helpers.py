"""Small helpers for talking to the server in tests: rich error details, watching to the end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import grpc
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc

TERMINAL = {
    pb.TASK_STATE_SUCCESS,
    pb.TASK_STATE_FAILURE,
    pb.TASK_STATE_REVOKED,
    pb.TASK_STATE_TIMED_OUT,
    pb.TASK_STATE_LOST,
}


def struct(**values: object) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


def field_violations(error: grpc.aio.AioRpcError) -> list[str]:
    """The fields named by the google.rpc.BadRequest detail of an error."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, f"no rich status on {error.code()}: {error.details()}"
    fields = []
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            fields.extend(v.field for v in bad_request.field_violations)
    return fields


async def watch_all(
    stub: pb_grpc.TaskServiceStub, task_id: str, *, after_sequence: int = 0, timeout: float = 20.0
) -> list[pb.WatchProgressResponse]:
    """Every event of a WatchProgress stream until it ends (it must end OK)."""
    events = []
    async for event in stub.WatchProgress(
        pb.WatchProgressRequest(task_id=task_id, after_sequence=after_sequence), timeout=timeout
    ):
        events.append(event)
    return events


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s")
        await asyncio.sleep(0.01)


async def eventually_holds(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """eventually() of a predicate that must await (an RPC)."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s")
        await asyncio.sleep(0.05)


async def wait_for_state(
    stub: pb_grpc.TaskServiceStub, task_id: str, state: int, timeout: float = 10.0
) -> pb.WatchProgressResponse:
    call = stub.WatchProgress(pb.WatchProgressRequest(task_id=task_id), timeout=timeout)
    try:
        async for event in call:
            if event.state == state:
                return event
    finally:
        call.cancel()
    raise AssertionError(f"task {task_id} ended without reaching state {pb.TaskState.Name(state)}")
