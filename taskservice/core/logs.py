"""Per-task log files: a command's stdout/stderr, and what Python handlers write with ctx.log().

Each task's log is capped. Past the cap the oldest bytes are dropped and a marker says how many; offsets
stay absolute (bytes since the task's first log byte), so a reader resuming at an offset never sees a
byte twice or out of order.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

# Per task; a chatty command keeps its last few megabytes.
DEFAULT_MAX_LOG_BYTES = 8 * 1024 * 1024
# What one read returns at most.
MAX_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class LogChunk:
    offset: int  # absolute offset of data[0]
    data: bytes
    end: int  # absolute offset just past the last byte written so far


class TaskLogs:
    """The log files of all tasks, in one folder. Thread-safe within the server process."""

    def __init__(self, directory: str | Path, *, max_bytes: int = DEFAULT_MAX_LOG_BYTES) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

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
        if not data:
            return
        log_path, dropped_path = self._paths(task_id)
        with self._lock(task_id):
            with open(log_path, "ab") as log:
                log.write(data)
                size = log.tell()
            if size > self.max_bytes:
                self._drop_oldest(log_path, dropped_path, size)

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
