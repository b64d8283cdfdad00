"""What a start does with what the last run left in the file."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from taskservice.core.board import SQLiteBoard
from taskservice.core.board.base import REAP_SEQUENCE_GAP
from taskservice.core.board.sqlite.schema import COLUMNS, task_row
from taskservice.core.model.models import ErrorType, Task, TaskState
from tests.support.engine import wait_final
from tests.unit.conftest import MakeManager


def leftover(seq: int, task_type: str, state: TaskState, **args: object) -> Task:
    return Task(
        task_id=f"left-{seq}",
        task_type=task_type,
        args=dict(args),
        state=state,
        submitted_at=1.0,
        submit_order=seq,
        event_sequence=3,
        attempt=1 if state is not TaskState.PENDING else 0,
        started_at=1.5 if state is not TaskState.PENDING else None,  # its handler had started
        request_digest="d",
    )


def left_behind(tmp_path: Path, *tasks: Task) -> Path:
    """A file holding `tasks` as a server that died left them (written straight, no server running)."""
    db = tmp_path / "tasks.db"
    SQLiteBoard(db).close()  # the schema
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        marks = ", ".join("?" * len(COLUMNS.split(",")))
        conn.executemany(f"INSERT INTO tasks ({COLUMNS}) VALUES ({marks})", [task_row(task) for task in tasks])
    return db


def test_running_tasks_become_lost_and_pending_ones_run_in_order(
    make_manager: MakeManager, tmp_path: Path, gates
) -> None:
    db = left_behind(
        tmp_path,
        leftover(1, "record", TaskState.RUNNING, tag="was-running"),
        leftover(2, "record", TaskState.STOPPING, tag="was-stopping"),
        leftover(3, "record", TaskState.PENDING, tag="first"),
        leftover(4, "record", TaskState.PENDING, tag="second"),
    )
    manager = make_manager(db=db, workers=1)
    for task_id in ("left-1", "left-2"):
        lost = manager.get(task_id)
        assert lost.state is TaskState.LOST
        assert lost.error is not None and lost.error.type == ErrorType.SERVER_RESTARTED
        assert lost.event_sequence > REAP_SEQUENCE_GAP
    assert wait_final(manager, "left-3").state is TaskState.SUCCESS
    assert wait_final(manager, "left-4").state is TaskState.SUCCESS
    assert gates.ran == ["first", "second"]


def test_task_types_that_allow_it_are_run_again_after_a_crash(make_manager: MakeManager, tmp_path: Path, gates) -> None:
    manager = make_manager(db=left_behind(tmp_path, leftover(1, "rerunnable", TaskState.RUNNING, name="again")))
    final = wait_final(manager, "left-1")
    assert final.state is TaskState.SUCCESS and final.attempt == 2
    assert gates.ran == ["again"]


def test_queued_tasks_of_a_type_no_longer_loaded_fail_with_a_clear_error(
    make_manager: MakeManager, tmp_path: Path
) -> None:
    manager = make_manager(db=left_behind(tmp_path, leftover(1, "plugin.gone", TaskState.PENDING)))
    final = wait_final(manager, "left-1")
    assert final.state is TaskState.FAILURE
    assert final.error is not None and "--tasks" in final.error.message


def test_progress_is_persisted_at_a_throttled_rate(make_manager: MakeManager) -> None:
    manager = make_manager()
    task_id = manager.submit("spin", {"reports": 20_000}).task.task_id
    final = wait_final(manager, task_id, timeout=30)
    assert final.progress.current == 20_000
    # A commit per report would be 20,000; group commit plus throttled progress keeps it to a handful.
    assert manager.stats().store_commits < 100
    assert manager.board.get(task_id).progress.current == 20_000  # type: ignore[union-attr]
