"""A real grpc.aio server on 127.0.0.1 port 0 over a real SQLite file, and a client channel to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import grpc
import pytest

from taskservice.core.logs import TaskLogs
from taskservice.core.manager import ManagerConfig, WorkerManager
from taskservice.core.paths import DataRoot
from taskservice.core.store import SQLiteStore
from taskservice.server.app import RunningServer, build_server
from taskservice.server.settings import Settings
from taskservice.v1 import task_service_pb2_grpc as pb_grpc
from tests.support.task_types import Gates, make_registry

StartServer = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
def gates() -> Iterator[Gates]:
    g = Gates()
    yield g
    g.open_all()


@pytest.fixture
async def start_server(tmp_path: Path, gates: Gates) -> AsyncIterator[StartServer]:
    started: list[tuple[RunningServer, SQLiteStore]] = []

    async def start(**config: object) -> RunningServer:
        store = SQLiteStore(tmp_path / f"tasks-{len(started)}.db")
        manager = WorkerManager(
            store,
            make_registry(gates),
            config=ManagerConfig(**{"workers": 4, "stop_grace": 0.5, **config}),  # type: ignore[arg-type]
            data_root=DataRoot(tmp_path / "data"),
            logs=TaskLogs(tmp_path / f"logs-{len(started)}"),
        )
        manager.start()
        running = await build_server(manager, Settings(listen="127.0.0.1:0"))
        started.append((running, store))
        return running

    yield start
    gates.open_all()
    for running, store in started:
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
