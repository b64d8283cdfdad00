"""When the earliest delayed task this server wrote (a retry's backoff, a Submit's not_before) becomes claimable:
so that an idle worker wakes for it, not at its next poll. A hint only: kept in memory, never read from the
database. Too early costs one empty claim; a due it does not know of (another server's, or a later one while an
earlier is pending) waits for the poll, as before.
"""

from __future__ import annotations

import threading


class SoonestDue:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._due: float | None = None

    def add(self, due: float | None) -> None:
        if due is None:
            return
        with self._lock:
            if self._due is None or due < self._due:
                self._due = due

    def claimed_at(self, now: float) -> None:
        """A claim at `now` took whatever was due by then."""
        with self._lock:
            if self._due is not None and self._due <= now:
                self._due = None

    def get(self) -> float | None:
        return self._due
