"""The HTTP face of a real in-process server (gRPC on port 0, its SQLite file in a temp dir), on port 0 too, and a
real HTTP client (aiohttp) to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from taskservice.server.app import RunningServer
from taskservice.server.auth import TokenFile
from taskservice.server.http import build_app, host_rule, start_http
from taskservice.server.settings import Settings
from tests.grpc.conftest import gates, start_server, task_types
from tests.support.inprocess import StartServer, channel, server, stub

__all__ = ["StartServer", "channel", "gates", "server", "start_server", "stub", "task_types"]


class HttpFaces:
    """start(server, ...) -> the base URL of an HTTP face of `server`, listening on 127.0.0.1."""

    def __init__(self) -> None:
        self.started: list[object] = []

    async def start(
        self,
        server: RunningServer,
        *,
        tokens: TokenFile | None = None,
        cors_origin: str = "",
        allowed_hosts: tuple[str, ...] = (),
        legacy_task_type: str = "",
    ) -> str:
        app = build_app(server.servicer, tokens=tokens, cors_origin=cors_origin, legacy_task_type=legacy_task_type,
                        hosts=host_rule("127.0.0.1", allowed_hosts))  # fmt: skip
        http = await start_http(app, Settings(http_listen="127.0.0.1:0"))
        self.started.append(http)
        return f"http://127.0.0.1:{http.port}"

    async def close(self) -> None:
        for http in self.started:
            await http.close()  # type: ignore[attr-defined]


@pytest.fixture
async def http_faces() -> AsyncIterator[HttpFaces]:
    faces = HttpFaces()
    yield faces
    await faces.close()


@pytest.fixture
async def base_url(server: RunningServer, http_faces: HttpFaces) -> str:
    return await http_faces.start(server)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session
