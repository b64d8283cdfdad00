"""The embedded default board: one SQLite file, owned by one server process at a time.

Two servers on one file would each trust their own memory of the queue (see local.py) and overwrite each other,
so the file is locked for as long as the board is open (flock on `<db>.lock` beside it, released by the kernel
when the process dies, so a crash never leaves it locked). A second server is refused at start. Servers that
share work share a PostgreSQL database instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from pathlib import Path

from taskservice.core.board.answers import DEFAULT_MAX_QUEUE_BYTES
from taskservice.core.board.local import LocalBoard
from taskservice.core.store.base import StoreOpenError
from taskservice.core.store.sqlite import SQLiteStore


class StoreInUse(StoreOpenError):
    """Another process has the database file open as its board."""


class SQLiteBoard(LocalBoard):
    def __init__(
        self, path: str | Path, *, max_queue: int = 100_000, max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES
    ) -> None:
        self.path = Path(path)
        self._lock_fd = lock_file(self.path)
        try:
            store = SQLiteStore(self.path)
        except BaseException:
            os.close(self._lock_fd)
            raise
        try:
            super().__init__(store, max_queue=max_queue, max_queue_bytes=max_queue_bytes)
        except BaseException as exc:
            store.close()
            os.close(self._lock_fd)
            if isinstance(exc, sqlite3.DatabaseError):  # damage where the unfinished tasks are read
                raise _unusable(self.path, exc) from exc
            raise
        try:
            # A file the server cannot write is refused now, not at the first Submit; after the reads above, so
            # that a damaged file is found before anything is written to it.
            store.probe_write()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise _unusable(self.path, exc) from exc

    def close(self) -> None:
        super().close()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = -1


def _unusable(path: Path, exc: sqlite3.DatabaseError) -> StoreOpenError:
    return StoreOpenError(
        f"{path} cannot be used ({exc}); restore it from a backup, make it writable, or point --db at another file"
    )


def lock_file(path: Path) -> int:
    """Hold `<path>.lock` exclusively; StoreInUse naming the holder when another process does."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StoreOpenError(
            f"cannot use {path}: its lock file {lock_path} cannot be made ({exc.strerror or exc}); the database's "
            "folder must be writable by the server (SQLite writes its journal there too)"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StoreInUse(
            f"{path} is in use by another taskservice server (pid {holder}); a database file serves one server at "
            "a time. Stop that server first, or give this one another --db"
        ) from None
    except OSError:
        os.close(fd)
        raise
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
