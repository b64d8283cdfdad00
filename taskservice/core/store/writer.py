"""Group commit: one thread applies every write queued meanwhile in one transaction (one fsync).

Concurrent Submits and state changes each get told (a callback, or a Future) when their batch is durable,
so many acknowledgements share one commit. A task saved twice in one batch (RUNNING, then its end) is
written once, in its latest state. Progress is not queued per report: the writer asks the manager for
the latest progress of every task that changed, once per flush interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from taskservice.core.errors import StoreUnavailable
from taskservice.core.store.base import SaveTask, TaskStore, Write
from taskservice.core.throttle import ThrottledLog
from taskservice.core.write_health import WriteHealth

log = logging.getLogger(__name__)

# Most writes one transaction carries; bounds the latency of the first write in a burst.
MAX_BATCH = 2048
# How often buffered progress reaches the database.
PROGRESS_FLUSH_INTERVAL = 0.5

ProgressSource = Callable[[], Sequence[Write]]
# Told how a write ended, on the writer thread: None once it is durable, or the error. Must be quick.
Done = Callable[[BaseException | None], None]


def ignore(error: BaseException | None) -> None:
    """For writes nobody waits on: a failure is logged by the writer."""


def coalesced(writes: Sequence[Write]) -> list[Write]:
    """The writes with every SaveTask but the last of each task left out: a SaveTask writes the whole row."""
    last: dict[str, int] = {}
    saves = 0
    for index, write in enumerate(writes):
        if type(write) is SaveTask:
            last[write.task.task_id] = index
            saves += 1
    if len(last) == saves:
        return list(writes)
    return [w for i, w in enumerate(writes) if type(w) is not SaveTask or last[w.task.task_id] == i]


class StoreWriter:
    """Owns all writes to a TaskStore. Thread-safe; close() flushes and is safe to call twice."""

    def __init__(
        self,
        store: TaskStore,
        *,
        progress_source: ProgressSource | None = None,
        progress_interval: float = PROGRESS_FLUSH_INTERVAL,
        after_commit: Callable[[], None] | None = None,
    ) -> None:
        """`after_commit` runs on the writer thread after each commit's callbacks were all told, so that work
        they leave (showing many ends at once) is done once per commit rather than once per write.

        `health` tells, on the writer thread, when the store stops taking writes and when a write succeeds
        again."""
        self._store = store
        self.health = WriteHealth()
        self._failures = ThrottledLog(log)
        self._progress_source = progress_source
        self._progress_interval = progress_interval
        self._after_commit = after_commit
        self._cond = threading.Condition()
        self._queue: deque[tuple[Sequence[Write], Done]] = deque()
        self._closing = False
        self.commits = 0
        self._thread = threading.Thread(target=self._run, name="taskservice-store-writer", daemon=True)
        self._thread.start()

    def write(self, *writes: Write, then: Done = ignore) -> None:
        """Queue writes that must land together; `then` is called on the writer thread once they are durable
        (with None) or failed (with the error)."""
        with self._cond:
            if not self._closing:
                self._queue.append((writes, then))
                self._cond.notify()
                return
        # Never inline: the caller may hold a lock that `then` takes (a Stop after close() hung on exactly that).
        closed = threading.Thread(target=self._tell, args=(then, StoreUnavailable("the store is closed")), daemon=True)
        closed.start()

    def commit(self, *writes: Write) -> Future[None]:
        """write(), with a Future that resolves once the writes are durable."""
        future: Future[None] = Future()

        def settle(error: BaseException | None) -> None:
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

        self.write(*writes, then=settle)
        return future

    def _take_batch(self) -> list[tuple[Sequence[Write], Done]]:
        batch: list[tuple[Sequence[Write], Done]] = []
        size = 0
        while self._queue and (not batch or size + len(self._queue[0][0]) <= MAX_BATCH):
            item = self._queue.popleft()
            batch.append(item)
            size += len(item[0])
        return batch

    def _run(self) -> None:
        next_progress = time.monotonic() + self._progress_interval
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    timeout = next_progress - time.monotonic()
                    if timeout <= 0:
                        break
                    self._cond.wait(timeout)
                batch = self._take_batch()
                closing = self._closing and not self._queue
            progress: list[Write] = []
            if time.monotonic() >= next_progress or closing:
                next_progress = time.monotonic() + self._progress_interval
                if self._progress_source is not None:
                    progress.extend(self._progress_source())
            if not batch and not progress and not self.healthy and not closing:
                self._probe()  # idle while failing: once per progress interval
            if batch or progress:
                self._commit(progress, batch)
                if self._after_commit is not None:
                    try:
                        self._after_commit()
                    except Exception:
                        log.exception("the store writer's after-commit call failed")
            if closing:
                return

    def _commit(self, progress: list[Write], batch: list[tuple[Sequence[Write], Done]]) -> None:
        writes = [*progress, *(write for item_writes, _ in batch for write in item_writes)]
        if not writes:
            # Only callbacks that wait their turn behind earlier writes: nothing reached the store, so this is no
            # commit, and says nothing of its health (during an outage it must not look like a write succeeded).
            for _, then in batch:
                self._tell(then, None)
            return
        try:
            self._store.apply(coalesced(writes))
        except Exception as exc:
            self._failures.log("store write of %d changes failed: %s", len(writes), exc)
            self.health.set(False)
            if len(batch) > 1 or (progress and batch):
                # One bad write must not fail the others that shared its transaction: retry them alone.
                # Progress is dropped here; the next report of each task brings it back.
                for item in batch:
                    self._commit([], [item])
                return
            error = StoreUnavailable(f"the task database could not be written: {exc}")
            for _, then in batch:
                self._tell(then, error)
            return
        self.commits += 1
        self.health.set(True)
        for _, then in batch:
            self._tell(then, None)

    def _probe(self) -> None:
        try:
            self._store.probe_write()
        except Exception as exc:
            self._failures.log("the task database still cannot be written: %s", exc)
            return
        self.health.set(True)

    @property
    def healthy(self) -> bool:
        return self.health.healthy

    @staticmethod
    def _tell(then: Done, error: BaseException | None) -> None:
        try:
            then(error)
        except Exception:
            log.exception("a store write callback failed")

    def close(self) -> None:
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify()
        self._thread.join()
