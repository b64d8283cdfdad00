"""Hands work from other threads to the event loop with one loop callback per burst, not one per item."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class LoopWaker:
    """Collects callbacks from any thread and runs them all on the loop in one call_soon_threadsafe.

    With 1,000 watchers of busy tasks, or 64 Submits answered by one commit, a call_soon_threadsafe each
    would write to the loop's self-pipe (and wake the loop) once per item; this does it once per burst.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: list[tuple[Callable[..., None], tuple[Any, ...]]] = []
        self._scheduled = False

    def call(self, callback: Callable[..., None], *args: Any) -> None:
        """Run callback(*args) on the loop soon; callable from any thread."""
        with self._lock:
            self._pending.append((callback, args))
            if self._scheduled:
                return
            self._scheduled = True
        # A closed loop means the server is gone and nobody waits any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._run)

    def wake(self, event: asyncio.Event) -> None:
        """Set `event` on the loop soon; callable from any thread."""
        self.call(event.set)

    def wrap(self, source: Future[T]) -> asyncio.Future[T]:
        """An asyncio Future with the outcome of `source`, like asyncio.wrap_future but woken in bursts.

        Cancelling it (an RPC whose client left) does not cancel `source`.
        """
        target: asyncio.Future[T] = self._loop.create_future()
        source.add_done_callback(lambda done: self.call(_copy_outcome, done, target))
        return target

    def _run(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
            self._scheduled = False
        for callback, args in pending:
            callback(*args)


def _copy_outcome(source: Future[T], target: asyncio.Future[T]) -> None:
    if target.done():  # cancelled: nobody waits
        return
    if source.cancelled():
        target.cancel()
        return
    error = source.exception()
    if error is not None:
        target.set_exception(error)
    else:
        target.set_result(source.result())
