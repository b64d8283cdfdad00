from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from taskservice.core.board import Board, SQLiteBoard
from taskservice.core.engine.clock import Clock
from taskservice.core.engine.manager import ManagerConfig, WorkerManager
from taskservice.core.engine.observe import TaskListener
from taskservice.core.handlers.logs import TaskLogs
from taskservice.core.handlers.paths import DataRoot
from tests.support.task_types import Gates, make_registry


@pytest.fixture
def gates() -> Iterator[Gates]:
    g = Gates()
    yield g
    g.open_all()  # let stubborn handlers end so their threads do not outlive the test


MakeManager = Callable[..., WorkerManager]


@pytest.fixture
def make_manager(gates: Gates, tmp_path: Path) -> Iterator[MakeManager]:
    """Build started managers, each on a board of its own unless one is given: an SQLite file in the test's folder,
    or at `db` (the queue's room, max_queue and max_queue_bytes, goes to that board); all are closed after the
    test, then the boards made here."""
    made: list[WorkerManager] = []
    boards: list[Board] = []

    def make(
        board: Board | None = None,
        listeners: Sequence[TaskListener] = (),
        *,
        data_root: DataRoot | None = None,
        logs: TaskLogs | None = None,
        clock: Clock | None = None,
        db: Path | None = None,
        **config: object,
    ) -> WorkerManager:
        room = {key: config.pop(key) for key in ("max_queue", "max_queue_bytes") if key in config}
        if board is None:
            board = SQLiteBoard(db or tmp_path / f"tasks-{len(boards)}.db", **room)  # type: ignore[arg-type]
            boards.append(board)
        manager = WorkerManager(
            board,
            make_registry(gates),
            config=ManagerConfig(**config),  # type: ignore[arg-type]
            listeners=listeners,
            data_root=data_root,
            logs=logs,
            clock=clock,
        )
        manager.start()
        made.append(manager)
        return manager

    yield make
    gates.open_all()
    for manager in made:
        manager.close()
    for board in boards:
        board.close()
