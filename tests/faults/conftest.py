"""Fixtures of the fault tests: a real grpc.aio server in-process (port 0, SQLite), built like tests/grpc's
but with the misbehaving task types of tests/support/fault_task_types.py, and a store that can be paused."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path

import grpc
import pytest

from taskservice.core.logs import TaskLogs
from taskservice.core.manager import ManagerConfig, WorkerManager
from taskservice.core.paths import DataRoot
from taskservice.core.store import SQLiteStore
from taskservice.core.store.base import Write
from taskservice.server.app import RunningServer, build_server
from taskservice.server.settings import Settings
from taskservice.v1 import task_service_pb2_grpc as pb_grpc
from tests.support.fault_task_types import Probe, make_fault_registry
from tests.support.task_types import Gates

StartServer = Callable[..., Awaitable[RunningServer]]


class PausableStore(SQLiteStore):
    """SQLite whose writes can be held back: pause() makes the next apply() wait until resume().

    It stands for a disk that is slow to commit, so a test can let a client's deadline pass while its
    Submit or Stop waits for durability.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._open = threading.Event()
        self._open.set()
        self.waiting = threading.Event()

    def pause(self) -> None:
        self.waiting.clear()
        self._open.clear()

    def resume(self) -> None:
        self._open.set()

    def apply(self, writes: Sequence[Write]) -> None:
        if not self._open.is_set():
            self.waiting.set()
            self._open.wait(30)
        super().apply(writes)


@pytest.fixture
def gates() -> Iterator[Gates]:
    g = Gates()
    yield g
    g.open_all()  # let stubborn and leaking handlers end so their threads do not outlive the test


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
async def start_server(tmp_path: Path, gates: Gates, probe: Probe) -> AsyncIterator[StartServer]:
    """start_server(store=None, **ManagerConfig fields) -> a started RunningServer; all shut down after the test."""
    started: list[tuple[RunningServer, SQLiteStore]] = []

    async def start(store: SQLiteStore | None = None, **config: object) -> RunningServer:
        index = len(started)
        store = store if store is not None else SQLiteStore(tmp_path / f"tasks-{index}.db")
        manager = WorkerManager(
            store,
            make_fault_registry(gates, probe),
            config=ManagerConfig(**{"workers": 4, "stop_grace": 0.5, **config}),  # type: ignore[arg-type]
            data_root=DataRoot(tmp_path / "data"),
            logs=TaskLogs(tmp_path / f"logs-{index}"),
        )
        manager.start()
        running = await build_server(manager, Settings(listen="127.0.0.1:0"))
        started.append((running, store))
        return running

    yield start
    gates.open_all()
    for running, store in started:
        if isinstance(store, PausableStore):
            store.resume()
        await running.shutdown(0)
        store.close()


@pytest.fixture
async def server(start_server: StartServer) -> RunningServer:
    return await start_server()


@pytest.fixture
async def channel(server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as chan:
        yield chan


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> pb_grpc.TaskServiceStub:
    return pb_grpc.TaskServiceStub(channel)
