"""A bare grpc.aio server: the most a Python gRPC server can do with the same messages, no task service.

Unary `/bench.Echo/Echo` returns the request bytes. `/bench.Echo/EchoAfterThread` does too, but only once a
thread of its own has seen the request, in batches, as a durable Submit waits for the store's writer thread:
the least any server pays whose answers wait for work off the event loop, before doing that work.
`/bench.Echo/Ticks` streams `count` copies of a payload
at `hz` per second, each led by the time it was due (request: JSON {"count", "hz", "size", "group"}), like a
task reporting progress. Streams of one `group` tick together, from the time the first of them arrived, as the
watchers of one task get each of its events at the same moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import struct
import sys
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import Future
from pathlib import Path

import grpc

from taskservice.server.app import server_options
from taskservice.server.settings import Settings
from taskservice.server.waker import LoopWaker


async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


class _BatchThread:
    """A thread that takes whatever requests are waiting and lets them all go, woken per batch."""

    def __init__(self, waker: LoopWaker) -> None:
        self._waker = waker
        self._waiting: queue.SimpleQueue[Future[None]] = queue.SimpleQueue()
        threading.Thread(target=self._run, name="bench-batch", daemon=True).start()

    def submit(self) -> asyncio.Future[None]:
        done: Future[None] = Future()
        self._waiting.put(done)
        return self._waker.wrap(done)

    def _run(self) -> None:
        while True:
            batch = [self._waiting.get()]
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(self._waiting.get_nowait())
            for done in batch:
                done.set_result(None)


_batches: _BatchThread | None = None


async def echo_after_thread(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    assert _batches is not None
    await _batches.submit()
    return request


_group_starts: dict[str, float] = {}


async def ticks(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    spec = json.loads(request)
    padding = b"x" * max(0, spec["size"] - 8)
    interval = 1.0 / spec["hz"]
    loop = asyncio.get_running_loop()
    start = _group_starts.setdefault(str(spec.get("group", id(context))), loop.time())
    wall_start = time.time() - (loop.time() - start)
    for i in range(spec["count"]):
        await asyncio.sleep(max(0.0, start + i * interval - loop.time()))
        # The time the message was due leads it, so the client measures delivery latency as it does for events:
        # an event carries the time its task reported progress, and the server's delay in sending it counts.
        # (Stamping the moment of sending would leave out this server's own delay in a burst of 1,000.)
        yield struct.pack("<d", wall_start + i * interval) + padding


async def main(port_file: str) -> None:
    global _batches
    _batches = _BatchThread(LoopWaker(asyncio.get_running_loop()))
    server = grpc.aio.server(options=server_options(Settings()))
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo",
        {
            "Echo": grpc.unary_unary_rpc_method_handler(echo),
            "EchoAfterThread": grpc.unary_unary_rpc_method_handler(echo_after_thread),
            "Ticks": grpc.unary_stream_rpc_method_handler(ticks),
        },
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    Path(port_file).write_text(f"{port}\n")
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
