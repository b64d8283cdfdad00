"""A real grpc.aio server in the test's own process: 127.0.0.1 port 0, a real SQLite file in a temp dir.

Shared by tests/grpc and tests/faults, which differ only in the task types they register.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest

from taskservice.core.board import Board
from taskservice.core.board.sqlite.board import SQLiteBoard
from taskservice.core.engine.manager import ManagerConfig, WorkerManager
from taskservice.core.handlers.logs import TaskLogs
from taskservice.core.handlers.paths import DataRoot
from taskservice.core.handlers.registry import TaskRegistry
from taskservice.server.app import RunningServer, build_server
from taskservice.server.settings import Settings
from taskservice.v1 import task_service_pb2_grpc as pb_grpc

StartServer = Callable[..., Awaitable[RunningServer]]


class InProcessServers:
    """start(board=None, **ManagerConfig fields) -> a started server; close() shuts every one down."""

    def __init__(self, tmp_path: Path, make_registry: Callable[[], TaskRegistry]) -> None:
        self._tmp = tmp_path
        self._make_registry = make_registry
        self.started: list[tuple[RunningServer, Board]] = []

    async def start(self, board: Board | None = None, **config: object) -> RunningServer:
        index = len(self.started)
        room = {key: config.pop(key) for key in ("max_queue", "max_queue_bytes") if key in config}
        if board is None:  # the queue's room is the board's to enforce, as in the server
            board = SQLiteBoard(self._tmp / f"tasks-{index}.db", **room)  # type: ignore[arg-type]
        manager = WorkerManager(
            board,
            self._make_registry(),
            config=ManagerConfig(**{"workers": 4, "stop_grace": 0.5, **config}),  # type: ignore[arg-type]
            data_root=DataRoot(self._tmp / "data"),
            logs=TaskLogs(self._tmp / f"logs-{index}"),
        )
        manager.start()
        running = await build_server(manager, Settings(listen="127.0.0.1:0"))
        self.started.append((running, board))
        return running

    async def close(self) -> None:
        for running, board in self.started:
            resume = getattr(board, "resume", None)  # a board a test paused must let the shutdown write
            if resume is not None:
                resume()
            await running.shutdown(0)
            board.close()


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
