from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from taskservice.core.board import Board
from taskservice.core.clock import Clock
from taskservice.core.logs import TaskLogs
from taskservice.core.manager import ManagerConfig, WorkerManager
from taskservice.core.observe import TaskListener
from taskservice.core.paths import DataRoot
from taskservice.core.store import MemoryStore, SQLiteStore, TaskStore
from tests.support.task_types import Gates, make_registry


@pytest.fixture
def gates() -> Iterator[Gates]:
    g = Gates()
    yield g
    g.open_all()  # let stubborn handlers end so their threads do not outlive the test


MakeManager = Callable[..., WorkerManager]


@pytest.fixture
def make_manager(gates: Gates) -> Iterator[MakeManager]:
    """Build started managers (in-memory store unless one is given); all are closed after the test."""
    made: list[WorkerManager] = []

    def make(
        store: TaskStore | Board | None = None,
        listeners: Sequence[TaskListener] = (),
        *,
        data_root: DataRoot | None = None,
        logs: TaskLogs | None = None,
        clock: Clock | None = None,
        **config: object,
    ) -> WorkerManager:
        manager = WorkerManager(
            store or MemoryStore(),
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


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "tasks.db"


@pytest.fixture
def sqlite_store(sqlite_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(sqlite_path)
    yield store
    store.close()
