"""An in-process server on its own event-loop thread, so that synchronous tests (hypothesis) can drive it.

A real grpc.aio server on 127.0.0.1 port 0 over a real board (the server's SQLite board by default, or one given,
such as the fault-injecting one of tests/support/faulty_board.py), with the test task types of
tests/support/task_types.py.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from taskservice.core.board import Board
from taskservice.core.board.sqlite.board import SQLiteBoard
from taskservice.core.engine.manager import ManagerConfig, WorkerManager
from taskservice.core.handlers.logs import TaskLogs
from taskservice.core.handlers.paths import DataRoot
from taskservice.core.model.models import TaskFilter
from taskservice.server.app import RunningServer, build_server
from taskservice.server.settings import Settings
from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc
from tests.support.engine import stored
from tests.support.task_types import Gates, make_registry
from tests.support.waiting import wait_until

T = TypeVar("T")

SERVICE = "/taskservice.v1.TaskService/"
UNARY_METHODS = ("Submit", "SubmitBatch", "GetState", "Stop", "ListTasks")
STREAM_METHODS = ("WatchProgress", "WatchLogs")
# A client that takes any answer the server may send: messages over the server's 16 MiB limit (so that the
# server, not the client, refuses them) and error trailers of any size. (Error details that echo a huge request
# field once overflowed the 8 KiB trailer limit of a default client; test_properties.py checks they no longer do.)
ROOMY_CLIENT = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_metadata_size", 16 * 1024 * 1024),
    ("grpc.absolute_max_metadata_size", 16 * 1024 * 1024),
]


class BackgroundServer:
    """A started server whose event loop runs in a daemon thread; stop() shuts it down and closes the board."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        board: Board | None = None,
        workers: int = 4,
        stop_grace: float = 0.5,
        max_message_bytes: int | None = None,
    ) -> None:
        self.tmp_path = tmp_path
        self.board = board if board is not None else SQLiteBoard(tmp_path / "tasks.db")
        self.gates = Gates()
        (tmp_path / "data").mkdir(exist_ok=True)
        registry = make_registry(self.gates)
        self.task_types = frozenset(registry.names())
        self.manager = WorkerManager(
            self.board,
            registry,
            config=ManagerConfig(workers=workers, stop_grace=stop_grace),
            data_root=DataRoot(tmp_path / "data"),
            logs=TaskLogs(tmp_path / "logs"),
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="faults-server-loop", daemon=True)
        settings = Settings(listen="127.0.0.1:0")
        if max_message_bytes is not None:
            settings = Settings(listen="127.0.0.1:0", max_message_bytes=max_message_bytes)
        self._settings = settings
        self.running: RunningServer | None = None
        self._stopped = False
        self.channel: grpc.Channel | None = None

    def start(self) -> BackgroundServer:
        self.manager.start()
        self._thread.start()
        self.running = self.run(build_server(self.manager, self._settings))
        self.channel = grpc.insecure_channel(self.address, options=ROOMY_CLIENT)
        return self

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    @property
    def port(self) -> int:
        assert self.running is not None
        return self.running.port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def stub(self) -> pb_grpc.TaskServiceStub:
        assert self.channel is not None
        return pb_grpc.TaskServiceStub(self.channel)

    def health(self) -> int:
        assert self.channel is not None
        reply = health_pb2_grpc.HealthStub(self.channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        return reply.status

    def assert_healthy(self) -> None:
        assert self.health() == health_pb2.HealthCheckResponse.SERVING
        # And it still answers a real call.
        self.stub.ListTasks(pb.ListTasksRequest(page_size=1), timeout=5)

    def stop(self) -> None:
        """Shut down and close the board; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self.gates.open_all()
        if self.channel is not None:
            self.channel.close()
        if self.running is not None:
            self.run(self.running.shutdown(0))
        else:
            self.manager.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self.board.close()

    def count(self) -> int:
        """How many tasks the board holds."""
        return stored(self.board)

    def max_order(self) -> int:
        """The submit order of the newest task (0 when there is none)."""
        newest = self.board.list(TaskFilter(), after=None, limit=1)
        return newest[0].submit_order if newest else 0

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for_state(stub: pb_grpc.TaskServiceStub, task_id: str, states: set[int], timeout: float = 10.0) -> pb.Task:
    """GetState until the task is in one of `states`; AssertionError at the deadline."""

    def reached() -> pb.Task | None:
        task = stub.GetState(pb.GetStateRequest(task_id=task_id), timeout=5).task
        return task if task.state in states else None

    names = ", ".join(pb.TaskState.Name(s) for s in sorted(states))
    return wait_until(reached, timeout=timeout, what=f"task {task_id} in {names}")
