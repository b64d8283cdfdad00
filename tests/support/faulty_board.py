"""A real SQLite board whose writes fail or wait on the test's word: storage faults injected under the lifecycle.

The board is the server's own (`SQLiteBoard`, the lifecycle in SQL over a real file); only the dialect's
statements that write are watched. A refused statement raises SQLite's own "database or disk is full" inside the
writer's transaction, so the whole transaction rolls back and the writer handles it as it would a real full disk.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from taskservice.core.board.sql.queries import Queries
from taskservice.core.board.sqlite.board import SQLiteBoard

DISK_FULL = "database or disk is full"

# The statements of the dialect that only read: never refused.
READS = frozenset({"tasks", "list", "changed_since", "count_pending", "schedules", "due_schedules", "stops_for",
                   "retryable_after"})  # fmt: skip


class Write(NamedTuple):
    """One task's part of a write statement: the statement's name, the task, and the state it writes ('' if none)."""

    kind: str
    task_id: str
    state: str


def _describe(kind: str, args: tuple[Any, ...]) -> list[Write]:
    """What a write statement of the dialect (sqlite/queries.py) is about to write, task by task."""
    if kind == "insert":
        tasks, births = args[0], args[1]
        return [Write(kind, t.task_id, births[t.task_id][0]) for t in tasks]
    if kind == "finish":
        return [Write(kind, claim.task_id, final.state.value) for claim, final in args[0]]
    if kind == "save_progress":
        return [Write("progress", claim.task_id, "") for claim, _, _ in args[0]]
    if kind == "start":
        return [Write(kind, args[0].task_id, "RUNNING")]
    if kind == "revoke_pending":
        return [Write(kind, args[0], "REVOKED")]
    if kind in ("mark_stopping", "retry_at"):
        return [Write(kind, args[0].task_id, "STOPPING" if kind == "mark_stopping" else "PENDING")]
    if kind == "flag_stop":
        return [Write(kind, args[0], "")]
    return [Write(kind, "", "")]


class _WatchedQueries:
    """The dialect's statements, each write first shown to `check`, which may refuse it."""

    def __init__(self, inner: Queries, check: Callable[[list[Write]], None]) -> None:
        self._inner = inner
        self._check = check

    def __getattr__(self, name: str) -> Any:
        statement = getattr(self._inner, name)
        if name in READS or not callable(statement):
            return statement

        def watched(cur: Any, *args: Any, **kwargs: Any) -> Any:
            self._check(_describe(name, args))
            return statement(cur, *args, **kwargs)

        return watched


class FaultyBoard(SQLiteBoard):
    """SQLite in SQL, except that writes fail like a full disk while `full` is set or `refuse(writes)` says so,
    and wait while `pause()` holds them (a disk slow to commit)."""

    def __init__(self, path: Path, **options: Any) -> None:
        super().__init__(path, **options)
        self.full = threading.Event()
        self.refuse: Callable[[Sequence[Write]], bool] | None = None
        self._lock = threading.Lock()
        self.refused: list[Write] = []  # every write refused so far
        self._open = threading.Event()
        self._open.set()
        self.waiting = threading.Event()  # set once a write waits behind pause()
        self._q = _WatchedQueries(self._q, self._check)  # type: ignore[assignment]
        # The writer's session: an empty transaction (the writer's probe while unhealthy) fails too while full.
        session = self._writer._session
        transaction = session.transaction

        def faulty_transaction(ops: list[Any], hints: list[str]) -> list[Any]:
            if not self._open.is_set():
                self.waiting.set()
                self._open.wait(30)
            if self.full.is_set() and not ops:
                raise sqlite3.OperationalError(DISK_FULL)
            return transaction(ops, hints)

        session.transaction = faulty_transaction  # type: ignore[method-assign]

    def _check(self, writes: list[Write]) -> None:
        if self.full.is_set() or (self.refuse is not None and self.refuse(writes)):
            with self._lock:
                self.refused.extend(writes)
            raise sqlite3.OperationalError(DISK_FULL)

    def was_refused(self, kind: str, task_id: str, state: str = "") -> bool:
        with self._lock:
            return any(
                w.kind == kind and w.task_id == task_id and (not state or w.state == state) for w in self.refused
            )

    def state_of(self, task_id: str) -> str | None:
        task = self.get(task_id)
        return task.state.value if task is not None else None

    def pause(self) -> None:
        self.waiting.clear()
        self._open.clear()

    def resume(self) -> None:
        self._open.set()
