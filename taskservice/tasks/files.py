"""File task types: checksum, copy, gzip compress and decompress.

Each reads its input in 1 MiB chunks, reports progress as bytes of input done out of the input's size
(at most ~20 reports a second, never more than one per chunk) and checks for a stop between chunks.
Path args are resolved under the server's --data-root; an output appears only when the task succeeds.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import time
import zlib
from collections.abc import Callable
from typing import Any, Protocol

from taskservice.core.context import TaskContext
from taskservice.core.errors import InvalidRequest
from taskservice.core.paths import InputFile, OutputFile
from taskservice.core.registry import TaskRegistry, default_registry

CHUNK_BYTES = 1024 * 1024
# Seconds between two progress reports: each costs a lock, an event to every watcher and a store write.
PROGRESS_INTERVAL = 0.05
MIB = 1024 * 1024

ALGORITHMS: dict[str, Callable[[], Any]] = {
    "sha256": hashlib.sha256,
    "md5": lambda: hashlib.md5(usedforsecurity=False),
    "blake2b": hashlib.blake2b,
}


class NotGzipError(ValueError):
    """The input of file.decompress is not a complete gzip file."""


class _Readable(Protocol):
    def readinto(self, buffer: bytearray, /) -> int | None: ...

    def fileno(self) -> int: ...


class _ByteProgress:
    """Reports `done` of `total` input bytes, throttled; checks for a stop on every chunk in between."""

    def __init__(self, ctx: TaskContext, total: int) -> None:
        self.ctx = ctx
        self.total = total
        self._next_report = 0.0
        self.started = time.monotonic()

    def _report(self, done: int, total: int, percent: float | None = None) -> None:
        message = f"{done / MIB:.1f} of {total / MIB:.1f} MiB"
        self.ctx.progress(percent, message, current=done, total=total)

    def start(self) -> None:
        self._report(0, self.total)
        self._next_report = time.monotonic() + PROGRESS_INTERVAL

    def advance(self, done: int) -> None:
        now = time.monotonic()
        if now >= self._next_report:
            # A file that grew while it is read must not show more than 100%.
            self._report(done, max(done, self.total))
            self._next_report = now + PROGRESS_INTERVAL
        else:
            self.ctx.check_stop()

    def finish(self, done: int) -> None:
        """The last report: all of the bytes actually read (the input may have changed size meanwhile)."""
        self._report(done, done, percent=100.0)

    def rate(self, done: int) -> str:
        seconds = time.monotonic() - self.started
        speed = f", {done / MIB / seconds:.0f} MiB/s" if seconds > 0 else ""
        return f"{done} bytes in {seconds:.2f} s{speed}"


def _size(stream: _Readable) -> int:
    return os.fstat(stream.fileno()).st_size


def _read_sequentially(stream: _Readable) -> None:
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(stream.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)


def _copy_chunks(ctx: TaskContext, source: _Readable, write: Callable[[memoryview], Any]) -> int:
    """Read `source` to its end in reused 1 MiB chunks, handing each to `write`; returns the bytes read."""
    progress = _ByteProgress(ctx, _size(source))
    _read_sequentially(source)
    buffer = bytearray(CHUNK_BYTES)
    view = memoryview(buffer)
    progress.start()
    done = 0
    while True:
        n = source.readinto(buffer)
        if not n:
            break
        write(view[:n])
        done += n
        progress.advance(done)
    progress.finish(done)
    ctx.log(f"{ctx.task_type}: {progress.rate(done)}")
    return done


def checksum(ctx: TaskContext, *, input_fpath: InputFile, algorithm: str = "sha256") -> dict[str, Any]:
    """Hash a file with sha256 (default), md5 or blake2b; returns the hex digest and the size in bytes."""
    digest = ALGORITHMS[algorithm]()
    with open(input_fpath, "rb", buffering=0) as source:
        done = _copy_chunks(ctx, source, digest.update)
    return {"algorithm": algorithm, "digest": digest.hexdigest(), "bytes": done}


def copy(ctx: TaskContext, *, input_fpath: InputFile, output_fpath: OutputFile) -> dict[str, int]:
    """Copy a file byte for byte; the copy appears only when the task succeeds."""
    with open(input_fpath, "rb", buffering=0) as source, open(output_fpath, "wb", buffering=0) as target:

        def write(chunk: memoryview) -> None:
            while chunk:  # an unbuffered write may take only part of the chunk
                chunk = chunk[target.write(chunk) :]

        done = _copy_chunks(ctx, source, write)
    return {"bytes": done}


def compress(ctx: TaskContext, *, input_fpath: InputFile, output_fpath: OutputFile, level: int = 6) -> dict[str, int]:
    """Gzip a file at `level` 1 (fastest) to 9 (smallest), like `gzip -c -LEVEL`."""
    with open(input_fpath, "rb", buffering=0) as source, open(output_fpath, "wb") as target:
        # The header names the input and its mtime, as gzip(1) does (not the temporary output's name).
        with gzip.GzipFile(
            filename=os.path.basename(input_fpath),
            mode="wb",
            compresslevel=level,
            fileobj=target,
            mtime=int(os.fstat(source.fileno()).st_mtime),
        ) as packed:
            done = _copy_chunks(ctx, source, packed.write)
        written = target.tell()
    return {"bytes_in": done, "bytes_out": written}


def decompress(ctx: TaskContext, *, input_fpath: InputFile, output_fpath: OutputFile) -> dict[str, int]:
    """Gunzip a file; a file that is not gzip, or is cut short, fails the task and leaves no output."""
    with open(input_fpath, "rb") as source, open(output_fpath, "wb", buffering=0) as target:
        progress = _ByteProgress(ctx, _size(source))
        if not progress.total:
            raise NotGzipError(f"{os.path.basename(input_fpath)} is empty, not a gzip file")
        _read_sequentially(source)
        buffer = bytearray(CHUNK_BYTES)
        view = memoryview(buffer)
        progress.start()
        written = 0
        try:
            with gzip.GzipFile(fileobj=source, mode="rb") as packed:
                while n := packed.readinto(buffer):
                    chunk = view[:n]
                    while chunk:
                        chunk = chunk[target.write(chunk) :]
                    written += n
                    # Progress counts compressed input bytes, so it ends at the input's size.
                    progress.advance(source.tell())
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise NotGzipError(
                f"{os.path.basename(input_fpath)} is not a valid gzip file "
                f"(after {source.tell()} bytes of input): {exc}"
            ) from exc
        done = source.tell()
        progress.finish(done)
        ctx.log(f"{ctx.task_type}: {progress.rate(done)}, {written} bytes out")
    return {"bytes_in": done, "bytes_out": written}


def _check_algorithm(args: dict[str, Any]) -> None:
    algorithm = args.get("algorithm", "sha256")
    if algorithm not in ALGORITHMS:
        raise InvalidRequest(
            f"unknown checksum algorithm {algorithm!r}",
            [("args.algorithm", f"must be one of {', '.join(ALGORITHMS)}")],
        )


def _check_level(args: dict[str, Any]) -> None:
    level = args.get("level", 6)
    if not 1 <= level <= 9:
        raise InvalidRequest(f"gzip level {level} is out of range", [("args.level", "must be 1 (fastest) to 9")])


def register_file_tasks(registry: TaskRegistry) -> None:
    """Register file.checksum, file.copy, file.compress and file.decompress in `registry`."""
    registry.register("file.checksum", checksum, validator=_check_algorithm)
    registry.register("file.copy", copy)
    registry.register("file.compress", compress, validator=_check_level)
    registry.register("file.decompress", decompress)


register_file_tasks(default_registry)
