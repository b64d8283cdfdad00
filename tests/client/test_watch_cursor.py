"""The watch-resume decisions shared by both clients, driven by a fake clock (no server, no sleeping)."""

from __future__ import annotations

import pytest

from taskservice import client as c
from taskservice.client import _WatchCursor
from taskservice.v1 import task_service_pb2 as pb


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _event(seq: int, state: int = pb.TASK_STATE_RUNNING) -> pb.WatchProgressResponse:
    return pb.WatchProgressResponse(task_id="t", sequence=seq, state=state)


def _cursor(clock: FakeClock, *, after: int = 0, reconnect: float = 5.0, timeout: float | None = None) -> _WatchCursor:
    return _WatchCursor("t", after, reconnect_timeout=reconnect, timeout=timeout, clock=clock)


def test_request_resumes_after_last_sequence_and_drops_replays() -> None:
    cur = _cursor(FakeClock())
    assert cur.request().after_sequence == 0
    assert cur.accept(_event(1)) is not None
    assert cur.accept(_event(2)) is not None
    assert cur.request() == pb.WatchProgressRequest(task_id="t", after_sequence=2)
    # A server may send again what we saw before the reconnect: drop it.
    assert cur.accept(_event(2)) is None
    assert cur.accept(_event(1)) is None
    event = cur.accept(_event(3))
    assert event is not None and event.sequence == 3


def test_after_sequence_given_by_caller_is_respected() -> None:
    cur = _cursor(FakeClock(), after=5)
    assert cur.request().after_sequence == 5
    assert cur.accept(_event(5)) is None
    assert cur.accept(_event(6)) is not None


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
    assert max(delays) <= c._BACKOFF_MAX * 1.2 + 1e-9  # capped, with jitter
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
    event = cur.accept(_event(2))
    assert event is not None and event.sequence == 2
    assert cur.accept(_event(2)) is None
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
