"""The board's contract for limits and fair turns, run on every board with contract.py (see test_boards.py)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

from taskservice.core.board.base import Board
from taskservice.core.board.sql.turns import Fairness
from taskservice.core.model.errors import QueueFull
from taskservice.core.model.limits import Limit, LimitSpec, OnFull, Rate
from taskservice.core.model.models import SubmitOutcome, TaskFilter, TaskState
from tests.board.contract import NOW, claim, ended, finish, new, submit
from tests.support.waiting import wait_until


def a_limit(limit_id: str, **fields: object) -> Limit:
    return Limit(LimitSpec(limit_id, **fields), created_at=NOW, updated_at=NOW)  # type: ignore[arg-type]


def customer(task_id: str, name: str, task_type: str = "echo") -> object:
    return new(task_id, task_type, labels={"customer": name})


def running_by_customer(board: Board) -> Counter[str]:
    from taskservice.core.model.models import TaskFilter

    tasks = board.list(TaskFilter(states=frozenset({TaskState.RUNNING})), after=None, limit=1000)
    return Counter(task.labels.get("customer", "") for task in tasks)


def test_limits_are_added_once_read_listed_changed_and_removed_across_a_reopen(
    board: Board, reopen: Callable[[Board], Board]
) -> None:
    first = a_limit("imports", key_label="customer", max_running=3)
    assert board.add_limit(first) == (first, True)
    assert board.add_limit(a_limit("imports", max_running=9)) == (first, False), "an id taken answers the limit there"
    for limit_id in ("c", "a", "b"):
        board.add_limit(a_limit(limit_id, rate=Rate(10, 1.0)))
    again = reopen(board)
    assert again.get_limit("imports") == first
    assert [limit.limit_id for limit in again.list_limits("", 3)] == ["a", "b", "c"]
    assert [limit.limit_id for limit in again.list_limits("c", 10)] == ["imports"]
    changed = a_limit("imports", key_label="customer", max_running=5, weights=(("big", 2.0),))
    assert again.save_limit(changed) and again.get_limit("imports") == changed
    assert not again.save_limit(a_limit("nowhere", max_running=1)), "no such limit"
    assert again.remove_limit("b") is not None and again.remove_limit("b") is None
    assert again.get_limit("b") is None


def test_max_running_caps_each_group_and_a_full_group_does_not_hold_back_the_others(board: Board) -> None:
    board.add_limit(a_limit("per-customer", key_label="customer", max_running=2))
    submit(board, [customer(f"a{i}", "a") for i in range(20)] + [customer(f"b{i}", "b") for i in range(3)])
    first = claim(board, 10)
    assert Counter(c.task.labels["customer"] for c in first) == {"a": 2, "b": 2}, [c.task_id for c in first]
    assert claim(board, 10) == [], "both groups are full"
    done = next(c for c in first if c.task.labels["customer"] == "a")
    assert finish(board, done, ended(done, TaskState.SUCCESS))
    (next_a,) = claim(board, 10)
    assert next_a.task.labels["customer"] == "a", "an end makes room for one more of its group"
    assert running_by_customer(board) == {"a": 2, "b": 2}


def test_a_limit_without_a_key_caps_its_type_and_leaves_other_types_alone(board: Board) -> None:
    board.add_limit(a_limit("gpu", task_type="train", max_running=1))
    submit(board, [new(f"t{i}", "train") for i in range(5)] + [new(f"e{i}", "echo") for i in range(3)])
    taken = claim(board, 10)
    assert Counter(c.task.task_type for c in taken) == {"train": 1, "echo": 3}


def test_a_task_under_two_limits_starts_only_when_both_allow_it(board: Board) -> None:
    board.add_limit(a_limit("per-customer", key_label="customer", max_running=5))
    board.add_limit(a_limit("reports", task_type="report", max_running=1))
    submit(board, [customer("r1", "a", "report"), customer("r2", "b", "report"), customer("e1", "a")])
    assert sorted(c.task_id for c in claim(board, 10)) == ["e1", "r1"]


def test_racing_claims_of_many_nodes_never_pass_the_cap(board: Board) -> None:
    board.add_limit(a_limit("per-customer", key_label="customer", max_running=3))
    submit(board, [customer(f"a{i}", "a") for i in range(60)])
    taken: list[str] = []
    lock = threading.Lock()

    def node(name: str) -> None:
        for _ in range(5):
            got = claim(board, 4, node=name)
            with lock:
                taken.extend(c.task_id for c in got)

    threads = [threading.Thread(target=node, args=(f"node-{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(taken) == 3 and running_by_customer(board) == {"a": 3}


def test_a_rate_spaces_starts_by_its_token_bucket(board: Board) -> None:
    board.add_limit(a_limit("paced", key_label="customer", rate=Rate(4, 1.0, burst=2)))
    submit(board, [customer(f"a{i}", "a") for i in range(10)] + [customer("b0", "b")])
    assert len([c for c in claim(board, 10, now=NOW) if c.task.labels["customer"] == "a"]) == 2, "a burst of 2"
    assert claim(board, 10, now=NOW + 0.1) == [], "no token yet: 0.25 s each"
    # A claim's time is its transaction's (a few ms past the time asked), so the times asked keep clear of the
    # moments a token comes.
    assert len(claim(board, 10, now=NOW + 0.3)) == 1  # 1.2 tokens
    assert len(claim(board, 10, now=NOW + 0.56)) == 1  # 0.2 + 1.04
    assert len(claim(board, 10, now=NOW + 10)) == 2, "a quiet spell saves up to the burst, no more"


def test_a_changed_limit_applies_at_the_next_claim_and_a_removed_one_holds_nothing(board: Board) -> None:
    board.add_limit(a_limit("cap", max_running=1))
    submit(board, [new(f"t{i}") for i in range(6)])
    assert len(claim(board, 10)) == 1
    board.save_limit(a_limit("cap", max_running=3))
    assert len(claim(board, 10)) == 2
    board.remove_limit("cap")
    assert len(claim(board, 10)) == 3


def test_groups_take_turns_so_a_late_small_group_starts_before_a_big_ones_backlog(board: Board) -> None:
    board.add_limit(a_limit("per-customer", key_label="customer", max_running=1000))
    submit(board, [customer(f"a{i}", "a") for i in range(200)])
    assert len(claim(board, 10)) == 10
    submit(board, [customer(f"b{i}", "b") for i in range(5)])
    order = [c.task_id for _ in range(10) for c in claim(board, 1)]
    assert sorted(t for t in order if t.startswith("b")) == [f"b{i}" for i in range(5)], order
    assert order[:2] in (["a10", "b0"], ["b0", "a10"]), "turns alternate from where the queue stood"


def test_weights_give_groups_turns_in_proportion(board: Board) -> None:
    board.add_limit(a_limit("per-customer", key_label="customer", max_running=1000, weights=(("gold", 3.0),)))
    submit(board, [customer(f"f{i}", "free") for i in range(40)] + [customer(f"g{i}", "gold") for i in range(40)])
    first = [c.task.labels["customer"] for c in claim(board, 40)]
    assert Counter(first) == {"gold": 30, "free": 10}


def test_refuse_newest_refuses_past_max_running_and_max_waiting_of_a_group_only(board: Board) -> None:
    board.add_limit(a_limit("imports", key_label="customer", max_running=1, on_full=OnFull.REFUSE_NEWEST,
                            max_waiting=2))  # fmt: skip
    answers = submit(board, [customer(f"a{i}", "a") for i in range(4)] + [customer("b0", "b")])
    assert [type(answer).__name__ for answer in answers] == ["SubmitOutcome"] * 3 + ["QueueFull", "SubmitOutcome"]
    assert "limit 'imports' is full of customer=a" in str(answers[3])
    again = submit(board, [customer("a0", "a")])[0]
    assert isinstance(again, SubmitOutcome) and not again.created, "a retry of a stored task is answered with it"
    (running,) = [c for c in claim(board, 10) if c.task_id == "a0"]
    assert isinstance(submit(board, [customer("a9", "a")])[0], QueueFull), "running and waiting both count"
    assert finish(board, running, ended(running, TaskState.SUCCESS))
    assert isinstance(submit(board, [customer("a9", "a")])[0], SubmitOutcome), "an end makes room"


def test_stop_oldest_names_the_groups_older_tasks_beyond_max_running(board: Board) -> None:
    heard: list[list[tuple[str, str]]] = []
    board.on_displaced(heard.append)
    board.add_limit(a_limit("latest", task_type="build", key_label="repo", max_running=1,
                            on_full=OnFull.STOP_OLDEST))  # fmt: skip
    submit(board, [new("b1", "build", labels={"repo": "web"})])
    assert [c.task_id for c in claim(board, 10)] == ["b1"]
    submit(board, [new("b2", "build", labels={"repo": "web"}), new("x1", "build", labels={"repo": "api"})])
    wait_until(lambda: heard, what="the displaced tasks told")
    assert [task_id for task_id, _ in heard[0]] == ["b1"]
    assert heard[0][0][1] == "stopped by limit 'latest': newer tasks of repo=web took its place"


def test_the_operators_fairness_label_makes_the_turns_with_no_limit_at_all(make_board: Callable[..., Board]) -> None:
    board = make_board(fairness=Fairness("tenant", {"big": 2.0}))
    submit(board, [new(f"s{i}", labels={"tenant": "small"}) for i in range(30)])
    submit(board, [new(f"b{i}", labels={"tenant": "big"}) for i in range(30)])
    submit(board, [new(f"n{i}") for i in range(30)])
    first = [c.task_id[0] for c in claim(board, 20)]
    assert Counter(first) == {"b": 10, "s": 5, "n": 5}, first


def test_a_pending_task_says_what_it_waits_for_a_full_limit_or_unmet_dependencies(board: Board) -> None:
    board.add_limit(a_limit("per-customer", key_label="customer", max_running=1))
    submit(board, [customer("a0", "a"), customer("a1", "a"), customer("b0", "b"), new("dep"),
                   new("after", after=("dep", "a0"))])  # fmt: skip
    claimed = claim(board, 1, types={"echo"})
    assert [c.task_id for c in claimed] == ["a0"]
    tasks = {task_id: board.get(task_id) for task_id in ("a1", "b0", "after", "dep")}
    waiting = board.waiting_for([task for task in tasks.values() if task is not None])
    assert waiting["a1"].limit_ids == ("per-customer",) and waiting["a1"].task_ids == ()
    assert waiting["after"].task_ids == ("a0", "dep")
    assert "b0" not in waiting and "dep" not in waiting, "nothing holds them back but a worker"
    board.remove_limit("per-customer")
    claim(board, 1, types={"nothing"})  # a claim finds no limit
    assert "a1" not in board.waiting_for([tasks["a1"]])  # type: ignore[list-item]


def test_list_finds_the_tasks_a_limit_holds_back(board: Board) -> None:
    board.add_limit(a_limit("per-customer", key_label="customer", max_running=1))
    board.add_limit(a_limit("idle", task_type="nothing", max_running=1))
    submit(board, [customer("a0", "a"), customer("a1", "a"), customer("a2", "a"), customer("b0", "b")])
    claim(board, 1)
    held = board.list(TaskFilter(waiting_for_limit="per-customer"), after=None, limit=10)
    assert sorted(task.task_id for task in held) == ["a1", "a2"]
    assert board.list(TaskFilter(waiting_for_limit="idle"), after=None, limit=10) == []
    resolved = TaskFilter(waiting_for_limit="per-customer", held_back=(LimitSpec("per-customer", key_label="customer",
                          max_running=1), frozenset({"b"})))  # fmt: skip
    assert not resolved.matches(held[0]) and resolved.matches(board.get("b0"))  # type: ignore[arg-type]
