"""A log line that repeats while a fault lasts, written at most once every few seconds with a count."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

# Long enough that a full disk does not flood the log, short enough that an operator sees it is still going on.
DEFAULT_INTERVAL = 5.0


class ThrottledLog:
    """Writes the first line at once, then at most one per `interval`, saying how many were held back."""

    def __init__(
        self,
        logger: logging.Logger,
        level: int = logging.ERROR,
        *,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._level = level
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._next = 0.0
        self._held = 0

    def log(self, message: str, *args: object) -> None:
        with self._lock:
            now = self._clock()
            if now < self._next:
                self._held += 1
                return
            held, self._held = self._held, 0
            self._next = now + self._interval
        if held:
            message += f" (and {held} more like it in the last {self._interval:g} s)"
        self._logger.log(self._level, message, *args)
