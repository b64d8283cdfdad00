"""Fixtures of the fault tests: a real grpc.aio server in-process (port 0, SQLite), built like tests/grpc's
but with the misbehaving task types of tests/support/fault_task_types.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.fault_task_types import Probe, make_fault_registry
from tests.support.inprocess import InProcessServers, StartServer, channel, server, stub
from tests.support.task_types import Gates

__all__ = ["StartServer", "channel", "server", "stub"]


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
    """start_server(board=None, **ManagerConfig fields) -> a started RunningServer; all shut down after the test."""
    servers = InProcessServers(tmp_path, lambda: make_fault_registry(gates, probe))
    yield servers.start
    gates.open_all()
    await servers.close()
