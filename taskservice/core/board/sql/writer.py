"""Group commit: one thread runs every operation queued meanwhile in one transaction, on either dialect.

An operation is a function of a cursor (its statements) and a callback told its result once the transaction
committed, or the error. An operation may ask for a hint (`work`, `stop`): the dialect's session sends at most
one per transaction, naming every hint asked (on PostgreSQL a NOTIFY at commit, which takes a global lock, so one
per task would cap the whole cluster at a few hundred tasks a second). One failing operation does not fail the
others of its transaction: they are run again one by one. While the database refuses work, the writer tries again
every second and says so through `health`: meanwhile a caller who waits (a Submit, a Stop) is told at once, and a
patient operation (the server's own: an end, a requeue, progress) waits for that next try, so that each try
carries every write the server has to make.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from taskservice.core.engine.throttle import ThrottledLog
from taskservice.core.engine.write_health import WriteHealth
from taskservice.core.model.errors import StoreUnavailable

log = logging.getLogger(__name__)

# Most operations one transaction carries.
MAX_BATCH = 512
RECONNECT_SECONDS = 1.0

Op = Callable[[Any], Any]
Told = Callable[[Any, BaseException | None], None]


class Session(Protocol):
    """A dialect's writing connection: what the writer needs of it."""

    # Errors of the connection or the storage as a whole (the operations never ran): health turns false.
    lost_errors: tuple[type[BaseException], ...]
    # Errors of one operation (a constraint, a bad value): that operation fails alone.
    op_errors: tuple[type[BaseException], ...]

    def transaction(self, ops: list[Op], hints: list[str]) -> list[Any]:
        """Run `ops` in one transaction (connecting first when needed) and send `hints` with its commit."""

    def reset(self) -> None:
        """The connection failed: drop it; the next transaction connects again."""

    def close(self) -> None: ...


@dataclass(slots=True)
class _Queued:
    op: Op
    then: Told
    hint: str  # "" or the hint to send once committed
    patient: bool  # waits for the next try after a failure rather than failing at once


class GroupWriter:
    def __init__(self, session: Session, *, name: str) -> None:
        self._session = session
        self.health = WriteHealth()
        self._cond = threading.Condition()
        self._queue: deque[_Queued] = deque()
        # Patient operations that came while the database was failing: run with the next try (at _retry_at).
        self._patient: list[_Queued] = []
        self._closing = False
        self.commits = 0
        self._failures = ThrottledLog(log)
        # After a failed connection, batches fail at once until this monotonic time (no wait per caller), with the
        # reason it failed: a person needs "disk is full", not "failed a moment ago".
        self._retry_at = 0.0
        self._last_failure = ""
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, op: Op, then: Told, *, notify: str = "", patient: bool = False) -> None:
        """Run `op` in the next transaction; `then(result, error)` on this writer's thread once it committed. A
        `patient` op is not failed at once while the database is failing: it waits for the next try."""
        with self._cond:
            if not self._closing:
                self._queue.append(_Queued(op, then, notify, patient))
                self._cond.notify()
                return
        closed = StoreUnavailable("the task database connection is closed")
        threading.Thread(target=_tell, args=(then, None, closed), daemon=True).start()

    def call(self, op: Op, *, notify: str = "") -> Any:
        """submit() and wait for the result (raises the error). On the writer's own thread (a callback that asks
        the board for more), `op` runs at once in a transaction of its own: the connection is free there."""
        if threading.current_thread() is self._thread:
            return self._session.transaction([op], [notify] if notify else [])[0]
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
                while not self._queue and not self._closing and not self._patient_due():
                    # While the database is away, an idle writer tries again every so often: health says
                    # NOT_SERVING until a transaction succeeds, and must not wait for the next Submit to find out.
                    # Patient ops waiting are that try, when it is due.
                    wait = None if self.healthy else RECONNECT_SECONDS
                    if self._patient:
                        wait = max(0.0, self._retry_at - time.monotonic())
                    if not self._cond.wait(wait) and not self._patient:
                        break
                closed = not self._queue and self._closing
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), MAX_BATCH))]
                if closed or self._patient_due():
                    batch, self._patient = self._patient + batch, []
            if closed:
                self._fail(batch, StoreUnavailable("the task database connection is closed"))
                return
            if batch:
                self._commit(batch)
            else:
                self._probe()

    def _patient_due(self) -> bool:
        return bool(self._patient) and time.monotonic() >= self._retry_at

    def _probe(self) -> None:
        try:
            self._transaction([])
        except _NotYet:
            return
        except (*self._session.lost_errors, *self._session.op_errors) as exc:
            self._lost(exc)
            return
        self.health.set(True)

    def _commit(self, batch: list[_Queued]) -> None:
        try:
            results = self._transaction(batch)
        except _NotYet as exc:  # failed a moment ago: callers are told at once; patient ops wait for the next try
            self._fail([item for item in batch if not item.patient], exc)
            with self._cond:
                self._patient.extend(item for item in batch if item.patient)
            return
        except self._session.lost_errors as exc:  # the connection or the storage: the operations never ran
            self._lost(exc)
            self._fail(batch, exc)
            return
        except self._session.op_errors as exc:
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
        if time.monotonic() < self._retry_at:
            raise _NotYet(f"it failed a moment ago ({self._last_failure})")
        hints = sorted({item.hint for item in batch if item.hint})
        return self._session.transaction([item.op for item in batch], hints)

    def _lost(self, exc: BaseException) -> None:
        self._failures.log("the task database cannot be written: %s", exc)
        self.health.set(False)
        self._session.reset()
        self._retry_at = time.monotonic() + RECONNECT_SECONDS
        self._last_failure = str(exc).strip() or type(exc).__name__

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
        self._session.close()


class _NotYet(Exception):
    """The connection failed less than RECONNECT_SECONDS ago: not tried again yet."""


def _tell(then: Told, result: Any, error: BaseException | None) -> None:
    try:
        then(result, error)
    except Exception:
        log.exception("a database write callback failed")
