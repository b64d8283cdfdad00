"""Garbage, oversized and malformed input gets a clear status and changes nothing."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.descriptor import MethodDescriptor

from taskservice.server.app import RunningServer
from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc
from tests.grpc.helpers import field_violations, struct
from tests.support.inprocess import StartServer


def length_delimited(tag: int, payload: bytes) -> bytes:
    """One protobuf field (wire type 2), written by hand so a client library cannot refuse to send it."""
    size, prefix = len(payload), bytearray([tag])
    while True:
        byte, size = size & 0x7F, size >> 7
        prefix.append(byte | (0x80 if size else 0))
        if not size:
            return bytes(prefix) + payload


def nested_submit(depth: int) -> bytes:
    value = length_delimited(0x1A, b"x")  # Value.string_value
    for _ in range(depth):
        value = length_delimited(0x32, length_delimited(0x0A, value))  # Value.list_value.values[0]
    entry = length_delimited(0x0A, b"x") + length_delimited(0x12, value)  # Struct.fields entry
    return length_delimited(0x0A, b"demo") + length_delimited(0x12, length_delimited(0x0A, entry))


@pytest.mark.parametrize("payload", [b"\xff\xff\xff\x00garbage", nested_submit(300)], ids=["garbage", "too-deep"])
async def test_undecodable_requests_are_invalid_argument(
    channel: grpc.aio.Channel, stub: pb_grpc.TaskServiceStub, payload: bytes
) -> None:
    raw = channel.unary_unary("/taskservice.v1.TaskService/Submit")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await raw(payload)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid taskservice.v1.SubmitRequest" in caught.value.details()
    assert list((await stub.ListTasks(pb.ListTasksRequest())).tasks) == []


@pytest.mark.parametrize("method", list(pb.DESCRIPTOR.services_by_name["TaskService"].methods), ids=lambda m: m.name)
async def test_garbage_to_every_rpc_is_invalid_argument_naming_its_message(
    channel: grpc.aio.Channel, method: MethodDescriptor
) -> None:
    path = f"/taskservice.v1.TaskService/{method.name}"
    call = channel.unary_stream(path) if method.server_streaming else channel.unary_unary(path)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        if method.server_streaming:
            async for _ in call(b"\xff\xff\xff\x00garbage"):
                pass
        else:
            await call(b"\xff\xff\xff\x00garbage")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method.name
    assert f"not a valid {method.input_type.full_name}" in caught.value.details()


async def test_args_over_a_megabyte_are_refused(stub: pb_grpc.TaskServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Submit(pb.SubmitRequest(task_type="echo", args=struct(value="x" * 2_000_000)))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == ["args"]


async def test_messages_over_the_size_limit_are_resource_exhausted(stub: pb_grpc.TaskServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Submit(pb.SubmitRequest(task_type="echo", args=struct(value="x" * 20_000_000)))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_raw_garbage_on_the_port_does_not_disturb_other_clients(
    server: RunningServer, stub: pb_grpc.TaskServiceStub
) -> None:
    for junk in (
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x00" * 4096,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\xff" * 64,
    ):
        _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(junk)
        await writer.drain()
        writer.close()
    response = await stub.Submit(pb.SubmitRequest(task_type="echo"))
    assert response.created


@pytest.mark.parametrize(
    ("task_type", "args", "field", "reason"),
    [
        ("sleep", {"seconds": -1}, "args.seconds", "must be from 0 to 31622400, got -1"),
        ("sleep", {"seconds": 1e300}, "args.seconds", "must be from 0 to 31622400"),
        ("demo", {"fail_rate": 5}, "args.fail_rate", "must be from 0 to 1, got 5"),
        ("demo", {"step_seconds": -1}, "args.step_seconds", "must be from 0 to 3600, got -1"),
        ("demo", {"steps": 10**7}, "args.steps", "must be from 0 to 1000000"),
    ],
)
async def test_args_outside_what_the_handler_declares_are_refused_at_submit(
    stub: pb_grpc.TaskServiceStub, task_type: str, args: dict[str, object], field: str, reason: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Submit(pb.SubmitRequest(task_type=task_type, args=struct(**args)))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == [field]
    assert reason in (caught.value.details() or "")
    assert list((await stub.ListTasks(pb.ListTasksRequest())).tasks) == []


@pytest.mark.parametrize("page_size", [-1, 1001, 1_000_000])
async def test_a_page_size_out_of_range_is_refused(stub: pb_grpc.TaskServiceStub, page_size: int) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListTasks(pb.ListTasksRequest(page_size=page_size))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == ["page_size"]


@pytest.mark.parametrize(("seconds", "nanos"), [(2**62, 0), (-(2**62), 0), (253_402_300_800, 0), (0, 2_000_000_000)])
async def test_a_time_outside_protobufs_range_is_invalid_argument_naming_its_field(
    stub: pb_grpc.TaskServiceStub, seconds: int, nanos: int
) -> None:
    stamp = timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
    for call, field in ((stub.Submit(pb.SubmitRequest(task_type="echo", not_before=stamp)), "not_before"),
                        (stub.DeleteTasks(pb.DeleteTasksRequest(ended_before=stamp)), "ended_before")):  # fmt: skip
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
        assert field in caught.value.details()


@pytest.mark.parametrize(
    ("labels", "blamed"),
    [
        ({f"k{i}": "v" for i in range(33)}, "labels"),
        ({"k" * 64: "v"}, "labels['" + "k" * 39),
        ({"team": "v" * 257}, "labels['team']"),
        ({f"key-{i:02d}-" + "k" * 50: "v" * 200 for i in range(16)}, "labels"),  # each fits, together 4 KiB+
    ],
)
async def test_labels_past_their_limits_are_refused_naming_them(
    stub: pb_grpc.TaskServiceStub, labels: dict[str, str], blamed: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Submit(pb.SubmitRequest(task_type="echo", labels=labels))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert any(field.startswith(blamed) for field in field_violations(caught.value)), field_violations(caught.value)


async def test_past_the_queue_byte_budget_submit_is_resource_exhausted(start_server: StartServer) -> None:
    server = await start_server(max_queue_bytes=20_000, workers=1)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.TaskServiceStub(channel)
        delayed = duration_pb2.Duration(seconds=3600)
        refused = None
        for i in range(40):  # 1 KB of args and labels each, run in an hour: they stay queued
            request = pb.SubmitRequest(task_type="echo", args=struct(value="x" * 900), labels={"n": str(i)},
                                       delay=delayed)  # fmt: skip
            try:
                await stub.Submit(request)
            except grpc.aio.AioRpcError as err:
                refused = err
                break
        assert refused is not None and refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "--max-queue-bytes" in (refused.details() or "")
        assert 15 <= i <= 21, f"refused after {i} tasks of about 1 KB under a 20,000-byte budget"
