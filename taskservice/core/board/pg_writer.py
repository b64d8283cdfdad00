"""Group commit on PostgreSQL: one thread runs every operation queued meanwhile in one transaction.

An operation is a function of a cursor (its statements) and a callback told its result once the transaction
committed, or the error. At most one NOTIFY per transaction, and only when an operation asked for one: a hint that
work is there or a stop was asked, never task data (a NOTIFY takes a global lock at commit; one per task would
cap the whole cluster at a few hundred tasks a second). One failing operation does not fail the others of its
transaction: they are run again one by one. While the database refuses work, the writer reconnects every
second and says so through `health`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from taskservice.core.board.pg_schema import CHANNEL
from taskservice.core.errors import StoreUnavailable
from taskservice.core.throttle import ThrottledLog
from taskservice.core.write_health import WriteHealth

log = logging.getLogger(__name__)

# Most operations one transaction carries.
MAX_BATCH = 512
RECONNECT_SECONDS = 1.0

Op = Callable[[psycopg.Cursor[Any]], Any]
Told = Callable[[Any, BaseException | None], None]


@dataclass(slots=True)
class _Queued:
    op: Op
    then: Told
    notify: str  # "" or the hint to send once committed ("work", "stop")


class PgWriter:
    def __init__(self, connect: Callable[[], psycopg.Connection[Any]]) -> None:
        self._connect = connect
        self.health = WriteHealth()
        self._conn: psycopg.Connection[Any] | None = None
        self._cond = threading.Condition()
        self._queue: deque[_Queued] = deque()
        self._closing = False
        self.commits = 0
        self._failures = ThrottledLog(log)
        # After a failed connection, batches fail at once until this monotonic time (no wait per caller).
        self._retry_at = 0.0
        self._thread = threading.Thread(target=self._run, name="taskservice-pg-writer", daemon=True)
        self._thread.start()

    def submit(self, op: Op, then: Told, *, notify: str = "") -> None:
        """Run `op` in the next transaction; `then(result, error)` on this writer's thread once it committed."""
        with self._cond:
            if not self._closing:
                self._queue.append(_Queued(op, then, notify))
                self._cond.notify()
                return
        closed = StoreUnavailable("the task database connection is closed")
        threading.Thread(target=_tell, args=(then, None, closed), daemon=True).start()

    def call(self, op: Op, *, notify: str = "") -> Any:
        """submit() and wait for the result (raises the error)."""
        done = threading.Event()
        outcome: list[Any] = [None, None]

        def told(result: Any, error: BaseException | None) -> None:
            outcome[0], outcome[1] = result, error
            done.set()

        self.submit(op, told, notify=notify)
        done.wait()
        if outcome[1] is not None:
            raise outcome[1]
        return outcome[0]

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    # While the database is away, an idle writer tries again every so often: health says
                    # NOT_SERVING until a transaction succeeds, and must not wait for the next Submit to find out.
                    if not self._cond.wait(None if self.healthy else RECONNECT_SECONDS):
                        break
                if not self._queue and self._closing:
                    return
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), MAX_BATCH))]
            if batch:
                self._commit(batch)
            else:
                self._probe()

    def _probe(self) -> None:
        try:
            self._transaction([])
        except psycopg.Error as exc:
            if not isinstance(exc, _NotYet):
                self._lost(exc)
            return
        self.health.set(True)

    def _commit(self, batch: list[_Queued]) -> None:
        try:
            results = self._transaction(batch)
        except _NotYet as exc:  # failed a moment ago: callers are told at once, without another try
            self._fail(batch, exc)
            return
        except psycopg.OperationalError as exc:  # the connection: the operations never ran
            self._lost(exc)
            self._fail(batch, exc)
            return
        except psycopg.Error as exc:
            if len(batch) > 1:  # one bad operation: run them alone, so that only it fails
                for item in batch:
                    self._commit([item])
                return
            self._fail(batch, exc)
            return
        self.commits += 1
        self.health.set(True)
        for item, result in zip(batch, results, strict=True):
            _tell(item.then, result, None)

    def _transaction(self, batch: list[_Queued]) -> list[Any]:
        conn = self._connection()
        results = []
        with conn.transaction(), conn.cursor() as cur:
            for item in batch:
                results.append(item.op(cur))
            hints = sorted({item.notify for item in batch if item.notify})
            if hints:
                cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, ",".join(hints)))
        return results

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            if time.monotonic() < self._retry_at:
                raise _NotYet("the task database could not be reached a moment ago")
            self._conn = self._connect()
        return self._conn

    def _lost(self, exc: BaseException) -> None:
        self._failures.log("the task database cannot be reached: %s", exc)
        self.health.set(False)
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None
        self._retry_at = time.monotonic() + RECONNECT_SECONDS

    def _fail(self, batch: list[_Queued], exc: BaseException) -> None:
        error = StoreUnavailable(f"the task database could not be written: {exc}".strip())
        for item in batch:
            _tell(item.then, None, error)

    @property
    def healthy(self) -> bool:
        return self.health.healthy

    def close(self) -> None:
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout=10)
        if self._conn is not None and not self._conn.closed:
            self._conn.close()


class _NotYet(psycopg.OperationalError):
    """The connection failed less than RECONNECT_SECONDS ago: not tried again yet."""


def _tell(then: Told, result: Any, error: BaseException | None) -> None:
    try:
        then(result, error)
    except Exception:
        log.exception("a database write callback failed")
