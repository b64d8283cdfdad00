"""Both clients over real gRPC against a scripted in-process service: stream cuts, OUT_OF_RANGE,
rich error details, paging and deadlines, each on demand."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import grpc
import pytest

from taskservice import client as c
from taskservice.v1 import task_service_pb2 as pb
from tests.support.fake_server import FakeServer, answer, event, hang, refuse, send

from .facades import FACADES, ClientFacade


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


@pytest.fixture(params=sorted(FACADES))
def client(request: pytest.FixtureRequest, fake: FakeServer) -> Iterator[ClientFacade]:
    facade = FACADES[request.param](fake.address, timeout=10.0, reconnect_timeout=10.0)
    yield facade
    facade.close()


def test_watch_yields_until_the_terminal_event(client: ClientFacade, fake: FakeServer) -> None:
    fake.service.watch_steps.append(send(event(1), event(2, percent=50), event(3, pb.TASK_STATE_SUCCESS)))
    events = client.watch("t")
    assert [(e.sequence, e.state) for e in events] == [
        (1, c.TaskState.RUNNING),
        (2, c.TaskState.RUNNING),
        (3, c.TaskState.SUCCESS),
    ]
    assert events[1].progress.percent == 50.0 and events[1].task is None
    assert events[-1].task is not None and events[-1].task.state is c.TaskState.SUCCESS


def test_watch_resumes_after_a_cut_stream_without_duplicates(client: ClientFacade, fake: FakeServer) -> None:
    fake.service.watch_steps += [
        send(event(1), event(2, percent=20), then=grpc.StatusCode.UNAVAILABLE, message="server restarting"),
        # The resumed stream replays sequence 2; the client must not yield it twice.
        send(event(2, percent=20), event(3, percent=70), event(4, pb.TASK_STATE_FAILURE)),
    ]
    events = client.watch("t")
    assert [e.sequence for e in events] == [1, 2, 3, 4]
    assert fake.service.watch_requests == [0, 2]
    assert events[-1].state is c.TaskState.FAILURE


def test_watch_takes_a_fresh_snapshot_after_out_of_range(client: ClientFacade, fake: FakeServer) -> None:
    fake.service.watch_steps += [
        send(event(1), event(5, percent=10), then=grpc.StatusCode.UNAVAILABLE),
        send(then=grpc.StatusCode.OUT_OF_RANGE, message="events after 5 are no longer kept"),
        # A restarted server numbers from 1 again.
        send(event(1), event(2, pb.TASK_STATE_REVOKED)),
    ]
    events = client.watch("t")
    assert [e.sequence for e in events] == [1, 5, 1, 2]
    assert fake.service.watch_requests == [0, 5, 0]
    assert events[-1].state is c.TaskState.REVOKED


def test_watch_reconnects_when_a_stream_ends_before_the_task(client: ClientFacade, fake: FakeServer) -> None:
    fake.service.watch_steps += [send(event(1)), send(event(2, pb.TASK_STATE_SUCCESS))]
    assert [e.sequence for e in client.watch("t")] == [1, 2]
    assert fake.service.watch_requests == [0, 1]


def test_watch_after_sequence_from_the_caller(client: ClientFacade, fake: FakeServer) -> None:
    fake.service.watch_steps.append(send(event(4), event(5, pb.TASK_STATE_SUCCESS)))
    assert [e.sequence for e in client.watch("t", after_sequence=3)] == [4, 5]
    assert fake.service.watch_requests == [3]


def test_watch_of_unknown_task_raises_not_found(client: ClientFacade, fake: FakeServer) -> None:
    with pytest.raises(c.TaskNotFound, match="NOT_FOUND: task 'nope' not found"):
        client.watch("nope")


def test_watch_other_errors_are_not_retried(client: ClientFacade, fake: FakeServer) -> None:
    fake.service.watch_steps += [send(event(1), then=grpc.StatusCode.INTERNAL, message="boom")]
    with pytest.raises(c.TaskServiceError, match="INTERNAL: boom") as info:
        client.watch("t")
    assert info.value.code is grpc.StatusCode.INTERNAL
    assert fake.service.watch_requests == [0]


def test_wait_returns_the_final_task(client: ClientFacade, fake: FakeServer) -> None:
    fake.service.watch_steps.append(send(event(1), event(2, pb.TASK_STATE_TIMED_OUT)))
    task = client.wait("t", timeout=10)
    assert task.task_id == "t" and task.state is c.TaskState.TIMED_OUT


def test_wait_timeout_raises_deadline_exceeded(client: ClientFacade, fake: FakeServer) -> None:
    fake.service.watch_steps.append(hang)
    started = time.monotonic()
    with pytest.raises(c.DeadlineExceeded, match=r"did not finish within 0\.5s"):
        client.wait("t", timeout=0.5)
    assert time.monotonic() - started < 5


def test_wait_asks_again_until_the_task_ends_and_reconnects_on_unavailable(
    client: ClientFacade, fake: FakeServer
) -> None:
    fake.service.wait_steps = [
        answer(pb.TASK_STATE_RUNNING, done=False),
        refuse(grpc.StatusCode.UNAVAILABLE, "server restarting"),
        answer(pb.TASK_STATE_SUCCESS, done=True),
    ]
    task = client.wait("t")
    assert task.state is c.TaskState.SUCCESS
    assert fake.service.wait_timeouts == [60.0, 60.0, 60.0]  # no limit: a minute per call
    assert fake.service.watch_requests == []  # no watch: the server has WaitTask


def test_wait_with_a_timeout_asks_for_what_is_left_and_raises_with_the_state_it_saw(
    client: ClientFacade, fake: FakeServer
) -> None:
    fake.service.wait_steps = [answer(pb.TASK_STATE_RUNNING, done=False)]
    with pytest.raises(c.DeadlineExceeded, match=r"did not finish within 0s \(still RUNNING\)"):
        client.wait("t", timeout=0)
    assert fake.service.wait_timeouts == [0.0]  # a timeout of 0 still asks once


def test_wait_errors_other_than_unavailable_are_not_retried(client: ClientFacade, fake: FakeServer) -> None:
    fake.service.wait_steps = [refuse(grpc.StatusCode.NOT_FOUND, "no task with id 't'")]
    with pytest.raises(c.TaskNotFound):
        client.wait("t", timeout=5)
    assert len(fake.service.wait_timeouts) == 1


def test_invalid_argument_carries_field_violations(client: ClientFacade, fake: FakeServer) -> None:
    with pytest.raises(c.InvalidArgument) as info:
        client.submit("nope")
    err = info.value
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT
    assert err.field_violations == [("task_type", "not registered")]
    assert str(err) == "INVALID_ARGUMENT: unknown task type 'nope' (task_type: not registered)"


def test_submit_sends_every_field(client: ClientFacade, fake: FakeServer) -> None:
    result = client.submit(
        "demo", {"steps": 3, "name": "x"}, task_id="my-id", time_limit=2.5, priority=7, labels={"k": "v"}
    )
    assert result.created is True
    task = result.task
    assert (task.task_id, task.task_type, task.priority) == ("my-id", "demo", 7)
    assert task.args == {"steps": 3, "name": "x"}
    assert task.time_limit == 2.5
    assert task.labels == {"k": "v"}


def test_get_unknown_raises_not_found(client: ClientFacade) -> None:
    with pytest.raises(c.TaskNotFound) as info:
        client.get("missing")
    assert info.value.code is grpc.StatusCode.NOT_FOUND


def test_iter_tasks_follows_page_tokens(client: ClientFacade) -> None:
    page = client.list(page_size=2)
    assert [t.task_id for t in page.tasks] == ["t0", "t1"] and page.next_page_token == "2"
    assert [t.task_id for t in client.iter_tasks(page_size=2)] == ["t0", "t1", "t2", "t3", "t4"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("kind", sorted(FACADES))
def test_unreachable_server(kind: str) -> None:
    facade = FACADES[kind](f"127.0.0.1:{_closed_port()}", timeout=5.0, reconnect_timeout=0.5)
    try:
        with pytest.raises(c.Unavailable) as info:
            facade.get("t")
        assert info.value.code is grpc.StatusCode.UNAVAILABLE
        # A watch that never reached the server fails at once, like any call.
        with pytest.raises(c.Unavailable) as info:
            facade.watch("t")
        assert "gave up reconnecting" not in str(info.value)
    finally:
        facade.close()


def test_watch_gives_up_reconnecting_after_the_budget(client: ClientFacade, fake: FakeServer) -> None:
    # Every reconnect attempt is refused: the server is "draining".
    fake.service.watch_steps += [send(event(1), then=grpc.StatusCode.UNAVAILABLE)] + [
        send(then=grpc.StatusCode.UNAVAILABLE, message="draining") for _ in range(100)
    ]
    facade = type(client)(fake.address, timeout=5.0, reconnect_timeout=0.5)
    started = time.monotonic()
    try:
        with pytest.raises(c.Unavailable, match=r"draining \(gave up reconnecting the watch of task 't' after 0\.5s\)"):
            facade.watch("t")
    finally:
        facade.close()
    assert 0.5 <= time.monotonic() - started < 5
    assert len(fake.service.watch_requests) > 2
    assert set(fake.service.watch_requests[1:]) == {1}


def test_sync_client_is_a_context_manager(fake: FakeServer) -> None:
    with c.TaskClient(fake.address) as client:
        assert client.get("t1").task_id == "t1"
    with pytest.raises(ValueError):
        client.get("t1")  # closed channel


async def test_async_client_is_an_async_context_manager(fake: FakeServer) -> None:
    fake.service.watch_steps.append(send(event(1), event(2, pb.TASK_STATE_SUCCESS)))
    async with c.AsyncTaskClient(fake.address) as client:
        assert (await client.get("t1")).task_id == "t1"
        assert [e.sequence async for e in client.watch("t")] == [1, 2]


def test_leaving_a_watch_early_cancels_the_stream(fake: FakeServer) -> None:
    fake.service.watch_steps.append(hang)
    with c.TaskClient(fake.address) as client:
        events = client.watch("t")
        first = next(iter(events))
        assert first.sequence == 1
        events.close()  # type: ignore[attr-defined]
        # The server sees the cancellation: its handler returns and the next call is served.
        fake.service.watch_steps.append(send(event(1), event(2, pb.TASK_STATE_SUCCESS)))
        assert [e.sequence for e in client.watch("t")] == [1, 2]
