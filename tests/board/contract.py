"""The board's contract (taskservice/core/board/base.py), as tests every implementation must pass.

A test module binds it to one kind of board by providing the `board` and `reopen` fixtures; see test_boards.py.
Times are given explicitly (`now`), so nothing here sleeps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from taskservice.core.board.base import ANY_TASK, Board, Claim, ClaimScope, NewTask, StopEffect, StopResult
from taskservice.core.model.errors import InvalidRequest, QueueFull, TaskConflict, TaskNotFound, WrongState
from taskservice.core.model.listing import NEWEST_FIRST, ListPosition, SortKey, TaskOrder
from taskservice.core.model.models import Progress, SubmitOutcome, SubmitSpec, Task, TaskError, TaskFilter, TaskState
from taskservice.core.model.schedules import Schedule, ScheduleSpec
from tests.support.waiting import wait_until

NOW = 1_000_000.0
LEASE = 30.0
WAIT = 10.0


class Waited:
    """A `then` callback that a test can wait on."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self.args: tuple[Any, ...] = ()
        self.thread: threading.Thread | None = None

    def __call__(self, *args: Any) -> None:
        self.args = args
        self.thread = threading.current_thread()
        self._done.set()

    def result(self) -> tuple[Any, ...]:
        assert self._done.wait(WAIT), "the board never called back"
        return self.args


def new(task_id: str, task_type: str = "echo", digest: str = "", **fields: Any) -> NewTask:
    return NewTask(task_id=task_id, task_type=task_type, args=fields.pop("args", {}), request_digest=digest or task_id,
                   **fields)  # fmt: skip


def submit(board: Board, tasks: Sequence[NewTask], now: float = NOW) -> list[Any]:
    waited = Waited()
    board.submit(tasks, now, waited)
    (answers,) = waited.result()
    return list(answers)


def claim(board: Board, n: int = 1, *, node: str = "node-a", types: Any = None, now: float = NOW) -> list[Claim]:
    scope = ClaimScope(frozenset(types) if types is not None else None)
    batch = board.claim(node, scope, n, lease_until=now + LEASE, now=now)
    assert all(batch.wait_durable(claim.task_id) is None for claim in batch.claims)
    return batch.claims


def ended(claim: Claim, state: TaskState, now: float = NOW, **fields: Any) -> Task:
    final = claim.task.copy()
    final.state = state
    final.ended_at = now
    final.event_sequence += 1
    for name, value in fields.items():
        setattr(final, name, value)
    return final


def finish(board: Board, claim: Claim, final: Task) -> bool:
    waited = Waited()
    board.finish(claim, final, waited)
    applied, error = waited.result()
    assert error is None
    return bool(applied)


def stop(board: Board, task_id: str, reason: str = "asked", now: float = NOW) -> tuple[StopResult | None, Any]:
    waited = Waited()
    board.request_stop(task_id, reason, now, waited)
    result, error = waited.result()
    return result, error


# ---------------------------------------------------------------------------------------------- submission


def test_submit_inserts_pending_tasks_in_submission_order(board: Board) -> None:
    answers = submit(board, [new("a"), new("b", priority=3, labels={"team": "x"}, time_limit=5.0)])
    assert all(isinstance(a, SubmitOutcome) and a.created for a in answers)
    a, b = (answer.task for answer in answers)
    assert a.state is TaskState.PENDING and a.submitted_at == NOW and a.event_sequence == 1
    assert b.submit_order > a.submit_order
    stored = board.get("b")
    assert stored is not None and (stored.priority, stored.labels, stored.time_limit) == (3, {"team": "x"}, 5.0)
    assert board.queued() == 2


def test_the_same_id_and_request_is_the_same_task_and_a_different_request_conflicts(board: Board) -> None:
    (first,) = submit(board, [new("job", digest="d1")])
    (again,) = submit(board, [new("job", digest="d1")])
    assert again.created is False and again.task.submit_order == first.task.submit_order
    (other,) = submit(board, [new("job", digest="d2")])
    assert isinstance(other, TaskConflict)
    # Also for a task that ended.
    (job,) = claim(board)
    assert finish(board, job, ended(job, TaskState.SUCCESS))
    (after,) = submit(board, [new("job", digest="d1")])
    assert after.created is False and after.task.state is TaskState.SUCCESS
    assert isinstance(submit(board, [new("job", digest="d3")])[0], TaskConflict)


def test_duplicates_inside_one_batch_make_one_task(board: Board) -> None:
    answers = submit(board, [new("dup"), new("dup"), new("other"), new("dup", digest="changed")])
    assert [getattr(a, "created", None) for a in answers[:3]] == [True, False, True]
    assert answers[1].task.submit_order == answers[0].task.submit_order
    assert isinstance(answers[3], TaskConflict)
    assert board.queued() == 2


def test_racing_submits_of_one_new_id_create_it_once(board: Board) -> None:
    results: list[Any] = []
    lock = threading.Lock()

    def one() -> None:
        (answer,) = submit(board, [new("race")])
        with lock:
            results.append(answer)

    threads = [threading.Thread(target=one) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert sorted(a.created for a in results) == [False] * 15 + [True]
    assert len({a.task.submit_order for a in results}) == 1


def test_past_the_queue_limit_submits_are_refused(limited_board: Board) -> None:
    answers = submit(limited_board, [new(f"t{i}") for i in range(4)])
    assert [type(a).__name__ for a in answers] == ["SubmitOutcome"] * 3 + ["QueueFull"]
    assert isinstance(answers[3], QueueFull) and limited_board.queued() == 3


def test_racing_submits_take_exactly_the_queues_room_and_a_retry_of_a_stored_task_is_answered(
    limited_board: Board,
) -> None:
    answers: list[Any] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        got = submit(limited_board, [new(f"r{i}-{j}") for j in range(2)])
        with lock:
            answers.extend(got)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert sum(isinstance(a, SubmitOutcome) and a.created for a in answers) == 3, answers
    assert all(isinstance(a, SubmitOutcome | QueueFull) for a in answers), answers
    # The queue is full, yet a retry of a stored task gets it, and a different request under its id conflicts.
    stored = next(a.task for a in answers if isinstance(a, SubmitOutcome))
    (again,) = submit(limited_board, [new(stored.task_id)])
    assert isinstance(again, SubmitOutcome) and not again.created and again.task.task_id == stored.task_id
    (other,) = submit(limited_board, [new(stored.task_id, digest="another request")])
    assert isinstance(other, TaskConflict)


def test_past_the_queue_byte_budget_submits_are_refused_and_room_returns_as_tasks_leave(
    make_board: Callable[..., Board],
) -> None:
    board = make_board(max_queue_bytes=3_000)  # about three tasks of 900 bytes of args
    bulky = {"blob": "x" * 880}
    answers = submit(board, [new(f"b{i}", args=bulky) for i in range(5)])
    kinds = [type(a).__name__ for a in answers]
    assert kinds[:3] == ["SubmitOutcome"] * 3 and "QueueFull" in kinds, kinds
    refused = next(a for a in answers if isinstance(a, QueueFull))
    assert "--max-queue-bytes" in refused.message
    assert submit(board, [new("small", args={"n": 1})])[0].created, "a small task still fits"
    for held in claim(board, 10, now=NOW + 1):
        finish(board, held, ended(held, TaskState.SUCCESS, now=NOW + 2))
    wait_until(lambda: _fits(board, bulky), timeout=10, what="room for a bulky task once the queue emptied")


def _fits(board: Board, args: dict[str, Any]) -> bool:
    answer = submit(board, [new(f"later-{time.monotonic_ns()}", args=args)])[0]
    return isinstance(answer, SubmitOutcome)


# ---------------------------------------------------------------------------------------------- claiming


def test_claims_go_by_priority_then_submission_order_and_mark_running(board: Board) -> None:
    submit(board, [new("low"), new("high-1", priority=5), new("high-2", priority=5), new("mid", priority=1)])
    claims = claim(board, 3, now=NOW + 1)
    assert [c.task_id for c in claims] == ["high-1", "high-2", "mid"]
    first = claims[0]
    assert first.node == "node-a" and first.lease_until == NOW + 1 + LEASE
    assert (first.task.state, first.task.attempt) == (TaskState.RUNNING, 1)
    # The claim's time, moved on by its wait for the writer (a start is never before what its transaction read).
    assert first.task.started_at is not None and NOW + 1 <= first.task.started_at < NOW + 2
    assert first.task.event_sequence == 2
    assert board.get("high-1").state is TaskState.RUNNING  # type: ignore[union-attr]
    assert board.queued() == 1
    assert [c.task_id for c in claim(board, 5)] == ["low"]
    assert claim(board, 5) == [], "a claimed task is not claimed again"


def test_claims_take_only_the_types_the_node_runs(board: Board) -> None:
    submit(board, [new("e1", "echo"), new("s1", "sleep"), new("e2", "echo")])
    assert [c.task_id for c in claim(board, 5, types={"sleep"})] == ["s1"]
    assert [c.task_id for c in claim(board, 5, types={"echo"})] == ["e1", "e2"]


def test_claims_take_only_tasks_carrying_every_label_asked(board: Board) -> None:
    submit(board, [new("none"), new("eu", labels={"region": "eu"}), new("eu-gpu", labels={"region": "eu", "gpu": "1"}),
                   new("us-gpu", labels={"region": "us", "gpu": "1"})])  # fmt: skip
    eu_gpu = ClaimScope(labels=(("gpu", "1"), ("region", "eu")))
    batch = board.claim("node-a", eu_gpu, 5, lease_until=NOW + LEASE, now=NOW)
    assert [c.task_id for c in batch.claims] == ["eu-gpu"]
    batch = board.claim("node-a", ClaimScope(labels=(("region", "eu"),)), 5, lease_until=NOW + LEASE, now=NOW)
    assert [c.task_id for c in batch.claims] == ["eu"]
    assert [c.task_id for c in claim(board, 5)] == ["none", "us-gpu"]


# ---------------------------------------------------------------------------------------------- ending


def test_finish_by_the_owner_ends_the_task(board: Board) -> None:
    submit(board, [new("t")])
    (owned,) = claim(board)
    final = ended(owned, TaskState.SUCCESS, result={"ok": True})
    assert finish(board, owned, final)
    stored = board.get("t")
    assert stored is not None and (stored.state, stored.result, stored.ended_at) == (TaskState.SUCCESS, {"ok": True},
                                                                                     NOW)  # fmt: skip
    assert stored.event_sequence == final.event_sequence


def test_a_write_from_a_run_that_lost_its_lease_changes_nothing(board: Board) -> None:
    submit(board, [new("t")])
    (stale,) = claim(board, now=NOW)
    changed = board.reap(NOW + LEASE + 1, rerunnable=set())
    assert [(t.task_id, t.state, previous) for t, previous in changed] == [("t", TaskState.LOST, TaskState.RUNNING)]
    lost = board.get("t")
    assert lost is not None and lost.error is not None and lost.event_sequence > stale.task.event_sequence
    assert not finish(board, stale, ended(stale, TaskState.SUCCESS)), "a fenced write says it did nothing"
    assert board.get("t").state is TaskState.LOST  # type: ignore[union-attr]
    assert board.renew("node-a", [stale], NOW + 100).lost == [stale]


def test_reap_takes_only_expired_leases_and_requeues_types_safe_to_rerun(board: Board) -> None:
    submit(board, [new("keep", "echo"), new("again", "noop"), new("renewed", "echo")])
    claims = {c.task_id: c for c in claim(board, 3, now=NOW)}
    assert board.renew("node-a", [claims["renewed"]], NOW + 100).lost == []
    changed = {t.task_id: t.state for t, _ in board.reap(NOW + LEASE + 1, rerunnable={"noop"})}
    assert changed == {"keep": TaskState.LOST, "again": TaskState.PENDING}
    assert board.get("renewed").state is TaskState.RUNNING  # type: ignore[union-attr]
    (rerun,) = claim(board, now=NOW + LEASE + 2)
    assert rerun.task_id == "again" and rerun.task.attempt == 2


def test_a_claimed_task_whose_handler_never_started_is_reaped_back_to_pending_whatever_its_type(
    board: Board,
) -> None:
    submit(board, [new("waited", "echo"), new("started", "echo")])
    batch = board.claim("node-a", ANY_TASK, 2, lease_until=NOW + LEASE, now=NOW)
    started = next(c for c in batch.claims if c.task_id == "started")
    assert batch.wait_durable(started.task_id) is None  # its handler is about to start
    changed = {t.task_id: (t.state, t.attempt) for t, _ in board.reap(NOW + LEASE + 1, rerunnable=set())}
    assert changed == {"waited": (TaskState.PENDING, 0), "started": (TaskState.LOST, 1)}
    (again,) = claim(board, now=NOW + LEASE + 2)
    assert again.task_id == "waited" and again.task.attempt == 1


def test_retry_at_sends_a_run_back_to_pending_until_its_due_time(board: Board) -> None:
    submit(board, [new("flaky")])
    (first,) = claim(board)
    pending = ended(first, TaskState.PENDING, ended_at=None, error=TaskError("ConnectionError", "refused"))
    waited = Waited()
    board.retry_at(first, pending, NOW + 10, waited)
    assert waited.result() == (True, None)
    stored = board.get("flaky")
    assert stored is not None and stored.state is TaskState.PENDING and stored.run_after == NOW + 10
    assert stored.error is not None and stored.error.type == "ConnectionError"
    assert claim(board, now=NOW + 5) == [], "not before it is due"
    (second,) = claim(board, now=NOW + 10)
    assert second.task.attempt == 2 and second.task.run_after is None


def test_stop_listeners_are_called_with_no_board_lock_held(board: Board) -> None:
    """A stop listener (the engine's watchdog) takes the engine's locks; called under the board's lock, it could
    deadlock with a thread that holds an engine lock and calls the board."""
    submit(board, [new("held")])
    claim(board)
    other_callers: list[bool] = []

    def listener() -> None:
        meanwhile = threading.Thread(target=board.next_due)  # another thread's board call must not wait on us
        meanwhile.start()
        meanwhile.join(timeout=5)
        other_callers.append(not meanwhile.is_alive())

    board.on_stop(listener)
    result, error = stop(board, "held")
    assert error is None and result is not None and result.effect is StopEffect.STOPPING
    wait_until(lambda: other_callers, what="the stop listener called")
    assert all(other_callers), "the listener ran while the board held its lock"


def test_mark_stopping_by_the_owner_is_fenced(board: Board) -> None:
    submit(board, [new("t")])
    (owned,) = claim(board)
    stopping = owned.task.copy()
    stopping.state = TaskState.STOPPING
    stopping.event_sequence += 1
    waited = Waited()
    board.mark_stopping(owned, stopping, waited)
    assert waited.result() == (True, None)
    assert board.get("t").state is TaskState.STOPPING  # type: ignore[union-attr]
    impostor = Claim(owned.task, "node-b", owned.lease_until)
    waited = Waited()
    board.mark_stopping(impostor, stopping, waited)
    assert waited.result() == (False, None)


def test_progress_is_saved_for_the_owner_and_never_takes_a_sequence_back(board: Board) -> None:
    submit(board, [new("t")])
    (owned,) = claim(board)
    board.save_progress([(owned, Progress(40.0, "forty", 4, 10, NOW), 9)])
    board.save_progress([(owned, Progress(50.0, "fifty", 5, 10, NOW), 7)])
    board.save_progress([(Claim(owned.task, "node-b", 0.0), Progress(99.0, "not the owner"), 99)])
    # Written soon, not at once: wait for the last save to show, then look at what it left.
    wait_until(lambda: board.get("t").progress.message in ("fifty", "not the owner"), what="the progress saved")  # type: ignore[union-attr]
    stored = board.get("t")
    assert stored is not None and stored.progress.message == "fifty" and stored.event_sequence == 9


def _claim_started(board: Board, task_id: str, now: float) -> Claim:
    """A claim whose handler starts: its start written, as a worker's is."""
    batch = board.claim("node-a", ClaimScope(None), 1, lease_until=now + LEASE, now=now)
    (owned,) = batch.claims
    assert owned.task_id == task_id and batch.wait_durable(task_id) is None
    batch.started(task_id)
    wait_until(lambda: board.get(task_id).started_at is not None, what="the start written")  # type: ignore[union-attr]
    return owned


def test_history_keeps_each_change_and_a_tenth_of_the_way_until_the_task_is_deleted(board: Board) -> None:
    submit(board, [new("h")])
    owned = _claim_started(board, "h", NOW)
    for step, (percent, message) in enumerate([(5.0, "begun"), (25.0, "a quarter"), (27.0, "more"), (60.0, "most")]):
        board.save_progress([(owned, Progress(percent, message, 0, 0, NOW + 1 + step), 10 + step)])
    wait_until(lambda: board.get("h").progress.message == "most", what="the progress saved")  # type: ignore[union-attr]
    assert finish(board, owned, ended(owned, TaskState.FAILURE, now=NOW + 5))
    waited = Waited()
    board.retry("h", NOW + 6, waited)
    assert waited.result()[1] is None
    again = _claim_started(board, "h", NOW + 7)
    assert finish(board, again, ended(again, TaskState.SUCCESS, now=NOW + 9))

    history = board.history("h")
    assert history is not None
    P, R = TaskState.PENDING, TaskState.RUNNING
    assert [(e.state, e.attempt, e.percent, e.message) for e in history] == [
        (P, 0, None, ""), (R, 1, None, ""), (R, 1, 25.0, "a quarter"), (R, 1, 60.0, "most"),
        (TaskState.FAILURE, 1, None, ""), (P, 1, None, ""), (R, 2, None, ""), (TaskState.SUCCESS, 2, None, ""),
    ]  # fmt: skip
    assert [history[0].at, history[2].at, history[3].at, history[4].at, history[7].at] == [
        NOW, NOW + 2, NOW + 4, NOW + 5, NOW + 9,
    ]  # fmt: skip
    assert board.history("nobody") is None
    waited = Waited()
    board.delete("h", waited)
    assert waited.result()[1] is None
    assert board.history("h") is None


# ---------------------------------------------------------------------------------------------- stopping


def test_stop_revokes_a_pending_task_at_once(board: Board) -> None:
    submit(board, [new("t")])
    result, error = stop(board, "t", "no longer needed", now=NOW + 1)
    assert error is None and result is not None and result.effect is StopEffect.REVOKED
    assert result.task.state is TaskState.REVOKED and result.task.ended_at == NOW + 1
    assert result.task.error is not None and result.task.error.message == "no longer needed"
    assert board.get("t").state is TaskState.REVOKED  # type: ignore[union-attr]
    assert claim(board) == [] and board.queued() == 0


def test_stop_of_a_running_task_is_for_its_owner_and_of_an_ended_one_changes_nothing(board: Board) -> None:
    submit(board, [new("run"), new("done")])
    owned = {c.task_id: c for c in claim(board, 2)}
    assert finish(board, owned["done"], ended(owned["done"], TaskState.SUCCESS))
    result, _ = stop(board, "run")
    assert result is not None and result.effect is StopEffect.STOPPING
    result, _ = stop(board, "done")
    assert result is not None and result.effect is StopEffect.UNCHANGED and result.task.state is TaskState.SUCCESS
    result, error = stop(board, "nobody")
    assert result is None and isinstance(error, TaskNotFound)


# ---------------------------------------------------------------------------------------------- reads and callbacks


def test_list_is_newest_first_with_filters_and_paging(board: Board) -> None:
    submit(board, [new(f"t{i}", labels={"even": str(i % 2 == 0)}) for i in range(6)])
    everything = board.list(TaskFilter(), after=None, limit=10)
    assert [t.task_id for t in everything] == [f"t{i}" for i in reversed(range(6))]
    page = board.list(TaskFilter(), after=NEWEST_FIRST.after(everything[2]), limit=2)
    assert [t.task_id for t in page] == ["t2", "t1"]
    even = board.list(TaskFilter(labels=(("even", "True"),)), after=None, limit=10)
    assert [t.task_id for t in even] == ["t4", "t2", "t0"]
    (owned,) = claim(board)
    running = board.list(TaskFilter(states=frozenset({TaskState.RUNNING})), after=None, limit=10)
    assert [t.task_id for t in running] == [owned.task_id]


def _listed_tasks(board: Board) -> dict[str, Task]:
    """Four tasks with different starts, ends and durations: img-a FAILED after 5 s, img-b SUCCEEDED after 19 s,
    doc-c RUNNING since NOW+12, doc-d PENDING (submitted at NOW..NOW+3); then e, which runs after img-b."""
    submit(board, [new("img-a", args={"path": "/in/a.png"})], now=NOW)
    submit(board, [new("img-b", args={"path": "/in/Cats.jpg"})], now=NOW + 1)
    submit(board, [new("doc-c")], now=NOW + 2)
    submit(board, [new("doc-d")], now=NOW + 3)
    (a,) = claim(board, now=NOW + 10)
    error = TaskError("ValueError", "bad Photo size")
    assert finish(board, a, ended(a, TaskState.FAILURE, now=NOW + 15, started_at=NOW + 10, error=error))
    (b,) = claim(board, now=NOW + 11)
    assert finish(board, b, ended(b, TaskState.SUCCESS, now=NOW + 30, started_at=NOW + 11))
    claim(board, now=NOW + 12)
    submit(board, [new("e", after=("img-b",))], now=NOW + 40)
    return {t.task_id: t for t in board.list(TaskFilter(), after=None, limit=10)}


def _ids_in(board: Board, task_filter: TaskFilter, order: TaskOrder = NEWEST_FIRST) -> list[str]:
    """The ids the board lists, which the filter's own rule (used on tasks a server runs) must agree with."""
    listed = board.list(task_filter, order=order, after=None, limit=10)
    everything = board.list(TaskFilter(), after=None, limit=10)
    assert {t.task_id for t in listed} == {t.task_id for t in everything if task_filter.matches(t)}
    return [t.task_id for t in listed]


def test_list_sorts_by_start_end_and_duration_with_missing_keys_last(board: Board) -> None:
    _listed_tasks(board)
    by_duration = TaskOrder(SortKey.DURATION, descending=True, now=NOW + 100)
    assert _ids_in(board, TaskFilter(), by_duration) == ["doc-c", "img-b", "img-a", "e", "doc-d"]
    assert _ids_in(board, TaskFilter(), TaskOrder(SortKey.DURATION, False, NOW + 100))[:3] == [
        "img-a",
        "img-b",
        "doc-c",
    ]
    assert _ids_in(board, TaskFilter(), TaskOrder(SortKey.STARTED)) == ["doc-c", "img-b", "img-a", "e", "doc-d"]
    # Ties (no end) in the key's direction by submission order.
    assert _ids_in(board, TaskFilter(), TaskOrder(SortKey.ENDED, False)) == ["img-a", "img-b", "doc-c", "doc-d", "e"]
    assert _ids_in(board, TaskFilter(), TaskOrder(SortKey.SUBMITTED, False))[0] == "img-a"


def test_list_pages_in_any_order_meet_every_task_once(board: Board) -> None:
    _listed_tasks(board)
    for order in (TaskOrder(SortKey.ENDED), TaskOrder(SortKey.DURATION, False, NOW + 100), NEWEST_FIRST):
        whole = [t.task_id for t in board.list(TaskFilter(), order=order, after=None, limit=10)]
        paged: list[str] = []
        after: ListPosition | None = None
        while True:
            (task, *_) = board.list(TaskFilter(), order=order, after=after, limit=1) or [None]
            if task is None:
                break
            paged.append(task.task_id)
            after = order.after(task)
        assert paged == whole and len(whole) == 5, order


def test_list_searches_ids_args_and_errors_and_filters_by_time_and_dependency(board: Board) -> None:
    _listed_tasks(board)
    assert _ids_in(board, TaskFilter(search="doc-")) == ["doc-d", "doc-c"]
    assert _ids_in(board, TaskFilter(search="photo")) == ["img-a"]  # in the error message, ASCII case aside
    assert _ids_in(board, TaskFilter(search="valueerror")) == ["img-a"]
    assert _ids_in(board, TaskFilter(search="cats.JPG")) == ["img-b"]  # in the args
    assert _ids_in(board, TaskFilter(search="100%_")) == []  # no wildcard
    assert _ids_in(board, TaskFilter(submitted_after=NOW + 1, submitted_before=NOW + 3)) == ["doc-c", "img-b"]
    assert _ids_in(board, TaskFilter(depends_on="img-b")) == ["e"]
    assert _ids_in(board, TaskFilter(depends_on="img-a")) == []


def test_children_keep_their_parent_and_are_listed_by_it_across_a_reopen(
    board: Board, reopen: Callable[[Board], Board]
) -> None:
    submit(
        board,
        [new("p"), new("p.1", parent_id="p"), new("p.2", parent_id="p", detached=True), new("q.1", parent_id="q")],
    )
    again = reopen(board)
    children = again.list(TaskFilter(parent_id="p"), after=None, limit=10)
    assert [(t.task_id, t.parent_id, t.detached) for t in children] == [("p.2", "p", True), ("p.1", "p", False)]
    assert again.get("p").parent_id == "" and not again.get("p").detached
    running = again.list(TaskFilter(parent_id="p", states=frozenset({TaskState.RUNNING})), after=None, limit=10)
    assert running == []


def test_stats_count_tasks_by_type_and_state_and_ends_by_minute(board: Board) -> None:
    submit(board, [new("a1"), new("a2"), new("a3"), new("b1", task_type="other")])
    first, second, _ = claim(board, 3, types={"echo"})
    assert finish(board, first, ended(first, TaskState.SUCCESS, started_at=NOW - 1))
    assert finish(board, second, ended(second, TaskState.FAILURE, NOW - 61, started_at=NOW - 61))
    counts = {(c.task_type, c.state): c.count for c in board.task_counts()}
    assert counts == {("echo", TaskState.SUCCESS): 1, ("echo", TaskState.FAILURE): 1, ("echo", TaskState.RUNNING): 1,
                      ("other", TaskState.PENDING): 1}  # fmt: skip
    minutes = board.minute_counts(NOW)
    assert (
        len(minutes) == 60 and minutes[-1].start == NOW // 60 * 60 and minutes[0].start == minutes[-1].start - 59 * 60
    )
    assert (minutes[-1].succeeded, minutes[-1].failed) == (1, 0) and minutes[-1].started >= 1
    assert (minutes[-2].succeeded, minutes[-2].failed, minutes[-2].started) == (0, 1, 1)
    assert sum(m.succeeded + m.failed for m in minutes[:-2]) == 0


def test_callbacks_never_run_on_the_callers_thread(board: Board) -> None:
    """A caller may hold its own lock when it asks: a callback run inline would take it again and hang."""
    submit(board, [new("t")])
    caller = threading.current_thread()
    calls: list[Waited] = []
    for ask in (
        lambda w: board.submit([new("t")], NOW, w),  # an answer known at once
        lambda w: board.request_stop("nobody", "x", NOW, w),  # an error known at once
        lambda w: board.finish(Claim(board.get("t"), "nobody", 0.0), board.get("t"), w),  # type: ignore[arg-type]
    ):
        waited = Waited()
        ask(waited)
        calls.append(waited)
    for waited in calls:
        waited.result()
        assert waited.thread is not caller


def test_what_is_written_survives_a_reopen_and_running_tasks_are_reaped(
    board: Board, reopen: Callable[[Board], Board]
) -> None:
    submit(board, [new("done"), new("running"), new("queued", priority=-1)])
    owned = {c.task_id: c for c in claim(board, 2)}
    assert finish(board, owned["done"], ended(owned["done"], TaskState.SUCCESS, result=[1, 2]))
    again = reopen(board)
    assert again.get("done").result == [1, 2]  # type: ignore[union-attr]
    assert again.get("queued").state is TaskState.PENDING  # type: ignore[union-attr]
    if again.exclusive:  # its storage was this process's alone: whoever ran the task is gone
        reaped = {t.task_id: t.state for t, _ in again.reap(NOW, rerunnable=set())}
        assert reaped == {"running": TaskState.LOST}
    assert [c.task_id for c in claim(again)] == ["queued"]


def test_a_task_submitted_to_run_later_is_claimed_only_from_then_even_after_a_reopen(
    board: Board, reopen: Callable[[Board], Board]
) -> None:
    submit(board, [new("later", run_after=NOW + 60), new("now")])
    stored = board.get("later")
    assert stored is not None and stored.state is TaskState.PENDING and stored.run_after == NOW + 60
    scheduled = board.list(TaskFilter(scheduled=True), after=None, limit=10)
    assert [t.task_id for t in scheduled] == ["later"]
    assert [c.task_id for c in claim(board, 5)] == ["now"], "the one scheduled later waits"
    again = reopen(board)
    assert claim(again, 5, now=NOW + 59) == [], "not before its time, after a reopen too"
    (later,) = claim(again, 5, now=NOW + 60)
    assert later.task_id == "later" and later.task.run_after is None
    assert again.list(TaskFilter(scheduled=True), after=None, limit=10) == []


def test_stop_revokes_a_task_scheduled_later_at_once(board: Board) -> None:
    submit(board, [new("later", run_after=NOW + 3600)])
    result, error = stop(board, "later")
    assert error is None and result is not None and result.effect is StopEffect.REVOKED
    assert result.task.state is TaskState.REVOKED
    assert claim(board, now=NOW + 3600) == [], "a revoked task never runs"


def test_a_task_that_failed_is_retried_by_hand_as_its_next_attempt_and_other_states_are_refused(board: Board) -> None:
    submit(board, [new("failed"), new("fine"), new("waiting", run_after=NOW + 3600)])
    owned = {c.task_id: c for c in claim(board, 2)}
    error = TaskError("ValueError", "bad input")
    assert finish(board, owned["failed"], ended(owned["failed"], TaskState.FAILURE, error=error))
    assert finish(board, owned["fine"], ended(owned["fine"], TaskState.SUCCESS, result=1))
    ended_at = board.get("failed")
    assert ended_at is not None
    waited = Waited()
    board.retry("failed", NOW + 1, waited)
    answer, failure = waited.result()
    assert failure is None
    task, previous = answer
    assert previous is TaskState.FAILURE
    assert task.state is TaskState.PENDING and task.error is None and task.ended_at is None
    assert task.event_sequence > ended_at.event_sequence and task.attempt == 1
    assert board.get("failed").state is TaskState.PENDING  # type: ignore[union-attr]
    (again,) = claim(board, now=NOW + 2)
    assert again.task_id == "failed" and again.task.attempt == 2
    counts = {(c.task_type, c.state): c.count for c in board.task_counts()}
    assert counts == {("echo", TaskState.RUNNING): 1, ("echo", TaskState.SUCCESS): 1, ("echo", TaskState.PENDING): 1}
    refusals = {"fine": WrongState, "failed": WrongState, "waiting": WrongState, "no": TaskNotFound}
    for task_id, refused in refusals.items():
        waited = Waited()
        board.retry(task_id, NOW + 3, waited)
        answer, failure = waited.result()
        assert answer is None and isinstance(failure, refused), (task_id, failure)


def test_racing_retries_of_one_task_make_one_pending_task(board: Board) -> None:
    submit(board, [new("flaky")])
    (owned,) = claim(board)
    assert finish(board, owned, ended(owned, TaskState.LOST))
    answers = [Waited() for _ in range(6)]
    threads = [threading.Thread(target=board.retry, args=("flaky", NOW, answer)) for answer in answers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outcomes = [answer.result() for answer in answers]
    assert sum(1 for task, _ in outcomes if task is not None) == 1
    assert all(isinstance(error, WrongState) for task, error in outcomes if task is None)
    assert [c.task_id for c in claim(board, 5)] == ["flaky"]


def test_an_ended_task_is_deleted_and_an_unfinished_or_unknown_one_is_refused(board: Board) -> None:
    submit(board, [new("done"), new("queued", priority=-1)])
    (owned,) = claim(board)
    assert finish(board, owned, ended(owned, TaskState.SUCCESS, result=1))
    waited = Waited()
    board.delete("done", waited)
    task, error = waited.result()
    assert error is None and task.task_id == "done" and task.state is TaskState.SUCCESS
    assert board.get("done") is None
    assert board.list(TaskFilter(), after=None, limit=10)[0].task_id == "queued"
    assert [(c.state, c.count) for c in board.task_counts()] == [(TaskState.PENDING, 1)], "deleted: not counted"
    for task_id, refused in (("queued", WrongState), ("done", TaskNotFound)):
        waited = Waited()
        board.delete(task_id, waited)
        task, error = waited.result()
        assert task is None and isinstance(error, refused), (task_id, error)
    waited = Waited()
    board.retry("done", NOW, waited)
    assert isinstance(waited.result()[1], TaskNotFound), "a deleted task cannot be retried"


def test_ended_tasks_are_deleted_by_filter_and_by_retention_in_batches(board: Board) -> None:
    kept = {5: 0.0}  # t5 is kept for ever, whatever the server's retention
    submit(board, [new(f"t{i}", labels={"batch": "a" if i < 4 else "b"}, retention=kept.get(i)) for i in range(6)])
    for i, owned in enumerate(claim(board, 6)):
        assert finish(board, owned, ended(owned, TaskState.FAILURE if i % 2 else TaskState.SUCCESS, now=NOW + i))
    batch_a = TaskFilter(labels=(("batch", "a"),))
    assert board.delete_ended(batch_a, ended_before=NOW + 2, limit=10) == ["t0", "t1"]
    assert board.delete_ended(batch_a, ended_before=None, limit=1) == ["t2"], "oldest end first, up to the limit"
    assert board.expire(NOW + 100, retention=1000.0, limit=10) == [], "not yet"
    assert board.expire(NOW + 2000, retention=1000.0, limit=10) == ["t3", "t4"], "t5 keeps for ever"
    assert [t.task_id for t in board.list(TaskFilter(), after=None, limit=10)] == ["t5"]


class EndedHeard:
    """An on_ended listener: the tasks the board ended by itself, by id."""

    def __init__(self, board: Board) -> None:
        self.heard: dict[str, tuple[Task, TaskState]] = {}
        board.on_ended(self)

    def __call__(self, changed: list[tuple[Task, TaskState]]) -> None:
        self.heard.update((task.task_id, (task, previous)) for task, previous in changed)


def test_a_task_waits_for_its_dependencies_to_succeed_and_runs_after_them(board: Board) -> None:
    answers = submit(board, [new("a"), new("b"), new("after-both", after=("a", "b"), priority=9)])
    assert all(isinstance(answer, SubmitOutcome) for answer in answers)
    assert board.get("after-both").after == ("a", "b")  # type: ignore[union-attr]
    owned = {c.task_id: c for c in claim(board, 5)}
    assert set(owned) == {"a", "b"}, "the dependent waits, whatever its priority"
    assert finish(board, owned["a"], ended(owned["a"], TaskState.SUCCESS))
    assert claim(board, 5) == [], "one dependency is not enough"
    assert finish(board, owned["b"], ended(owned["b"], TaskState.SUCCESS))
    (last,) = wait_until(lambda: claim(board, 5), what="the dependent is claimed once both succeeded")
    assert last.task_id == "after-both"


def test_a_dependency_that_fails_revokes_its_dependents_down_the_chain(board: Board) -> None:
    heard = EndedHeard(board)
    submit(board, [new("a"), new("b", after=("a",)), new("c", after=("b",)), new("other", after=("a",))])
    (owned,) = claim(board, 5)
    error = TaskError("ValueError", "bad input")
    assert finish(board, owned, ended(owned, TaskState.FAILURE, error=error))
    wait_until(lambda: set(heard.heard) == {"b", "c", "other"}, what="every dependent ended")
    for task_id in ("b", "c", "other"):
        task = board.get(task_id)
        assert task is not None and task.state is TaskState.REVOKED, task_id
        assert task.error is not None and task.error.type == "DependencyFailed"
        assert heard.heard[task_id][1] is TaskState.PENDING
    b, c = board.get("b"), board.get("c")
    assert b is not None and "'a' ended FAILURE" in b.error.message and "bad input" in b.error.message  # type: ignore[union-attr]
    assert c is not None and "'b' ended REVOKED" in c.error.message  # type: ignore[union-attr]
    assert claim(board, 5) == []


def test_stopping_a_dependency_revokes_its_dependents_and_stopping_a_dependent_leaves_the_rest(board: Board) -> None:
    heard = EndedHeard(board)
    submit(board, [new("a"), new("b", after=("a",)), new("c", after=("a",)), new("d", after=("c",))])
    result, _ = stop(board, "b")
    assert result is not None and result.effect is StopEffect.REVOKED
    assert board.get("c").state is TaskState.PENDING, "a stop of one dependent is its own"  # type: ignore[union-attr]
    result, _ = stop(board, "a")
    assert result is not None and result.effect is StopEffect.REVOKED
    wait_until(lambda: set(heard.heard) == {"c", "d"}, what="the stopped task's dependents ended")
    assert board.get("d").error.message.startswith("dependency 'c' ended REVOKED")  # type: ignore[union-attr]


def test_dependencies_ended_already_decide_at_submit_and_unknown_ones_are_refused(board: Board) -> None:
    submit(board, [new("ok"), new("bad")])
    owned = {c.task_id: c for c in claim(board, 5)}
    assert finish(board, owned["ok"], ended(owned["ok"], TaskState.SUCCESS))
    assert finish(board, owned["bad"], ended(owned["bad"], TaskState.TIMED_OUT))
    answers = submit(board, [new("runs", after=("ok",)), new("never", after=("ok", "bad")), new("lost", after=("no",))])
    assert answers[0].task.state is TaskState.PENDING
    assert answers[1].created and answers[1].task.state is TaskState.REVOKED
    assert answers[1].task.error.type == "DependencyFailed" and "'bad' ended TIMED_OUT" in answers[1].task.error.message
    assert isinstance(answers[2], InvalidRequest) and answers[2].field_violations[0][0] == "after"
    assert board.get("lost") is None
    assert [c.task_id for c in claim(board, 5)] == ["runs"]


def test_a_dependency_in_the_same_batch_counts_and_a_retry_waits_again(board: Board) -> None:
    submit(board, [new("first"), new("second", after=("first",))])
    (first,) = claim(board, 5)
    assert finish(board, first, ended(first, TaskState.FAILURE))
    wait_until(lambda: board.get("second").state is TaskState.REVOKED)  # type: ignore[union-attr]
    waited = Waited()
    board.retry("second", NOW, waited)
    answer, failure = waited.result()
    assert answer is None and isinstance(failure, WrongState) and "'first'" in str(failure)
    for task_id in ("first", "second"):
        waited = Waited()
        board.retry(task_id, NOW, waited)
        assert waited.result()[1] is None, task_id
    (again,) = claim(board, 5)
    assert again.task_id == "first", "the retried dependent waits for its retried dependency"
    assert finish(board, again, ended(again, TaskState.SUCCESS))
    (second,) = wait_until(lambda: claim(board, 5), what="the retried dependent runs")
    assert second.task_id == "second" and second.task.attempt == 1


def test_waiting_dependents_survive_a_reopen(board: Board, reopen: Callable[[Board], Board]) -> None:
    submit(board, [new("a"), new("b", after=("a",)), new("c", after=("b",))])
    again = reopen(board)
    (a,) = claim(again, 5)
    assert a.task_id == "a", "after a reopen, the dependents still wait"
    assert finish(again, a, ended(a, TaskState.SUCCESS))
    (b,) = wait_until(lambda: claim(again, 5), what="released after the reopen")
    assert b.task_id == "b"
    assert finish(again, b, ended(b, TaskState.FAILURE))
    wait_until(lambda: again.get("c").state is TaskState.REVOKED)  # type: ignore[union-attr]


def test_a_dependent_submitted_while_its_dependency_ends_is_never_left_waiting(board: Board) -> None:
    rounds = 20
    submit(board, [new(f"dep-{i}") for i in range(rounds)])
    owned = {c.task_id: c for c in claim(board, rounds)}
    outcomes = {i: TaskState.SUCCESS if i % 2 else TaskState.FAILURE for i in range(rounds)}
    enders = [
        threading.Thread(target=finish, args=(board, owned[f"dep-{i}"], ended(owned[f"dep-{i}"], outcomes[i])))
        for i in range(rounds)
    ]
    for thread in enders:
        thread.start()
    for i in range(rounds):  # each races its dependency's end
        submit(board, [new(f"dependent-{i}", after=(f"dep-{i}",))])
    for thread in enders:
        thread.join()
    failed = [f"dependent-{i}" for i in range(rounds) if outcomes[i] is TaskState.FAILURE]
    for task_id in failed:
        wait_until(lambda t=task_id: board.get(t).state is TaskState.REVOKED, what=f"{task_id} revoked")  # type: ignore[union-attr]
    ran: set[str] = set()
    wait_until(lambda: ran.update(c.task_id for c in claim(board, rounds)) or len(ran) == rounds // 2, what="all run")
    assert ran == {f"dependent-{i}" for i in range(rounds) if outcomes[i] is TaskState.SUCCESS}


def a_schedule(schedule_id: str, next_due: float = NOW + 60, **fields: Any) -> Schedule:
    spec = ScheduleSpec(schedule_id, SubmitSpec("echo", {"value": 1}, labels={"k": "v"}), interval=60.0)
    return Schedule(spec, created_at=NOW, next_due=next_due, **fields)


def test_schedules_are_added_once_read_listed_and_removed_across_a_reopen(
    board: Board, reopen: Callable[[Board], Board]
) -> None:
    first = a_schedule("nightly", paused=True)
    assert board.add_schedule(first) == (first, True)
    other = a_schedule("nightly", next_due=NOW + 999)
    assert board.add_schedule(other) == (first, False), "an id taken answers the schedule there"
    for schedule_id in ("b", "a", "c"):
        board.add_schedule(a_schedule(schedule_id))
    again = reopen(board)
    assert again.get_schedule("nightly") == first
    assert [s.schedule_id for s in again.list_schedules("", 3)] == ["a", "b", "c"]
    assert [s.schedule_id for s in again.list_schedules("c", 10)] == ["nightly"]
    assert again.remove_schedule("b") is not None and again.remove_schedule("b") is None
    assert again.get_schedule("b") is None and again.get_schedule("nowhere") is None


def test_a_schedule_is_saved_only_as_it_was_read_and_due_ones_are_found(board: Board) -> None:
    board.add_schedule(a_schedule("soon", next_due=NOW + 1))
    board.add_schedule(a_schedule("later", next_due=NOW + 100))
    board.add_schedule(a_schedule("paused", next_due=NOW, paused=True))
    assert [s.schedule_id for s in board.due_schedules(NOW + 1, 10)] == ["soon"]
    (read,) = board.due_schedules(NOW + 1, 10)
    fired = a_schedule("soon", next_due=NOW + 61, last_due=NOW + 1, last_task_id="soon:x")
    assert board.save_schedule(fired, read), "the first of two servers firing moves it on"
    assert not board.save_schedule(a_schedule("soon", next_due=NOW + 61), read), "the second changes nothing"
    assert board.get_schedule("soon") == fired
    assert board.due_schedules(NOW + 1, 10) == []
    assert not board.save_schedule(fired, fired) or board.get_schedule("soon") == fired
    assert not board.save_schedule(a_schedule("gone"), a_schedule("gone")), "no such schedule"
