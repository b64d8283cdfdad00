"""Helpers of the fault tests: waiting on tasks over gRPC with deadlines, and checking the service is fine."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from taskservice.server.app import RunningServer
from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc
from tests.grpc.helpers import TERMINAL, struct

# Generous: a bystander task on a healthy server ends in milliseconds.
SETTLE_SECONDS = 10.0


def state_name(state: int) -> str:
    return pb.TaskState.Name(state).removeprefix("TASK_STATE_")  # type: ignore[arg-type]


@asynccontextmanager
async def connect(running: RunningServer) -> AsyncIterator[pb_grpc.TaskServiceStub]:
    """A channel of its own to `running`, closed afterwards."""
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{running.port}", options=[("grpc.max_receive_message_length", 16 * 1024 * 1024)]
    ) as chan:
        yield pb_grpc.TaskServiceStub(chan)


async def submit(stub: pb_grpc.TaskServiceStub, task_type: str, task_id: str = "", **args: object) -> str:
    request = pb.SubmitRequest(task_type=task_type, args=struct(**args), task_id=task_id)
    return (await stub.Submit(request, timeout=10)).task.task_id


async def get(stub: pb_grpc.TaskServiceStub, task_id: str) -> pb.Task:
    """GetState; an RPC error becomes an AssertionError that says which task could not be read and why."""
    try:
        return (await stub.GetState(pb.GetStateRequest(task_id=task_id), timeout=10)).task
    except grpc.aio.AioRpcError as err:
        raise AssertionError(f"GetState({task_id}) failed: {err.code().name}: {err.details()}") from err


async def wait_exists(stub: pb_grpc.TaskServiceStub, task_id: str, timeout: float = SETTLE_SECONDS) -> pb.Task:
    """Poll GetState while it answers NOT_FOUND; the task once it exists. AssertionError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return (await stub.GetState(pb.GetStateRequest(task_id=task_id), timeout=10)).task
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.NOT_FOUND:
                raise AssertionError(f"GetState({task_id}) failed: {err.code().name}: {err.details()}") from err
        if time.monotonic() >= deadline:
            raise AssertionError(f"task {task_id} did not appear within {timeout:g} s")
        await asyncio.sleep(0.01)


async def wait_state(
    stub: pb_grpc.TaskServiceStub, task_id: str, states: set[int], timeout: float = SETTLE_SECONDS
) -> pb.Task:
    """Poll GetState until the task is in one of `states`; AssertionError (with its last state) at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        task = await get(stub, task_id)
        if task.state in states:
            return task
        if time.monotonic() >= deadline:
            wanted = ", ".join(state_name(s) for s in sorted(states))
            raise AssertionError(
                f"task {task_id} ({task.task_type}) still {state_name(task.state)} after {timeout:g} s, "
                f"expected {wanted}"
            )
        await asyncio.sleep(0.01)


async def final(stub: pb_grpc.TaskServiceStub, task_id: str, timeout: float = SETTLE_SECONDS) -> pb.Task:
    return await wait_state(stub, task_id, TERMINAL, timeout)


async def list_all(stub: pb_grpc.TaskServiceStub, page_size: int = 50) -> list[pb.Task]:
    """Every task, page after page; an RPC error becomes an AssertionError."""
    tasks: list[pb.Task] = []
    token = ""
    while True:
        try:
            page = await stub.ListTasks(pb.ListTasksRequest(page_size=page_size, page_token=token), timeout=10)
        except grpc.aio.AioRpcError as err:
            raise AssertionError(f"ListTasks failed: {err.code().name}: {err.details()}") from err
        tasks.extend(page.tasks)
        token = page.next_page_token
        if not token:
            return tasks


async def watch_to_end(stub: pb_grpc.TaskServiceStub, task_id: str, timeout: float = SETTLE_SECONDS) -> list:
    """Every event of a WatchProgress from a snapshot; an RPC error becomes an AssertionError."""
    events = []
    try:
        async for event in stub.WatchProgress(pb.WatchProgressRequest(task_id=task_id), timeout=timeout):
            events.append(event)
    except grpc.aio.AioRpcError as err:
        raise AssertionError(
            f"WatchProgress({task_id}) failed after {len(events)} events: {err.code().name}: {err.details()}"
        ) from err
    return events


async def assert_service_fine(running: RunningServer, stub: pb_grpc.TaskServiceStub) -> None:
    """Health says SERVING, every task can be listed, and a new task runs to SUCCESS."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as chan:
        health = health_pb2_grpc.HealthStub(chan)
        reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    await list_all(stub)
    task_id = await submit(stub, "echo", value="still fine")
    task = await final(stub, task_id)
    assert task.state == pb.TASK_STATE_SUCCESS and task.result.string_value == "still fine"
