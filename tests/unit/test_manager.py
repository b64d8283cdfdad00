"""The worker manager on the in-memory store: lifecycle, queue, limits, stop, events."""

from __future__ import annotations

import itertools
import threading

import pytest

from taskservice.core.model.errors import (
    InvalidRequest,
    QueueFull,
    SequenceOutOfRange,
    ShuttingDown,
    TaskConflict,
    TaskNotFound,
)
from taskservice.core.model.events import Watcher
from taskservice.core.model.models import ALLOWED_TRANSITIONS, ErrorType, TaskState
from tests.support.engine import events_until_terminal, stored, wait_final, wait_state
from tests.support.waiting import wait_until
from tests.unit.conftest import MakeManager


def assert_legal(states: list[TaskState]) -> None:
    """Consecutive distinct states follow the allowed transitions (docs/contract.md)."""
    distinct = [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]]
    for before, after in itertools.pairwise(distinct):
        assert after in ALLOWED_TRANSITIONS.get(before, frozenset()), f"{before} -> {after} is not allowed"


def test_success_records_result_times_and_attempt(make_manager: MakeManager) -> None:
    manager = make_manager()
    outcome = manager.submit("echo", {"value": {"answer": 42}})
    assert outcome.created and outcome.task.state is TaskState.PENDING
    final = wait_final(manager, outcome.task.task_id)
    assert final.state is TaskState.SUCCESS
    assert final.result == {"answer": 42}
    assert final.attempt == 1
    assert final.submitted_at <= final.started_at <= final.ended_at  # type: ignore[operator]
    assert manager.get(final.task_id).state is TaskState.SUCCESS


def test_failure_records_type_message_and_traceback(make_manager: MakeManager) -> None:
    manager = make_manager()
    task_id = manager.submit("fail", {"message": "disk on fire"}).task.task_id
    final = wait_final(manager, task_id)
    assert final.state is TaskState.FAILURE
    assert final.error is not None
    assert (final.error.type, final.error.message) == ("ValueError", "disk on fire")
    assert "raise ValueError(message)" in final.error.traceback


def test_result_that_is_not_json_is_a_failure(make_manager: MakeManager) -> None:
    manager = make_manager()
    final = wait_final(manager, manager.submit("not_json").task.task_id)
    assert final.state is TaskState.FAILURE
    assert final.error is not None and final.error.type == ErrorType.RESULT_NOT_JSON


def test_events_are_ordered_legal_and_end_with_the_terminal_state(make_manager: MakeManager) -> None:
    manager = make_manager()
    task_id = manager.submit("demo", {"steps": 5, "step_seconds": 0.01}).task.task_id
    events = events_until_terminal(manager, task_id)
    sequences = [e.sequence for e in events]
    assert sequences == sorted(set(sequences)), "sequences only grow"
    assert_legal([e.state for e in events])
    assert events[-1].state is TaskState.SUCCESS
    assert events[-1].progress.percent == 100.0
    assert all(e.task is not None for e in events if e.state is not TaskState.RUNNING or e.is_terminal)


def test_higher_priority_runs_first_and_fifo_within_a_priority(make_manager: MakeManager, gates) -> None:
    manager = make_manager(workers=1)
    blocker = manager.submit("gate", {"name": "blocker"}).task.task_id
    wait_state(manager, blocker, TaskState.RUNNING)
    ids = [
        manager.submit("record", {"tag": tag}, priority=priority).task.task_id
        for tag, priority in [("low", 0), ("high-1", 5), ("high-2", 5), ("mid", 1)]
    ]
    gates.open("blocker")
    for task_id in ids:
        wait_final(manager, task_id)
    assert gates.ran == ["blocker", "high-1", "high-2", "mid", "low"]


def test_queue_bound_rejects_with_queue_full_and_stores_nothing(make_manager: MakeManager) -> None:
    manager = make_manager(workers=1, max_queue=2)
    blocker = manager.submit("gate", {"name": "b"}).task.task_id
    wait_state(manager, blocker, TaskState.RUNNING)
    manager.submit("echo")
    manager.submit("echo")
    with pytest.raises(QueueFull, match="--max-queue 2"):
        manager.submit("echo", task_id="one-too-many")
    with pytest.raises(TaskNotFound):
        manager.get("one-too-many")
    assert stored(manager.board) == 3


def test_time_limit_stops_the_task_as_timed_out(make_manager: MakeManager) -> None:
    manager = make_manager()
    task_id = manager.submit("sleep", {"seconds": 30}, time_limit=0.2).task.task_id
    events = events_until_terminal(manager, task_id)
    final = events[-1].task
    assert final is not None and final.state is TaskState.TIMED_OUT
    assert final.error is not None and final.error.type == ErrorType.TIME_LIMIT_EXCEEDED
    assert TaskState.STOPPING in [e.state for e in events]
    assert final.ended_at - final.started_at < 5  # type: ignore[operator]  # woke at once, not after 30 s


def test_server_default_time_limit_applies_to_tasks_without_one(make_manager: MakeManager) -> None:
    manager = make_manager(default_time_limit=0.2)
    outcome = manager.submit("sleep", {"seconds": 30})
    assert outcome.task.time_limit == 0.2
    assert wait_final(manager, outcome.task.task_id).state is TaskState.TIMED_OUT


def test_stop_of_a_pending_task_revokes_it_before_it_runs(make_manager: MakeManager, gates) -> None:
    manager = make_manager(workers=1)
    blocker = manager.submit("gate", {"name": "b"}).task.task_id
    wait_state(manager, blocker, TaskState.RUNNING)
    queued = manager.submit("record", {"tag": "never"}).task.task_id
    stopped = manager.stop(queued, "changed my mind")
    assert stopped.state is TaskState.REVOKED
    assert stopped.error is not None and "changed my mind" in stopped.error.message
    gates.open("b")
    wait_final(manager, blocker)
    after = manager.submit("record", {"tag": "after"}).task.task_id
    wait_final(manager, after)
    assert "never" not in gates.ran
    assert manager.get(queued).state is TaskState.REVOKED


def test_stop_of_a_running_task_goes_through_stopping_to_revoked(make_manager: MakeManager) -> None:
    manager = make_manager()
    task_id = manager.submit("gate", {"name": "g"}).task.task_id
    wait_state(manager, task_id, TaskState.RUNNING)
    assert manager.stop(task_id).state is TaskState.STOPPING
    final = wait_final(manager, task_id)
    assert final.state is TaskState.REVOKED
    assert final.error is not None and final.error.type == ErrorType.REVOKED


def test_stop_of_a_finished_task_returns_it_unchanged(make_manager: MakeManager) -> None:
    manager = make_manager()
    task_id = manager.submit("echo", {"value": 1}).task.task_id
    final = wait_final(manager, task_id)
    again = manager.stop(task_id)
    assert (again.state, again.result, again.event_sequence) == (final.state, final.result, final.event_sequence)


def test_stop_and_get_of_unknown_ids_raise_not_found(make_manager: MakeManager) -> None:
    manager = make_manager()
    with pytest.raises(TaskNotFound):
        manager.stop("nope")
    with pytest.raises(TaskNotFound):
        manager.get("nope")
    with pytest.raises(TaskNotFound):
        manager.watch("nope", Watcher())


def test_handler_ignoring_stop_is_abandoned_and_its_worker_replaced(make_manager: MakeManager, gates) -> None:
    manager = make_manager(workers=1, stop_grace=0.2)
    stubborn = manager.submit("stubborn", {"name": "s"}).task.task_id
    wait_until(lambda: "s" in gates.ran, what="the stubborn handler started")
    manager.stop(stubborn)
    final = wait_final(manager, stubborn)
    assert final.state is TaskState.REVOKED
    assert final.error is not None and "abandoned" in final.error.message
    # Capacity is back although the abandoned handler still holds its thread.
    follower = manager.submit("echo", {"value": "ran"}).task.task_id
    assert wait_final(manager, follower).result == "ran"
    stats = manager.stats()
    assert stats.workers == 1 and stats.abandoned_handlers == 1
    # Its late result is discarded: the task stays REVOKED.
    gates.open("s")
    for worker in list(manager._workers.workers):
        if worker.retired and worker.thread is not None:
            worker.thread.join(timeout=5)
    assert manager.get(stubborn).state is TaskState.REVOKED
    assert manager.stats().abandoned_handlers == 0


def test_time_limit_on_a_handler_ignoring_stop_ends_timed_out(make_manager: MakeManager) -> None:
    manager = make_manager(workers=1, stop_grace=0.1)
    task_id = manager.submit("stubborn", {"name": "t"}, time_limit=0.1).task.task_id
    final = wait_final(manager, task_id)
    assert final.state is TaskState.TIMED_OUT
    assert final.error is not None and final.error.type == ErrorType.TIME_LIMIT_EXCEEDED


def test_progress_from_a_handler_makes_it_stoppable(make_manager: MakeManager) -> None:
    manager = make_manager()
    task_id = manager.submit("progress_then_wait", {"name": "p"}).task.task_id
    wait_state(manager, task_id, TaskState.RUNNING)
    manager.stop(task_id)
    assert wait_final(manager, task_id).state is TaskState.REVOKED


def test_slow_watcher_gets_coalesced_progress_but_every_state_change(make_manager: MakeManager) -> None:
    manager = make_manager(workers=1)
    blocker = manager.submit("gate", {"name": "b"}).task.task_id
    wait_state(manager, blocker, TaskState.RUNNING)
    task_id = manager.submit("spin", {"reports": 5000}).task.task_id
    slow = Watcher()
    manager.watch(task_id, slow)  # never read until the task is over
    manager.stop(blocker)
    fast_events = events_until_terminal(manager, task_id)
    events = slow.drain()
    states = [e.state for e in events if e.is_state_change]
    assert states == [TaskState.PENDING, TaskState.RUNNING, TaskState.SUCCESS]
    assert len(events) <= 4, "progress between two state changes is coalesced to the latest"
    assert slow.coalesced >= 4000
    progress = [e for e in events if not e.is_state_change]
    assert progress and progress[-1].progress.current == 5000
    assert fast_events[-1].sequence == events[-1].sequence


def test_replay_after_sequence_resumes_without_gaps_in_state_changes(make_manager: MakeManager, gates) -> None:
    manager = make_manager()
    task_id = manager.submit("gate", {"name": "g"}).task.task_id
    running = wait_state(manager, task_id, TaskState.RUNNING)
    manager.stop(task_id)
    wait_final(manager, task_id)
    resumed = Watcher()
    manager.watch(task_id, resumed, after_sequence=running.event_sequence)
    events = resumed.drain()
    assert [e.state for e in events] == [TaskState.STOPPING, TaskState.REVOKED]
    assert all(e.sequence > running.event_sequence for e in events)


def test_replay_after_a_sequence_ahead_of_the_task_is_out_of_range(make_manager: MakeManager) -> None:
    manager = make_manager()
    task_id = manager.submit("gate", {"name": "g"}).task.task_id
    running = wait_state(manager, task_id, TaskState.RUNNING)
    with pytest.raises(SequenceOutOfRange):
        manager.watch(task_id, Watcher(), after_sequence=running.event_sequence + 100)
    manager.stop(task_id)


def test_resubmitting_the_same_id_is_idempotent_and_a_different_request_conflicts(make_manager: MakeManager) -> None:
    manager = make_manager()
    first = manager.submit("echo", {"value": 1}, task_id="job-1", labels={"team": "a"})
    again = manager.submit("echo", {"value": 1.0}, task_id="job-1", labels={"team": "a"})
    assert first.created and not again.created
    assert again.task.task_id == "job-1"
    with pytest.raises(TaskConflict, match="job-1"):
        manager.submit("echo", {"value": 2}, task_id="job-1", labels={"team": "a"})
    with pytest.raises(TaskConflict):
        manager.submit("echo", {"value": 1}, task_id="job-1", priority=3, labels={"team": "a"})


def test_concurrent_identical_submits_create_one_task(make_manager: MakeManager) -> None:
    manager = make_manager()
    outcomes = []
    barrier = threading.Barrier(8)

    def submit() -> None:
        barrier.wait()
        outcomes.append(manager.submit("echo", {"value": "x"}, task_id="same"))

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sum(o.created for o in outcomes) == 1
    assert len(outcomes) == 8


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"f": 1.0}, "args.i"),  # missing
        ({"i": 1, "extra": 2}, "args.extra"),  # unknown
        ({"i": 10.5}, "args.i"),  # not integral
        ({"i": True}, "args.i"),  # a bool is not an int
        ({"i": "3"}, "args.i"),
        ({"i": 1, "s": 5}, "args.s"),
        ({"i": 1, "b": 1}, "args.b"),
        ({"i": 1, "items": [1, 2.5]}, "args.items"),
        ({"i": 1, "options": [1]}, "args.options"),
        ({"i": 2.0**60}, "args.i"),
        ({"i": float("nan")}, "args"),
    ],
)
def test_args_that_do_not_fit_the_signature_are_rejected_before_storing(
    make_manager: MakeManager, args: dict, field: str
) -> None:
    manager = make_manager()
    with pytest.raises(InvalidRequest) as caught:
        manager.submit("typed", args)
    assert field in [f for f, _ in caught.value.field_violations]
    assert stored(manager.board) == 0


def test_args_are_normalised_to_the_handler_types(make_manager: MakeManager) -> None:
    manager = make_manager()
    outcome = manager.submit("typed", {"i": 10.0, "f": 2, "items": [1.0, 2.0], "options": None})
    assert outcome.task.args == {"i": 10, "f": 2.0, "items": [1, 2], "options": None}
    assert isinstance(outcome.task.args["i"], int)
    final = wait_final(manager, outcome.task.task_id)
    assert final.result == {"i": 10, "f": 2.0, "s": "", "b": False, "items": [1, 2], "options": None}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"task_type": "no-such-type"}, "task_type"),
        ({"task_type": ""}, "task_type"),
        ({"task_id": "has space"}, "task_id"),
        ({"task_id": "x" * 129}, "task_id"),
        ({"time_limit": 0}, "time_limit"),
        ({"time_limit": -1}, "time_limit"),
        ({"time_limit": float("inf")}, "time_limit"),
        ({"labels": {"": "v"}}, "labels['']"),
    ],
)
def test_bad_submit_fields_are_invalid_requests(make_manager: MakeManager, kwargs: dict, field: str) -> None:
    manager = make_manager()
    request = {"task_type": "echo", **kwargs}
    task_type = request.pop("task_type")
    with pytest.raises(InvalidRequest) as caught:
        manager.submit(task_type, **request)
    assert field in [f for f, _ in caught.value.field_violations]


def test_shutdown_refuses_submits(make_manager: MakeManager) -> None:
    manager = make_manager()
    manager.begin_shutdown()
    with pytest.raises(ShuttingDown):
        manager.submit("echo")


def test_close_after_drain_stops_what_still_runs_as_a_shutdown_not_a_crash(make_manager: MakeManager) -> None:
    manager = make_manager(workers=3)
    store = manager.board
    running = manager.submit("gate", {"name": "g"}).task.task_id
    rerunnable = manager.submit("rerunnable_gate", {"name": "r"}).task.task_id
    stubborn = manager.submit("stubborn", {"name": "s", "seconds": 30}).task.task_id
    for task_id in (running, rerunnable, stubborn):
        wait_state(manager, task_id, TaskState.RUNNING)
    queued = manager.submit("echo").task.task_id
    manager.close(drain_timeout=0.1)
    for task_id in (running, stubborn):
        ended = store.get(task_id)
        assert ended is not None and ended.state is TaskState.REVOKED
        assert ended.error is not None and ended.error.type == "ServerShutdown"
    back = store.get(rerunnable)
    assert back is not None and back.state is TaskState.PENDING and back.ended_at is None
    assert back.error is not None and "runs again" in back.error.message
    assert store.get(queued).state is TaskState.PENDING  # type: ignore[union-attr]
    manager.close()  # twice is fine


def test_listeners_hear_every_transition_in_order(make_manager: MakeManager) -> None:
    heard: list[tuple[str, str | None, str]] = []

    class Recorder:
        def task_changed(self, task, previous) -> None:  # type: ignore[no-untyped-def]
            heard.append((task.task_id, previous.value if previous else None, task.state.value))

    manager = make_manager(listeners=[Recorder()])
    task_id = manager.submit("echo", {"value": 1}).task.task_id
    wait_final(manager, task_id)
    assert heard == [(task_id, None, "PENDING"), (task_id, "PENDING", "RUNNING"), (task_id, "RUNNING", "SUCCESS")]


def test_a_stop_after_close_answers_instead_of_hanging(make_manager: MakeManager, gates) -> None:
    """A writer once called a closed write's callback inline, on the thread that held the manager's lock, and the
    callback took that lock again: stop_async of a PENDING task after close() never returned. The server closes
    the board after the manager, as here."""
    from taskservice.core.model.errors import StoreUnavailable

    manager = make_manager(workers=1, stop_grace=0.2)
    blocker = manager.submit("gate", {"name": "blocker"}).task.task_id
    wait_state(manager, blocker, TaskState.RUNNING)
    pending = manager.submit("echo", {"value": 1}).task.task_id
    manager.close()
    manager.board.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        manager.stop_async(pending).result(timeout=5)


def test_a_node_told_to_run_only_some_types_leaves_the_others_queued(make_manager: MakeManager, gates) -> None:
    manager = make_manager(workers=1, only_types=frozenset({"echo"}))
    left = manager.submit("gate", {"name": "not-here"}).task.task_id
    ran = manager.submit("echo", {"value": 1}).task.task_id  # submitted after: claimed first only if gate is skipped
    assert wait_final(manager, ran).state is TaskState.SUCCESS
    assert manager.get(left).state is TaskState.PENDING and gates.ran == []


def test_a_node_told_to_run_only_labelled_tasks_leaves_the_others_queued(make_manager: MakeManager, gates) -> None:
    manager = make_manager(workers=1, only_labels=(("team", "a"),))
    left = manager.submit("gate", {"name": "not-here"}, labels={"team": "b"}).task.task_id
    ran = manager.submit("echo", {"value": 1}, labels={"team": "a"}).task.task_id
    assert wait_final(manager, ran).state is TaskState.SUCCESS
    assert manager.get(left).state is TaskState.PENDING and gates.ran == []
