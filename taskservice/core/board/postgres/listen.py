"""One listening connection per node: NOTIFY hints (work is there, a stop was asked) passed to listeners.

A hint carries no task data and may be lost (the connection drops, the node was busy): the engine polls about
every second besides, and after a reconnect every listener is told at once, to look for what it may have missed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg

from taskservice.core.board.postgres.schema import CHANNEL
from taskservice.core.engine.throttle import ThrottledLog

log = logging.getLogger(__name__)

# How long one wait for notifications lasts: how quickly close() is seen.
WAIT_SECONDS = 0.5
RECONNECT_SECONDS = 1.0


class Listener:
    def __init__(self, connect: Callable[[], psycopg.Connection[Any]]) -> None:
        self._connect = connect
        self._listeners: dict[str, list[Callable[[], None]]] = {}
        self._closing = threading.Event()
        self._failures = ThrottledLog(log)
        self._thread = threading.Thread(target=self._run, name="taskservice-pg-listen", daemon=True)
        self._thread.start()

    def on(self, hint: str, listener: Callable[[], None]) -> None:
        self._listeners.setdefault(hint, []).append(listener)

    def _tell(self, hints: set[str]) -> None:
        for hint in hints:
            for listener in self._listeners.get(hint, []):
                try:
                    listener()
                except Exception:
                    log.exception("a %s listener failed", hint)

    def _run(self) -> None:
        while not self._closing.is_set():
            try:
                with self._connect() as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._tell(set(self._listeners))  # reconnected: look for what came meanwhile
                    while not self._closing.is_set():
                        # Each hint is passed on as it arrives (the wait ends after WAIT_SECONDS to see close()).
                        for notice in conn.notifies(timeout=WAIT_SECONDS):
                            self._tell(set(notice.payload.split(",")))
                            if self._closing.is_set():
                                break
            except psycopg.Error as exc:
                self._failures.log("listening for task hints failed (the poll goes on): %s", exc)
                self._closing.wait(RECONNECT_SECONDS)

    def close(self) -> None:
        self._closing.set()
        self._thread.join(timeout=WAIT_SECONDS * 4)
