"""The streaming routes: a task's events as Server-Sent Events, and its log as bytes.

Events: one SSE event per WatchProgress event, its `id:` the event's sequence, `event:` "state" (a state change,
with the task) or "progress", `data:` the event as canonical JSON. A reconnecting EventSource sends Last-Event-ID,
which resumes like after_sequence. An error before the first event is an HTTP error; one after it (the server
shutting down) is an `event: error` with the status, and the stream ends. A comment line every
KEEPALIVE_SECONDS keeps proxies from closing an idle stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from taskservice.server.http.errors import error_dict, error_response, invalid
from taskservice.server.http.gateway import Gateway, RpcAbort
from taskservice.server.http.routes import Route, build_request
from taskservice.v1 import task_service_pb2 as pb

KEEPALIVE_SECONDS = 15.0


async def events(gateway: Gateway, route: Route, request: web.Request, task_id: str) -> web.StreamResponse:
    try:
        message = await build_request(route, request, task_id)
        assert isinstance(message, pb.WatchProgressRequest)
        last_event_id = request.headers.get("Last-Event-ID", "").strip()
        if last_event_id:
            if not (last_event_id.isascii() and last_event_id.isdigit()) or int(last_event_id) >= 2**64:
                raise invalid(f"Last-Event-ID must be an event's sequence, not {last_event_id[:40]!r}", "Last-Event-ID")
            message.after_sequence = int(last_event_id)
        stream = gateway.watch_sse(message)
        first = await anext(stream, None)  # errors of the request itself come before the first event
    except RpcAbort as abort:
        return error_response(abort)
    return await _serve_events(request, first, stream)


async def _serve_events(request: web.Request, first: bytes | None, stream: AsyncIterator[bytes]) -> web.StreamResponse:
    """The SSE response: `first`, then the rest of `stream` with keepalives; an error after the first event is an
    `event: error` (the server shutting down), and the stream ends."""
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    if first is None:  # resumed after the terminal event: nothing follows
        await stream.aclose()  # type: ignore[attr-defined]
        return response
    try:
        await response.write(first)
        async for event in _with_keepalives(stream, response):
            await response.write(event)
    except RpcAbort as abort:
        await response.write(f"event: error\ndata: {json.dumps(error_dict(abort))}\n\n".encode())
    except (ConnectionResetError, asyncio.CancelledError):
        pass  # the client went away: the watcher is detached as the stream closes
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    return response


async def _with_keepalives(stream: AsyncIterator[bytes], response: web.StreamResponse) -> AsyncIterator[bytes]:
    """The stream's events; while it is quiet, a comment line now and then."""
    pending: asyncio.Task[Any] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(stream))
            done, _ = await asyncio.wait({pending}, timeout=KEEPALIVE_SECONDS)
            if not done:
                await response.write(b": keepalive\n\n")
                continue
            try:
                event = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            yield event
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending


async def many_events(gateway: Gateway, route: Route, request: web.Request) -> web.StreamResponse:
    """GET /v1/events?taskIds=a,b,c (or the WatchTasks filters): the events of many tasks in one stream, WatchTasks
    over Server-Sent Events (a browser holds only a few connections per server, and a page of the dashboard follows
    up to a hundred tasks). Each event's data carries its taskId; the stream ends once every task has ended. A
    client that does not read gets each task's latest progress and every state change, as on the per-task stream."""
    try:
        message = await build_request(route, request, "")
        assert isinstance(message, pb.WatchTasksRequest)
        stream = gateway.watch_sse(message)
        first = await anext(stream, None)  # errors of the request itself come before the first event
    except RpcAbort as abort:
        return error_response(abort)
    return await _serve_events(request, first, stream)


async def logs(gateway: Gateway, route: Route, request: web.Request, task_id: str) -> web.StreamResponse:
    """The log's bytes from `offset`, as they are (text/plain); with follow=true, until the task ends."""
    try:
        message = await build_request(route, request, task_id)
        assert isinstance(message, pb.WatchLogsRequest)
        stream = gateway.logs(message)
        first = await anext(stream, None)
    except RpcAbort as abort:
        return error_response(abort)
    response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-cache"})
    if first is not None:
        response.headers["X-Log-Offset"] = str(first.offset)
    await response.prepare(request)
    try:
        if first is not None:
            await response.write(first.data)
            async for chunk in stream:
                await response.write(chunk.data)
    except (RpcAbort, ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    return response
