"""ListTasks' order_by, search, time range and depends_on against a real server, and the page tokens that carry
an order from page to page: a token is refused with another order, and a forged one is refused whatever it holds."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from taskservice.client import AsyncTaskClient, TaskState
from taskservice.server.app import RunningServer
from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc
from tests.grpc.helpers import field_violations


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[AsyncTaskClient]:
    async with AsyncTaskClient(f"127.0.0.1:{server.port}") as made:
        yield made


async def _sleepers(client: AsyncTaskClient, seconds: list[float]) -> list[str]:
    """Tasks that sleep these long, run one after the other (so their durations differ as their sleeps do)."""
    ids = []
    for s in seconds:
        task_id = (await client.submit("sleep", {"seconds": s}, task_id=f"nap-{s}")).task.task_id
        await client.wait(task_id, timeout=30)
        ids.append(task_id)
    return ids


async def test_sorting_by_duration_orders_by_duration_across_pages(client: AsyncTaskClient) -> None:
    await _sleepers(client, [0.5, 0.0, 1.0, 0.25])  # gaps a busy machine's jitter does not close
    pending = (await client.submit("sleep", {"seconds": 0}, delay=3600)).task.task_id
    durations = [t.task_id for t in await _all(client, "duration desc")]
    assert durations == ["nap-1.0", "nap-0.5", "nap-0.25", "nap-0.0", pending]  # never started: last
    assert [t.task_id for t in await _all(client, "duration")][:4] == ["nap-0.0", "nap-0.25", "nap-0.5", "nap-1.0"]
    ended = await _all(client, "ended_at desc")
    assert [t.task_id for t in ended] == ["nap-0.25", "nap-1.0", "nap-0.0", "nap-0.5", pending]
    assert [t.task_id for t in await _all(client, "")] == [pending, "nap-0.25", "nap-1.0", "nap-0.0", "nap-0.5"]


async def _all(client: AsyncTaskClient, order_by: str) -> list:  # type: ignore[type-arg]
    """Every task, a page of two at a time, in `order_by`."""
    found, token = [], ""
    while True:
        page = await client.list(order_by=order_by, page_size=2, page_token=token)
        found.extend(page.tasks)
        token = page.next_page_token
        if not token:
            return found


async def test_search_time_range_and_depends_on_find_what_they_name(client: AsyncTaskClient) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    first = (await client.submit("fail", {"message": "disk Quota reached"}, task_id="batch-1")).task.task_id
    await client.wait(first, timeout=30)
    second = (await client.submit("echo", {"value": "sunflower"}, task_id="batch-2")).task.task_id
    after = (await client.submit("echo", {}, task_id="later", after=[second])).task.task_id
    await client.wait(after, timeout=30)

    async def ids(**filters: object) -> list[str]:
        return [t.task_id for t in (await client.list(**filters)).tasks]  # type: ignore[arg-type]

    assert await ids(search="batch-") == ["batch-2", "batch-1"]
    assert await ids(search="quota") == ["batch-1"]
    assert await ids(search="SUNFLOWER") == ["batch-2"]
    assert await ids(search="batch-", states=[TaskState.FAILURE]) == ["batch-1"]
    assert await ids(depends_on=second) == ["later"]
    assert await ids(submitted_after=start, submitted_before=start + timedelta(hours=1)) == ["later", second, first]
    assert await ids(submitted_before=start) == []


@pytest.mark.parametrize(
    ("request_fields", "field", "words"),
    [
        ({"order_by": "size desc"}, "order_by", "one of submitted_at, started_at, ended_at, duration"),
        ({"order_by": "duration sideways"}, "order_by", "asc or desc"),
        ({"order_by": "duration desc now"}, "order_by", "asc or desc"),
        ({"search": "x" * 201}, "search", "at most 200 characters"),
        ({"depends_on": "a" * 300}, "depends_on", ""),
        ({"page_token": "not base64 at all!"}, "page_token", "previous ListTasks response"),
    ],
)
async def test_listing_requests_that_cannot_be_served_name_their_field(
    stub: pb_grpc.TaskServiceStub, request_fields: dict[str, str], field: str, words: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListTasks(pb.ListTasksRequest(**request_fields))  # type: ignore[arg-type]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == [field]
    assert words in str(caught.value)


def _token(fields: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(fields).encode()).decode()


@pytest.mark.parametrize(
    "forged",
    [
        _token([2, "duration", True, None, 1.5, 3]),  # a duration without its now
        _token([2, "size", True, None, 1, 3]),
        _token([2, "ended_at", "yes", None, 1, 3]),
        _token([2, "ended_at", True, None, 1, 2**70]),
        _token([2, "ended_at", True, None, "1", 3]),
        _token([3, "ended_at", True, None, 1, 3]),
        _token({"key": "ended_at"}),
        base64.urlsafe_b64encode(b'[2,"ended_at",true,null,NaN,3]').decode(),
        base64.urlsafe_b64encode(b"before:99999999999999999999999").decode(),
    ],
)
async def test_a_forged_page_token_is_refused(stub: pb_grpc.TaskServiceStub, forged: str) -> None:
    order_by = "duration desc" if "duration" in base64.urlsafe_b64decode(forged).decode() else "ended_at desc"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListTasks(pb.ListTasksRequest(page_token=forged, order_by=order_by))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == ["page_token"]


async def test_a_page_token_continues_only_the_order_it_was_given_for(
    client: AsyncTaskClient, stub: pb_grpc.TaskServiceStub
) -> None:
    await _sleepers(client, [0.0, 0.01, 0.02])
    first = await stub.ListTasks(pb.ListTasksRequest(order_by="started_at desc", page_size=1))
    assert first.next_page_token
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListTasks(pb.ListTasksRequest(order_by="started_at asc", page_token=first.next_page_token))
    assert field_violations(caught.value) == ["order_by"]
    assert "started_at desc" in (caught.value.details() or "")
    assert [t.task_id for t in first.tasks] == ["nap-0.02"]
    following = await stub.ListTasks(pb.ListTasksRequest(order_by="started_at DESC", page_token=first.next_page_token))
    assert [t.task_id for t in following.tasks] == ["nap-0.01", "nap-0.0"]
