"""WatchLogs over the wire: follow a running task, resume from an offset, errors."""

from __future__ import annotations

import grpc
import pytest

from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc
from tests.grpc.helpers import struct, watch_all
from tests.support.task_types import Gates

EXPECTED = b"".join(f"line {i}\n".encode() for i in range(10))


async def read_logs(stub: pb_grpc.TaskServiceStub, task_id: str, offset: int = 0, follow: bool = True) -> bytes:
    data = b""
    async for chunk in stub.WatchLogs(pb.WatchLogsRequest(task_id=task_id, offset=offset, follow=follow), timeout=20):
        assert chunk.offset == offset + len(data), "chunks are contiguous"
        data += chunk.data
    return data


async def test_follow_streams_a_running_task_until_it_ends(stub: pb_grpc.TaskServiceStub, gates: Gates) -> None:
    task_id = (await stub.Submit(pb.SubmitRequest(task_type="chatty", args=struct(name="half")))).task.task_id
    call = stub.WatchLogs(pb.WatchLogsRequest(task_id=task_id, follow=True), timeout=20)
    received = b""
    async for chunk in call:
        received += chunk.data
        if received == EXPECTED[: len(b"line 0\n") * 5]:
            gates.open("half")  # the first half arrived while the task still runs
    assert received == EXPECTED
    assert (await watch_all(stub, task_id))[-1].state == pb.TASK_STATE_SUCCESS


async def test_a_reconnecting_reader_resumes_at_its_offset(stub: pb_grpc.TaskServiceStub, gates: Gates) -> None:
    gates.open("r")
    task_id = (await stub.Submit(pb.SubmitRequest(task_type="chatty", args=struct(name="r")))).task.task_id
    await watch_all(stub, task_id)
    whole = await read_logs(stub, task_id, follow=False)
    assert whole == EXPECTED
    resumed = await read_logs(stub, task_id, offset=21)
    assert resumed == EXPECTED[21:]
    assert await read_logs(stub, task_id, offset=len(EXPECTED)) == b""


async def test_logs_of_unknown_tasks_are_not_found(stub: pb_grpc.TaskServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await read_logs(stub, "nobody")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
