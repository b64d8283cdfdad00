"""A real grpc.aio server on 127.0.0.1 port 0 over a real SQLite file, and a client channel to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.inprocess import InProcessServers, StartServer, channel, server, stub
from tests.support.task_types import Gates, make_registry

__all__ = ["StartServer", "channel", "server", "stub"]


@pytest.fixture
def gates() -> Iterator[Gates]:
    g = Gates()
    yield g
    g.open_all()


@pytest.fixture
async def start_server(tmp_path: Path, gates: Gates) -> AsyncIterator[StartServer]:
    servers = InProcessServers(tmp_path, lambda: make_registry(gates))
    yield servers.start
    gates.open_all()
    await servers.close()
