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
from typing import Annotated, Any, BinaryIO, Protocol

from taskservice.core.handlers.constraints import OneOf, Range
from taskservice.core.handlers.context import TaskContext
from taskservice.core.handlers.paths import InputFile, OutputFile
from taskservice.core.handlers.registry import TaskRegistry, default_registry

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


class NotEnoughSpace(RuntimeError):
    """Writing on would leave less free space than the server keeps (--min-free-space)."""


class OutputTooLarge(ValueError):
    """file.decompress would write more than its max_bytes_out."""


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


class _Output:
    """An output file written in chunks: never past `max_bytes`, never leaving less than the reserve free.

    A gzip bomb of a few MiB unpacks to terabytes; without these checks one task could fill the disk that the
    task database and every other task share.
    """

    def __init__(self, ctx: TaskContext, target: BinaryIO, max_bytes: int | None = None) -> None:
        self._target = target  # the staged file: its name is not the one the client gave
        self._reserve = ctx.min_free_bytes
        self._max_bytes = max_bytes
        self.written = 0

    def write(self, chunk: memoryview) -> None:
        size = len(chunk)
        if self._max_bytes is not None and self.written + size > self._max_bytes:
            raise OutputTooLarge(
                f"the output would grow past max_bytes_out ({self._max_bytes} bytes); the partial output was "
                "removed. Raise max_bytes_out if the input is trusted"
            )
        self.check_space(size)
        while chunk:  # an unbuffered write may take only part of the chunk
            chunk = chunk[self._target.write(chunk) :]
        self.written += size

    def check_space(self, more: int) -> None:
        """NotEnoughSpace if `more` bytes would leave less than the reserve free where the output goes."""
        if not self._reserve:
            return
        stats = os.fstatvfs(self._target.fileno())
        free = stats.f_bavail * stats.f_frsize
        if free - more < self._reserve:
            raise NotEnoughSpace(
                f"stopped writing the output: {free / MIB:.0f} MiB are free on its file system and the server "
                f"keeps {self._reserve / MIB:.0f} MiB free (--min-free-space); the partial output was removed. "
                "Free some space, or start the server with a lower --min-free-space"
            )


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


def checksum(
    ctx: TaskContext, *, input_fpath: InputFile, algorithm: Annotated[str, OneOf(*ALGORITHMS)] = "sha256"
) -> dict[str, Any]:
    """Hash a file with sha256 (default), md5 or blake2b; returns the hex digest and the size in bytes.

    Args:
        input_fpath: The file to hash, under the data root.
        algorithm: The hash: sha256, md5 or blake2b.
    """
    digest = ALGORITHMS[algorithm]()
    with open(input_fpath, "rb", buffering=0) as source:
        done = _copy_chunks(ctx, source, digest.update)
    return {"algorithm": algorithm, "digest": digest.hexdigest(), "bytes": done}


def copy(ctx: TaskContext, *, input_fpath: InputFile, output_fpath: OutputFile) -> dict[str, int]:
    """Copy a file byte for byte; the copy appears only when the task succeeds.

    Args:
        input_fpath: The file to copy, under the data root.
        output_fpath: Where the copy goes, under the data root (an existing file is replaced on success).
    """
    with open(input_fpath, "rb", buffering=0) as source, open(output_fpath, "wb", buffering=0) as target:
        done = _copy_chunks(ctx, source, _Output(ctx, target).write)
    return {"bytes": done}


def compress(
    ctx: TaskContext, *, input_fpath: InputFile, output_fpath: OutputFile, level: Annotated[int, Range(1, 9)] = 6
) -> dict[str, int]:
    """Gzip a file at `level` 1 (fastest) to 9 (smallest), like `gzip -c -LEVEL`.

    Args:
        input_fpath: The file to compress, under the data root.
        output_fpath: Where the gzip file goes, under the data root.
        level: 1 (fastest) to 9 (smallest).
    """
    with open(input_fpath, "rb", buffering=0) as source, open(output_fpath, "wb") as target:
        # The header names the input and its mtime, as gzip(1) does (not the temporary output's name).
        with gzip.GzipFile(
            filename=os.path.basename(ctx.given_path("input_fpath") or input_fpath),
            mode="wb",
            compresslevel=level,
            fileobj=target,
            mtime=int(os.fstat(source.fileno()).st_mtime),
        ) as packed:
            output = _Output(ctx, target)

            def write(chunk: memoryview) -> None:
                output.check_space(len(chunk))  # gzip output is at most a little larger than its input
                packed.write(chunk)

            done = _copy_chunks(ctx, source, write)
        written = target.tell()
    return {"bytes_in": done, "bytes_out": written}


def decompress(
    ctx: TaskContext,
    *,
    input_fpath: InputFile,
    output_fpath: OutputFile,
    max_bytes_out: Annotated[int, Range(1)] | None = None,
) -> dict[str, int]:
    """Gunzip a file; a file that is not gzip, or is cut short, or would unpack to more than `max_bytes_out`
    bytes (when given) fails the task and leaves no output.

    Args:
        input_fpath: The gzip file, under the data root.
        output_fpath: Where the unpacked file goes, under the data root.
        max_bytes_out: The most it may unpack to, in bytes (a guard against a gzip bomb); none when left out.
    """
    name = os.path.basename(ctx.given_path("input_fpath") or input_fpath)
    with open(input_fpath, "rb") as source, open(output_fpath, "wb", buffering=0) as target:
        progress = _ByteProgress(ctx, _size(source))
        if not progress.total:
            raise NotGzipError(f"{name} is empty, not a gzip file")
        _read_sequentially(source)
        buffer = bytearray(CHUNK_BYTES)
        view = memoryview(buffer)
        progress.start()
        output = _Output(ctx, target, max_bytes=max_bytes_out)
        try:
            with gzip.GzipFile(fileobj=source, mode="rb") as packed:
                while n := packed.readinto(buffer):
                    output.write(view[:n])
                    # Progress counts compressed input bytes, so it ends at the input's size.
                    progress.advance(source.tell())
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise NotGzipError(
                f"{name} is not a valid gzip file (after {source.tell()} bytes of input): {exc}"
            ) from exc
        done = source.tell()
        progress.finish(done)
        ctx.log(f"{ctx.task_type}: {progress.rate(done)}, {output.written} bytes out")
    return {"bytes_in": done, "bytes_out": output.written}


def register_file_tasks(registry: TaskRegistry) -> None:
    """Register file.checksum, file.copy, file.compress and file.decompress in `registry`."""
    registry.register("file.checksum", checksum)
    registry.register("file.copy", copy)
    registry.register("file.compress", compress)
    registry.register("file.decompress", decompress)


register_file_tasks(default_registry)
