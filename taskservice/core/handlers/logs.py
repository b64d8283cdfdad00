"""Per-task log files: a command's stdout/stderr, and what Python handlers write with ctx.log().

Each task's log is capped. Past the cap the oldest bytes are dropped and a marker says how many; offsets
stay absolute (bytes since the task's first log byte), so a reader resuming at an offset never sees a
byte twice or out of order.

Logs share the disk with the task database, so they never take the last of it: a line that would leave less
than the reserve free (--min-free-space), or that cannot be written at all, is dropped, and the next line
that can be written is preceded by a marker saying how many bytes were lost. Logging never fails a task.
The whole folder has a cap too (--max-logs-size): past it, the logs of the oldest finished tasks go first.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from taskservice.core.engine.throttle import ThrottledLog

log = logging.getLogger(__name__)

# Per task; a chatty command keeps its last few megabytes.
DEFAULT_MAX_LOG_BYTES = 8 * 1024 * 1024
# What one read returns at most.
MAX_CHUNK_BYTES = 64 * 1024
# Free space is read again after this long (it is also counted down by what is written meanwhile).
FREE_SPACE_REFRESH_SECONDS = 0.25
# When the folder passes its cap, logs are removed until it is back under this share of the cap, so that
# removal (a scan of the folder) runs now and then rather than on every line.
PRUNE_TO_SHARE = 0.8


class Logs(Protocol):
    """Where task logs live: local files (TaskLogs), or a database every server reads (board/postgres/logs.py)."""

    def append(self, task_id: str, data: bytes) -> None: ...
    def read(self, task_id: str, offset: int, max_bytes: int = ...) -> LogChunk: ...
    def end(self, task_id: str) -> int: ...
    def finish(self, task_id: str) -> None: ...
    def protect(self, is_live: Callable[[str], bool]) -> None: ...
    def delete(self, task_ids: Sequence[str]) -> None: ...


@dataclass(frozen=True, slots=True)
class LogChunk:
    offset: int  # absolute offset of data[0]
    data: bytes
    end: int  # absolute offset just past the last byte written so far


class TaskLogs:
    """The log files of all tasks, in one folder. Thread-safe within the server process."""

    def __init__(
        self,
        directory: str | Path,
        *,
        max_bytes: int = DEFAULT_MAX_LOG_BYTES,
        min_free_bytes: int = 0,
        max_total_bytes: int = 0,
    ) -> None:
        """`min_free_bytes`: never leave less free on the folder's file system. `max_total_bytes`: the cap of
        the whole folder, 0 for none."""
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._directory_name = str(self.directory)
        self.max_bytes = max_bytes
        self.min_free_bytes = min_free_bytes
        self.max_total_bytes = max_total_bytes
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        # Bytes each task lost since its last written line, and why.
        self._dropped_since: dict[str, tuple[int, str]] = {}
        self._free = (0, 0.0)  # (bytes free, monotonic time read)
        self._total = self._measure_total() if max_total_bytes else 0
        self._total_lock = threading.Lock()
        self._is_live: Callable[[str], bool] = lambda task_id: False
        self._refusals = ThrottledLog(log, logging.WARNING)
        # The tasks that have files here: deleting a task that never logged (most, under a short retention) then
        # costs no system call, each of which lets go of the GIL and may wait long to get it back.
        self._with_files = self._tasks_with_files()

    def _tasks_with_files(self) -> set[str]:
        with os.scandir(self.directory) as entries:
            return {name.rpartition(".")[0] for name in (entry.name for entry in entries) if "." in name}

    def protect(self, is_live: Callable[[str], bool]) -> None:
        """Never remove the log of a task for which `is_live(task_id)` holds (it has not finished)."""
        self._is_live = is_live

    def _lock(self, task_id: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(task_id, threading.Lock())

    def _paths(self, task_id: str) -> tuple[Path, Path]:
        return self.directory / f"{task_id}.log", self.directory / f"{task_id}.dropped"

    @staticmethod
    def _dropped(path: Path) -> int:
        try:
            return int(path.read_text() or 0)
        except FileNotFoundError:
            return 0

    def append(self, task_id: str, data: bytes) -> None:
        """Add to a task's log; never raises (what cannot be written is counted and marked, see the module)."""
        if data:
            self._write(task_id, data)

    def finish(self, task_id: str) -> None:
        """The task ended: write the marker of what it lost at the end, if anything (best effort)."""
        if task_id in self._dropped_since:
            self._write(task_id, b"")
            self._dropped_since.pop(task_id, None)

    def _write(self, task_id: str, payload: bytes) -> None:
        log_path, dropped_path = self._paths(task_id)
        with self._lock(task_id):
            lost = self._dropped_since.get(task_id)
            marker = f"[taskservice: {lost[0]} log bytes dropped: {lost[1]}]\n".encode() if lost else b""
            data = marker + payload
            reason = self._no_room_for(len(data))
            if reason is None:
                try:
                    self._with_files.add(task_id)
                    with open(log_path, "ab") as out:
                        out.write(data)
                        size = out.tell()
                    if size > self.max_bytes:
                        self._drop_oldest(log_path, dropped_path, size)
                except OSError as exc:
                    reason = f"the log could not be written ({exc.strerror or exc})"
            if reason is not None:
                self._dropped_since[task_id] = ((lost[0] if lost else 0) + len(payload), reason)
                self._refusals.log("task %s: log lines dropped: %s", task_id, reason)
                return
            self._dropped_since.pop(task_id, None)
            self._free = (self._free[0] - len(data), self._free[1])
        self._count(len(data))

    def _no_room_for(self, size: int) -> str | None:
        """Why `size` more bytes may not be written now (the reserve), or None."""
        if not self.min_free_bytes:
            return None
        free, read_at = self._free
        now = time.monotonic()
        if now - read_at > FREE_SPACE_REFRESH_SECONDS:
            try:
                stats = os.statvfs(self.directory)
            except OSError as exc:
                return f"the log folder cannot be read ({exc.strerror or exc})"
            free = stats.f_bavail * stats.f_frsize
            self._free = (free, now)
        if free - size < self.min_free_bytes:
            return f"less than the {self.min_free_bytes // 2**20} MiB kept free (--min-free-space) is left on the disk"
        return None

    def _count(self, size: int) -> None:
        if not self.max_total_bytes:
            return
        with self._total_lock:
            self._total += size
            over = self._total > self.max_total_bytes
        if over:
            self._prune()

    def _measure_total(self) -> int:
        total = 0
        with os.scandir(self.directory) as entries:
            for entry in entries:
                try:
                    total += entry.stat(follow_symlinks=False).st_size
                except OSError:
                    continue
        return total

    def delete(self, task_ids: Sequence[str]) -> None:
        """Remove the logs of these tasks (deleted tasks); never raises.

        Called for thousands of tasks a second under a short retention, most of which never logged: those are
        skipped without a system call, the others unlinked by plain string paths (pathlib cost most of the time
        here). An ended task gets no new lines, so one without a lock has no writer to wait for."""
        for task_id in task_ids:
            with self._locks_lock:
                lock = self._locks.pop(task_id, None)
            self._dropped_since.pop(task_id, None)
            if task_id not in self._with_files:
                continue
            if lock is None:
                removed = self._remove(task_id)
            else:
                with lock:
                    removed = self._remove(task_id)
            if removed and self.max_total_bytes:
                with self._total_lock:
                    self._total -= removed

    def _remove(self, task_id: str) -> int:
        """Unlink a task's files; the bytes they held."""
        self._with_files.discard(task_id)
        removed = 0
        base = os.path.join(self._directory_name, task_id)
        for path in (f"{base}.log", f"{base}.dropped"):
            try:
                size = os.stat(path).st_size
                os.unlink(path)
            except OSError:
                continue
            removed += size
        return removed

    def _prune(self) -> None:
        """Remove the logs of finished tasks, oldest first, until the folder is back under its cap."""
        with self._total_lock:
            candidates = []
            with os.scandir(self.directory) as entries:
                for entry in entries:
                    task_id, dot, kind = entry.name.rpartition(".")
                    if dot and kind == "log" and not self._is_live(task_id):
                        try:
                            candidates.append((entry.stat().st_mtime, task_id))
                        except OSError:
                            continue
            self._total = self._measure_total()
            target = int(self.max_total_bytes * PRUNE_TO_SHARE)
            removed = 0
            for _, task_id in sorted(candidates):
                if self._total <= target:
                    break
                with self._lock(task_id):
                    self._total -= self._remove(task_id)
                removed += 1
        if removed:
            log.info("removed the logs of %d finished tasks: the log folder passed --max-logs-size", removed)

    def _drop_oldest(self, log_path: Path, dropped_path: Path, size: int) -> None:
        """Keep the newest half of the cap, behind a marker; the logical end offset does not move."""
        dropped_before = self._dropped(dropped_path)
        keep = self.max_bytes // 2
        with open(log_path, "rb") as log:
            log.seek(size - keep)
            tail = log.read()
        newline = tail.find(b"\n")
        if 0 <= newline < len(tail) - 1:
            tail = tail[newline + 1 :]  # start at a line boundary
        marker = f"[taskservice: {size - len(tail) + dropped_before} older log bytes dropped]\n".encode()
        replacement = log_path.with_name(log_path.name + ".tmp")
        replacement.write_bytes(marker + tail)
        dropped = dropped_before + size - len(tail) - len(marker)
        dropped_tmp = dropped_path.with_name(dropped_path.name + ".tmp")
        dropped_tmp.write_text(str(dropped))
        os.replace(dropped_tmp, dropped_path)
        os.replace(replacement, log_path)

    def read(self, task_id: str, offset: int, max_bytes: int = MAX_CHUNK_BYTES) -> LogChunk:
        """Bytes from `offset` on; a reader behind what was dropped continues at the marker."""
        log_path, dropped_path = self._paths(task_id)
        with self._lock(task_id):
            dropped = self._dropped(dropped_path)
            try:
                with open(log_path, "rb") as log:
                    end = dropped + os.fstat(log.fileno()).st_size
                    start = max(offset, dropped)
                    if start >= end:
                        return LogChunk(offset, b"", end)  # nothing there (yet); never seek past the end
                    log.seek(start - dropped)
                    data = log.read(max_bytes)
            except FileNotFoundError:
                return LogChunk(offset, b"", dropped)
        return LogChunk(start, data, end)

    def end(self, task_id: str) -> int:
        return self.read(task_id, 0, 0).end
