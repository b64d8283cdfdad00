"""The watch-resume decisions shared by both clients, driven by a fake clock (no server, no sleeping)."""

from __future__ import annotations

import grpc
import pytest

from taskservice import client as c
from taskservice.client import cursors
from taskservice.client.cursors import WatchCursor
from taskservice.v1 import task_service_pb2 as pb


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _event(seq: int, state: int = pb.TASK_STATE_RUNNING) -> pb.WatchProgressResponse:
    return pb.WatchProgressResponse(task_id="t", sequence=seq, state=state)


def _cursor(clock: FakeClock, *, after: int = 0, reconnect: float = 5.0, timeout: float | None = None) -> WatchCursor:
    return WatchCursor("t", after, reconnect_timeout=reconnect, timeout=timeout, clock=clock)


def test_request_resumes_after_last_sequence_and_drops_replays() -> None:
    cur = _cursor(FakeClock())
    assert cur.request().after_sequence == 0
    assert len(cur.accept(_event(1))) == 1
    assert len(cur.accept(_event(2))) == 1
    assert cur.request() == pb.WatchProgressRequest(task_id="t", after_sequence=2)
    # A server may send again what we saw before the reconnect: drop it.
    assert cur.accept(_event(2)) == ()
    assert cur.accept(_event(1)) == ()
    (event,) = cur.accept(_event(3))
    assert event.sequence == 3


def test_after_sequence_given_by_caller_is_respected() -> None:
    cur = _cursor(FakeClock(), after=5)
    assert cur.request().after_sequence == 5
    assert cur.accept(_event(5)) == ()
    assert len(cur.accept(_event(6))) == 1


def test_terminal_event_marks_done_with_the_final_task() -> None:
    cur = _cursor(FakeClock())
    cur.accept(_event(1))
    assert not cur.done
    final = _event(2, pb.TASK_STATE_SUCCESS)
    final.task.task_id = "t"
    final.task.state = pb.TASK_STATE_SUCCESS
    cur.accept(final)
    assert cur.done
    task = cur.final_task()
    assert task is not None and task.state is c.TaskState.SUCCESS


def test_unavailable_backs_off_then_gives_up_after_the_budget() -> None:
    clock = FakeClock()
    cur = _cursor(clock, reconnect=5.0)
    cur.accept(_event(1))
    delays = []
    for _ in range(6):
        delay = cur.retry_delay(c.Unavailable("connection refused"))
        delays.append(delay)
        clock.now += delay
    assert 0 < delays[0] < 0.2
    assert delays[-1] > delays[0]  # grows
    assert max(delays) <= cursors.BACKOFF_MAX * 1.2 + 1e-9  # capped, with jitter
    clock.now += 5.0
    with pytest.raises(c.Unavailable, match="gave up reconnecting") as info:
        cur.retry_delay(c.Unavailable("connection refused"))
    assert "connection refused" in str(info.value)


def test_an_event_resets_the_reconnect_budget() -> None:
    clock = FakeClock()
    cur = _cursor(clock, reconnect=5.0)
    cur.accept(_event(1))
    cur.retry_delay(c.Unavailable("down"))
    clock.now += 4.0
    cur.accept(_event(2))  # the connection came back
    clock.now += 4.0
    # 8 s since the first failure, but only the current failing stretch counts.
    assert cur.retry_delay(c.Unavailable("down again")) < 0.2


def test_out_of_range_takes_a_fresh_snapshot_once() -> None:
    cur = _cursor(FakeClock())
    cur.accept(_event(7))
    assert cur.retry_delay(c.OutOfRange("gone")) == 0.0
    assert cur.request().after_sequence == 0
    # The snapshot of a restarted server may carry a smaller sequence: it is accepted.
    (event,) = cur.accept(_event(2))
    assert event.sequence == 2
    assert cur.accept(_event(2)) == ()
    # OUT_OF_RANGE on a fresh watch cannot be helped by retrying.
    fresh = _cursor(FakeClock())
    with pytest.raises(c.OutOfRange):
        fresh.retry_delay(c.OutOfRange("gone"))


@pytest.mark.parametrize(
    "err", [c.TaskNotFound("no such task"), c.InvalidArgument("bad id"), c.TaskServiceError("internal")]
)
def test_other_errors_are_raised(err: c.TaskServiceError) -> None:
    cur = _cursor(FakeClock())
    with pytest.raises(type(err)) as info:
        cur.retry_delay(err)
    assert info.value is err


def test_unavailable_before_the_first_event_is_raised_at_once() -> None:
    cur = _cursor(FakeClock(), after=3)
    err = c.Unavailable("connection refused")
    with pytest.raises(c.Unavailable) as info:
        cur.retry_delay(err)
    assert info.value is err


def test_stream_ending_early_is_retried_like_a_lost_connection() -> None:
    cur = _cursor(FakeClock())
    cur.accept(_event(1))
    err = cur.ended_early()
    assert isinstance(err, c.Unavailable)
    assert cur.retry_delay(err) >= 0


def test_overall_timeout() -> None:
    clock = FakeClock()
    cur = _cursor(clock, timeout=3.0)
    cur.accept(_event(1))
    assert cur.call_timeout() == pytest.approx(3.0)
    clock.now += 2.0
    assert cur.call_timeout() == pytest.approx(1.0)
    # Backoff never sleeps past the deadline.
    clock.now += 0.95
    assert cur.retry_delay(c.Unavailable("down")) <= 0.05 + 1e-9
    clock.now += 1.0
    with pytest.raises(c.DeadlineExceeded, match="did not finish within 3s"):
        cur.call_timeout()
    with pytest.raises(c.DeadlineExceeded):
        cur.retry_delay(c.DeadlineExceeded("Deadline Exceeded"))


def test_no_timeout_means_no_deadline() -> None:
    assert _cursor(FakeClock()).call_timeout() is None


class FakeStream:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> bool:
        self.cancelled = True
        return True


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "connection reset"

    def trailing_metadata(self) -> None:
        return None


def test_attempt_maps_the_stream_error_and_cancels_the_stream() -> None:
    cur = _cursor(FakeClock())
    stream = FakeStream()
    with cur.attempt(stream):  # type: ignore[arg-type]
        cur.accept(_event(1))
        raise FakeRpcError(grpc.StatusCode.UNAVAILABLE)
    assert stream.cancelled
    assert 0 < cur.next_delay() < 0.2  # a lost connection is retried
    stream = FakeStream()
    with cur.attempt(stream):  # type: ignore[arg-type]
        raise FakeRpcError(grpc.StatusCode.PERMISSION_DENIED)
    assert stream.cancelled
    with pytest.raises(c.TaskServiceError, match="PERMISSION_DENIED: connection reset"):
        cur.next_delay()


def test_attempt_that_ends_before_the_task_counts_as_a_lost_connection() -> None:
    cur = _cursor(FakeClock())
    with cur.attempt(FakeStream()):  # type: ignore[arg-type]
        cur.accept(_event(1))
    assert cur.next_delay() >= 0


def test_attempt_lets_other_exceptions_through_but_still_cancels() -> None:
    cur = _cursor(FakeClock())
    stream = FakeStream()
    with pytest.raises(GeneratorExit), cur.attempt(stream):  # type: ignore[arg-type]
        raise GeneratorExit  # what a consumer closing the watch early throws in
    assert stream.cancelled


def test_a_resumed_stream_that_ends_ok_at_once_means_the_task_ended_there() -> None:
    cur = _cursor(FakeClock(), after=7)
    with cur.attempt(FakeStream()):  # type: ignore[arg-type]
        pass  # the server: nothing after sequence 7, and OK
    assert cur.done and cur.final is None
    fresh = _cursor(FakeClock())
    with fresh.attempt(FakeStream()):  # type: ignore[arg-type]
        pass  # a watch from 0 must get at least the snapshot: ending without it is a lost connection
    assert not fresh.done
