"""Fixtures of the fault tests: a real grpc.aio server in-process (port 0, SQLite), built like tests/grpc's
but with the misbehaving task types of tests/support/fault_task_types.py, and a store that can be paused."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest

from taskservice.core.store import SQLiteStore
from taskservice.core.store.base import Write
from tests.support.fault_task_types import Probe, make_fault_registry
from tests.support.inprocess import InProcessServers, StartServer, channel, server, stub
from tests.support.task_types import Gates

__all__ = ["PausableStore", "StartServer", "channel", "server", "stub"]


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
    servers = InProcessServers(tmp_path, lambda: make_fault_registry(gates, probe))
    yield servers.start
    gates.open_all()
    await servers.close()
