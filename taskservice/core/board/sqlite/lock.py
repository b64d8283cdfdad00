"""One server per SQLite file: `<db>.lock` beside it, held with flock for as long as the server has the file open
(the supervisor of `--procs`, or the one server), released by the kernel when the process dies, so a crash never
leaves it locked. A second server is refused at start; servers that share work share a PostgreSQL database.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from taskservice.core.model.errors import StoreOpenError


class StoreInUse(StoreOpenError):
    """Another process has the database file open as its board."""


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
