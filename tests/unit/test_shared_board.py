"""Two engines (two servers) on one board they share: a Stop sent to one reaches the task the other runs, and a
server that lost its lease stops its handler and writes nothing. The board is one SQLite file that two engine
processes of one server share (each its own board over it, hints between them through their sibling sockets), as
`--procs` runs them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from taskservice.core.board import Board
from taskservice.core.board.sqlite.board import SQLiteBoard
from taskservice.core.board.sqlite.siblings import Siblings
from taskservice.core.engine import relay
from taskservice.core.engine.manager import WorkerManager
from taskservice.core.model.events import Watcher
from taskservice.core.model.models import TaskState
from tests.support.task_types import Gates
from tests.support.waiting import wait_until
from tests.unit.conftest import MakeManager

BoardOf = Callable[[int], Board]


@pytest.fixture
def board_of(tmp_path: Path) -> Iterator[BoardOf]:
    """The board engine number i uses: the engine processes of one server on one SQLite file. Requested before
    make_manager, so that the boards close after the servers."""
    opened: dict[int, Board] = {}

    def of(i: int) -> Board:
        if i not in opened:
            opened[i] = SQLiteBoard(tmp_path / "t.db", lock=False, siblings=Siblings(tmp_path, i, 2))
        return opened[i]

    yield of
    for board in opened.values():
        board.close()


def owner_of(task_id: str, *managers: WorkerManager) -> WorkerManager:
    def running_on() -> WorkerManager | None:
        return next((m for m in managers if m.get(task_id).state is TaskState.RUNNING and m._table.runs.get(task_id)),
                    None)  # fmt: skip

    found = wait_until(running_on, what=f"{task_id} running on one of the servers")
    assert found is not None
    return found


def test_a_stop_sent_to_one_server_reaches_the_task_another_runs(
    board_of: BoardOf, make_manager: MakeManager, gates: Gates
) -> None:
    board = board_of(0)
    # No poll in the test's time: only the hint (a listener here, a sibling's socket there) brings the stop.
    first = make_manager(board, workers=1, poll_seconds=3600)
    second = make_manager(board_of(1), workers=1, poll_seconds=3600)
    task_id = first.submit("gate", {"name": "held"}).task.task_id
    owner = owner_of(task_id, first, second)
    other = second if owner is first else first
    answered = other.stop(task_id, "from the other server")
    assert answered.state is TaskState.RUNNING  # the other server only asked; the owner stops it
    wait_until(lambda: board.get(task_id).state is TaskState.REVOKED, what="the owner stopped it")  # type: ignore[union-attr]
    final = board.get(task_id)
    assert final is not None and final.error is not None and "from the other server" in final.error.message


def test_a_server_that_lost_its_lease_stops_the_handler_and_its_late_end_changes_nothing(
    board_of: BoardOf, make_manager: MakeManager, gates: Gates
) -> None:
    board = board_of(0)
    manager = make_manager(board, workers=1, renew_seconds=0.05)
    task_id = manager.submit("gate", {"name": "slow"}).task.task_id
    owner_of(task_id, manager)
    # Its start reaches the board just after the claim (once the handler starts): wait for it, on a busy machine too.
    started = wait_until(lambda: board.get(task_id).started_at, what="the start on the board")  # type: ignore[union-attr]
    # Another server's reaper finds the lease expired (this one was cut off from the database, say).
    reaped = board.reap(started + 10_000, rerunnable=set())
    assert [t.state for t, _ in reaped] == [TaskState.LOST]
    wait_until(lambda: not manager._table.runs, what="the server noticed at its next renewal and dropped the run")
    gates.open("slow")
    assert board.get(task_id).state is TaskState.LOST  # type: ignore[union-attr]


@pytest.fixture
def sibling_boards(tmp_path: Path) -> Iterator[list[SQLiteBoard]]:
    """Two engine processes' boards over one SQLite file; requested before make_manager, so they close after."""
    boards = [SQLiteBoard(tmp_path / "t.db", lock=False, siblings=Siblings(tmp_path, i, 2)) for i in range(2)]
    yield boards
    for board in boards:
        board.close()


def test_progress_of_a_task_a_sibling_process_runs_reaches_a_watcher_here_through_the_hint(
    sibling_boards: list[SQLiteBoard], make_manager: MakeManager, gates: Gates, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relay's poll is out of the test's time: only the sibling's `moved` hint can bring the progress of the
    task the other process runs to the watcher here."""
    monkeypatch.setattr(relay, "RELAY_SECONDS", 3600.0)
    runner = make_manager(sibling_boards[0], workers=1, progress_seconds=0.02)
    task_id = runner.submit("progress_then_wait", {"name": "ticking"}).task.task_id
    owner_of(task_id, runner)
    watching = make_manager(sibling_boards[1], workers=1)  # started once the task runs on the other: cannot take it
    watcher = Watcher()
    assert watching.watch(task_id, watcher)
    seen = wait_until(lambda: [e for e in watcher.drain() if not e.is_state_change], what="progress relayed")
    assert seen[-1].progress.message.startswith("tick")
    gates.open("ticking")
