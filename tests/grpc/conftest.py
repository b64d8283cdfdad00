"""A real grpc.aio server on 127.0.0.1 port 0 over a real SQLite file, and a client channel to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from taskservice.core.handlers.registry import TaskRegistry
from tests.support.inprocess import InProcessServers, StartServer, channel, server, stub
from tests.support.task_types import Gates, make_registry

__all__ = ["StartServer", "channel", "server", "stub"]


@pytest.fixture
def gates() -> Iterator[Gates]:
    g = Gates()
    yield g
    g.open_all()


@pytest.fixture
def task_types(gates: Gates) -> Callable[[], TaskRegistry]:
    """What the servers of a test run; a test module overrides this fixture to add its own types."""
    return lambda: make_registry(gates)


@pytest.fixture
async def start_server(
    tmp_path: Path, gates: Gates, task_types: Callable[[], TaskRegistry]
) -> AsyncIterator[StartServer]:
    servers = InProcessServers(tmp_path, task_types)
    yield servers.start
    gates.open_all()
    await servers.close()
