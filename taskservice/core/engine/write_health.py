"""Whether the task database takes writes, and who hears when that changes.

Both writers (SQLite's and PostgreSQL's) keep one: the writer thread sets it, the board passes its listeners on
to it, and the server's health service is one of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger("taskservice.store")


class WriteHealth:
    def __init__(self) -> None:
        self.healthy = True
        self._listeners: list[Callable[[bool], None]] = []

    def listen(self, listener: Callable[[bool], None]) -> None:
        self._listeners.append(listener)

    def set(self, healthy: bool) -> None:
        """Called on the writer thread; listeners hear only changes, and one that fails harms nothing else."""
        if healthy == self.healthy:
            return
        self.healthy = healthy
        if healthy:
            log.warning("the task database can be written again")
        for listener in self._listeners:
            try:
                listener(healthy)
            except Exception:
                log.exception("a database health listener failed")
