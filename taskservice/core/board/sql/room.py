"""The queue's room (--max-queue, --max-queue-bytes): how many tasks wait and the bytes of their args and labels.

A Submit takes its room inside its own transaction, on the writer's thread: the writer runs one operation at a
time, so two Submits in flight cannot both take the last place (as they could if each looked at the count before
queueing its insert). A Submit that fails gives its room back; claims and revocations give theirs back once
committed. The queue is counted again in SQL at most once a second, inside a transaction of the writer, so the
count replaces the running one at a point where both agree.

Exact for a board only this server writes. On a shared one (PostgreSQL, the engine processes of `--procs`) each
server knows what it did and what the last count found: the room is approximate by what the others did since.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from taskservice.core.board.answers import queue_bytes_full, queue_full, size_of
from taskservice.core.board.base import Answer, NewTask
from taskservice.core.board.sql.queries import Cursor
from taskservice.core.board.sql.writer import GroupWriter

Told = tuple[int, Answer]  # an answer to the Submit's task at that index

# The queue is counted again in SQL at most this often.
QUEUE_COUNT_SECONDS = 1.0


class QueueRoom:
    def __init__(
        self,
        writer: GroupWriter,
        count_pending: Callable[[Cursor], tuple[int, int]],
        *,
        max_queue: int,
        max_queue_bytes: int,
    ) -> None:
        self._writer = writer
        self._count_pending = count_pending
        self.max_queue = max_queue
        self.max_queue_bytes = max_queue_bytes
        self._lock = threading.Lock()
        self._queued = (0, 0, 0.0)  # (count, bytes of args and labels, monotonic time counted)
        self._counting = False  # a count is queued on the writer

    def size(self) -> tuple[int, int]:
        """The queue's length and bytes as last known; never waits for the database (called on the event loop).
        A count older than QUEUE_COUNT_SECONDS is made again in the writer's next transaction."""
        with self._lock:
            count, size, counted_at = self._queued
            stale = time.monotonic() - counted_at >= QUEUE_COUNT_SECONDS and not self._counting
            self._counting |= stale
        if stale:
            self._writer.submit(self._recount, self._recounted)
        return count, size

    def take(
        self, tasks: Sequence[NewTask], held: list[int]
    ) -> tuple[list[tuple[int, NewTask]], list[tuple[int, Answer]]]:
        """Of a Submit's `tasks` (inside its transaction), those the queue has room for, by index, and the refusals
        of the others. The room taken is added to the count and to `held` ([count, bytes]): what a run of the same
        Submit held before is given back first, since a failed transaction may be run again alone."""
        self.add(-held[0], -held[1])
        queued, queued_bytes = self.size()
        room = max(0, self.max_queue - queued)
        admitted: list[tuple[int, NewTask]] = []
        refused: list[Told] = []
        taken_bytes = 0
        for i, new in enumerate(tasks):
            size = size_of(new)
            if len(admitted) >= room:
                refused.append((i, queue_full(queued, self.max_queue)))
            elif queued_bytes + taken_bytes + size > self.max_queue_bytes:
                refused.append((i, queue_bytes_full(queued_bytes + taken_bytes, size, self.max_queue_bytes)))
            else:
                admitted.append((i, new))
                taken_bytes += size
        held[:] = [len(admitted), taken_bytes]
        self.add(len(admitted), taken_bytes)
        return admitted, refused

    def add(self, delta: int, size: int = 0) -> None:
        with self._lock:
            count, counted_bytes, counted_at = self._queued
            self._queued = (max(0, count + delta), max(0, counted_bytes + size), counted_at)

    def _recount(self, cur: Cursor) -> None:
        counted = self._count_pending(cur)
        with self._lock:
            self._queued = (*counted, time.monotonic())

    def _recounted(self, _: object, error: BaseException | None) -> None:
        with self._lock:
            self._counting = False
            if error is not None:  # counted again at the next look
                self._queued = (*self._queued[:2], 0.0)
