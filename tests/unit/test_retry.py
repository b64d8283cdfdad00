"""Retries: one task, attempts counting up, backoff on an injected clock, only for the listed errors."""

from __future__ import annotations

import random

import pytest

from taskservice.core.engine.clock import ManualClock
from taskservice.core.handlers.retry import RetryPolicy
from taskservice.core.model.models import TaskState
from tests.support.engine import wait_final
from tests.support.waiting import wait_until
from tests.unit.conftest import MakeManager


def test_backoff_grows_exponentially_up_to_its_cap_with_bounded_jitter() -> None:
    policy = RetryPolicy(max_attempts=10, backoff=1.0, multiplier=2.0, max_backoff=5.0, jitter=0.0)
    assert [policy.delay(a) for a in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    jittery = RetryPolicy(backoff=10.0, jitter=0.2)
    delays = [jittery.delay(1, random.Random(seed)) for seed in range(200)]
    assert all(8.0 <= d <= 12.0 for d in delays) and len(set(delays)) > 100


def test_the_backoff_of_an_attempt_far_past_a_thousand_is_the_cap_not_an_overflow() -> None:
    policy = RetryPolicy(max_attempts=1_000_000, backoff=0.001, max_backoff=0.002, jitter=0.0)
    assert [policy.delay(a) for a in (1, 1_025, 100_000, 999_999)] == [0.001, 0.002, 0.002, 0.002]


def test_a_task_retried_more_than_a_thousand_times_ends(make_manager: MakeManager, gates) -> None:
    manager = make_manager()
    task_id = manager.submit("flaky_for_long", {"name": "long", "failures": 1_100}).task.task_id
    final = wait_final(manager, task_id, timeout=60)
    assert final.state is TaskState.SUCCESS and final.attempt == 1_101 and final.result == 1_101


def test_a_failure_of_the_engine_deciding_an_end_ends_the_run_as_a_server_error(make_manager: MakeManager) -> None:
    manager = make_manager()
    task_id = manager.submit("flaky_broken_policy", {"name": "b", "failures": 1}).task.task_id
    final = wait_final(manager, task_id)
    assert final.state is TaskState.FAILURE and final.error is not None
    assert final.error.type == "ServerError" and "ArithmeticError" in final.error.message
    # The engine is whole: its worker runs the next task.
    assert wait_final(manager, manager.submit("echo", {"value": "next"}).task.task_id).state is TaskState.SUCCESS


def test_only_listed_errors_and_only_up_to_max_attempts_retry() -> None:
    policy = RetryPolicy(max_attempts=3, retry_on=(ConnectionError,))
    assert policy.should_retry(ConnectionError(), 1) and policy.should_retry(ConnectionResetError(), 2)
    assert not policy.should_retry(ConnectionError(), 3)
    assert not policy.should_retry(ValueError(), 1)
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_a_retried_task_stays_one_task_and_waits_its_backoff(make_manager: MakeManager, gates) -> None:
    clock = ManualClock()
    heard: list[TaskState] = []

    class Transitions:
        def task_changed(self, task, previous) -> None:  # type: ignore[no-untyped-def]
            heard.append(task.state)

    manager = make_manager(clock=clock, listeners=[Transitions()])
    task_id = manager.submit("flaky", {"name": "f", "failures": 2}).task.task_id

    wait_until(lambda: gates.ran == ["f:1"], what="the first attempt")
    waiting = wait_until(lambda: _pending_after_failure(manager, task_id), what="back to PENDING")
    assert waiting.attempt == 1 and waiting.error is not None and waiting.error.type == "ConnectionError"
    clock.advance(9.9)  # the policy waits 10 s before the second run
    manager.wake_timers()
    assert gates.ran == ["f:1"]
    clock.advance(0.2)
    manager.wake_timers()
    wait_until(lambda: gates.ran == ["f:1", "f:2"], what="the second attempt")
    wait_until(lambda: _pending_after_failure(manager, task_id, attempt=2), what="back to PENDING again")
    clock.advance(30.0)  # then 10 s x 3
    manager.wake_timers()
    final = wait_final(manager, task_id)
    assert final.state is TaskState.SUCCESS and final.attempt == 3 and final.result == 3

    running, pending = TaskState.RUNNING, TaskState.PENDING
    assert heard == [pending, running, pending, running, pending, running, TaskState.SUCCESS]


def _pending_after_failure(manager, task_id: str, attempt: int = 1):  # type: ignore[no-untyped-def]
    task = manager.get(task_id)
    return task if task.state is TaskState.PENDING and task.attempt == attempt else None


def test_the_final_state_is_that_of_the_last_attempt(make_manager: MakeManager) -> None:
    clock = ManualClock()
    manager = make_manager(clock=clock)
    task_id = manager.submit("flaky", {"name": "f", "failures": 5}).task.task_id
    for attempt in (1, 2):
        wait_until(lambda a=attempt: _pending_after_failure(manager, task_id, a), what=f"attempt {attempt} failed")
        clock.advance(1000)
        manager.wake_timers()
    final = wait_final(manager, task_id)
    assert final.state is TaskState.FAILURE and final.attempt == 3
    assert final.error is not None and "attempt 3" in final.error.message


def test_errors_the_policy_does_not_list_fail_at_once(make_manager: MakeManager) -> None:
    manager = make_manager(clock=ManualClock())
    final = wait_final(manager, manager.submit("picky").task.task_id)
    assert final.state is TaskState.FAILURE and final.attempt == 1


def test_a_task_waiting_to_retry_can_be_stopped(make_manager: MakeManager, gates) -> None:
    clock = ManualClock()
    manager = make_manager(clock=clock)
    task_id = manager.submit("flaky", {"name": "s", "failures": 1}).task.task_id
    wait_until(lambda: _pending_after_failure(manager, task_id), what="waiting to retry")
    assert manager.stop(task_id).state is TaskState.REVOKED
    clock.advance(100)
    manager.wake_timers()
    after = manager.submit("record", {"tag": "after"}).task.task_id
    wait_final(manager, after)
    assert gates.ran == ["s:1", "after"], "the revoked task never ran again"
