"""Wakes asyncio consumers from worker threads with one loop callback per burst, not one per event."""

from __future__ import annotations

import asyncio
import contextlib
import threading


class LoopWaker:
    """Collects asyncio.Events to set and sets them all in one call_soon_threadsafe.

    With 1,000 watchers of busy tasks, waking each one with its own call_soon_threadsafe would write
    to the loop's self-pipe 1,000 times per burst; this writes once.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: list[asyncio.Event] = []
        self._scheduled = False

    def wake(self, event: asyncio.Event) -> None:
        """Set `event` on the loop soon; callable from any thread."""
        with self._lock:
            self._pending.append(event)
            if self._scheduled:
                return
            self._scheduled = True
        # A closed loop means the server is gone and nobody waits any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._run)

    def _run(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
            self._scheduled = False
        for event in pending:
            event.set()
