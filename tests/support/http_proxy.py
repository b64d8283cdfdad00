"""A reverse proxy of the test's own, on 127.0.0.1 port 0: it forwards every request to an upstream HTTP server with
its path unchanged (as a proxy that serves taskservice under /tasks/ does with --http-path-prefix), streaming the
answers back (Server-Sent Events, followed logs). In a thread of its own, for sync tests."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import aiohttp
from aiohttp import web

# Headers that describe one hop, not the message: not forwarded. Host is, as proxies forward it for the server's
# same-origin checks (a page's Origin names the proxy).
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade", "content-encoding"}


class PathProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = 0
        self.requests: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="test-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> PathProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the proxy did not start")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            app = web.Application()

            async def forward(request: web.Request) -> web.StreamResponse:
                return await self._forward(session, request)

            app.router.add_route("*", "/{tail:.*}", forward)
            runner = web.AppRunner(app, handler_cancellation=True)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self._ready.set()
            await self._stop.wait()
            await runner.cleanup()

    async def _forward(self, session: aiohttp.ClientSession, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        body: Any = await request.read() if request.can_read_body else None
        async with session.request(request.method, self.upstream + request.path_qs, headers=headers, data=body,
                                   allow_redirects=False) as upstream:  # fmt: skip
            passed = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP}
            response = web.StreamResponse(status=upstream.status, headers=passed)
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
