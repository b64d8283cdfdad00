"""Two engines (two servers) on one board they share: a Stop sent to one reaches the task the other runs, and a
server that lost its lease stops its handler and writes nothing (the board is an in-memory twin of a shared one)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from taskservice.core.board import MemoryBoard
from taskservice.core.manager import WorkerManager
from taskservice.core.models import TaskState
from tests.support.task_types import Gates
from tests.support.waiting import wait_until
from tests.unit.conftest import MakeManager


@pytest.fixture
def board() -> Iterator[MemoryBoard]:
    """Requested before make_manager, so that it closes after the servers do."""
    shared = MemoryBoard(exclusive=False)
    yield shared
    shared.close()


def owner_of(task_id: str, *managers: WorkerManager) -> WorkerManager:
    def running_on() -> WorkerManager | None:
        return next((m for m in managers if m.get(task_id).state is TaskState.RUNNING and m._table.runs.get(task_id)),
                    None)  # fmt: skip

    found = wait_until(running_on, what=f"{task_id} running on one of the servers")
    assert found is not None
    return found


def test_a_stop_sent_to_one_server_reaches_the_task_another_runs(
    board: MemoryBoard, make_manager: MakeManager, gates: Gates
) -> None:
    first, second = make_manager(board, workers=1), make_manager(board, workers=1)
    task_id = first.submit("gate", {"name": "held"}).task.task_id
    owner = owner_of(task_id, first, second)
    other = second if owner is first else first
    answered = other.stop(task_id, "from the other server")
    assert answered.state is TaskState.RUNNING  # the other server only asked; the owner stops it
    wait_until(lambda: board.get(task_id).state is TaskState.REVOKED, what="the owner stopped it")  # type: ignore[union-attr]
    final = board.get(task_id)
    assert final is not None and final.error is not None and "from the other server" in final.error.message


def test_a_server_that_lost_its_lease_stops_the_handler_and_its_late_end_changes_nothing(
    board: MemoryBoard, make_manager: MakeManager, gates: Gates
) -> None:
    manager = make_manager(board, workers=1, renew_seconds=0.05)
    task_id = manager.submit("gate", {"name": "slow"}).task.task_id
    owner_of(task_id, manager)
    # Another server's reaper finds the lease expired (this one was cut off from the database, say).
    reaped = board.reap(board.get(task_id).started_at + 10_000, rerunnable=set())  # type: ignore[union-attr]
    assert [t.state for t, _ in reaped] == [TaskState.LOST]
    wait_until(lambda: not manager._table.runs, what="the server noticed at its next renewal and dropped the run")
    gates.open("slow")
    assert board.get(task_id).state is TaskState.LOST  # type: ignore[union-attr]
