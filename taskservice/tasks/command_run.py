"""Running one command as a child process for a task handler.

The child gets its own process group (a new session), no stdin, and pipes for stdout and stderr. Two reader
threads copy every byte to the task log and parse lines for progress; only the handler's own thread calls
ctx.progress(). On a stop the group gets SIGTERM, then SIGKILL shortly before the engine's stop grace ends.

Every signal to the group is sent while the group leader is not yet reaped (exit is detected with
waitid(WNOWAIT)), so the group id cannot have been reused by an unrelated process. After the leader exits
the rest of its group is killed too: a command leaves nothing running behind it. (A process that moves to
a session of its own escapes the group; containing that needs cgroups.)
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

from taskservice.core.handlers.context import TaskContext
from taskservice.core.model.errors import StopTask

# How often the handler looks at the child and publishes progress.
POLL_SECONDS = 0.05
READ_CHUNK_BYTES = 64 * 1024
# Longer lines are cut for progress parsing only; the log gets every byte.
MAX_LINE_BYTES = 64 * 1024
STDERR_TAIL_LINES = 20
MAX_STDERR_TAIL_CHARS = 3000
# After SIGTERM the group gets the stop grace minus this much (at least MIN_TERM_SECONDS) before SIGKILL, so
# that killing, reaping and joining the readers end before the engine abandons the handler.
KILL_MARGIN_SECONDS = 0.25
MIN_TERM_SECONDS = 0.1
READER_JOIN_SECONDS = 0.5

_PROGRESS_LINE = re.compile(r"PROGRESS\s+(?P<percent>\d+(?:\.\d+)?)(?:\s+(?P<message>.*?))?\s*")
_PERCENT = re.compile(r"(?<![\d.])(?P<percent>\d{1,3}(?:\.\d+)?)%")
_TQDM_BAR = re.compile(r"\|[^|]*\|")
_SEPARATORS = re.compile(rb"[\r\n]")


class CommandFailed(RuntimeError):
    """A command could not start, exited non-zero or was killed by a signal; the message has its stderr tail."""

    def __init__(self, message: str, *, exit_code: int | None = None, signal_name: str | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.signal_name = signal_name


@dataclass(frozen=True, slots=True)
class ParsedProgress:
    percent: float | None = None
    message: str = ""
    current: int | None = None
    total: int | None = None


def parse_progress(line: str, pattern: re.Pattern[str] | None = None) -> ParsedProgress | None:
    """Progress in one output line: the operator's pattern, else `PROGRESS <percent> [message]` or tqdm's `NN%`."""
    if pattern is not None:
        match = pattern.search(line)
        if match is None:
            return None
        found = match.groupdict()
        try:
            percent = float(found["percent"]) if found.get("percent") else None
            current = int(float(found["current"])) if found.get("current") else None
            total = int(float(found["total"])) if found.get("total") else None
        except (ValueError, OverflowError):
            return None
        if percent is not None and not math.isfinite(percent):
            return None
        return ParsedProgress(percent, (found.get("message") or "").strip(), current, total)
    match = _PROGRESS_LINE.fullmatch(line.strip())
    if match is not None:
        return ParsedProgress(float(match["percent"]), match["message"] or "")
    match = _PERCENT.search(line)
    if match is not None and float(match["percent"]) <= 100:
        return ParsedProgress(float(match["percent"]), " ".join(_TQDM_BAR.sub(" ", line).split()))
    return None


class _LatestProgress:
    """What the readers parsed last; the handler thread publishes it (readers never call ctx.progress)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: ParsedProgress | None = None
        self.version = 0

    def set(self, value: ParsedProgress) -> None:
        with self._lock:
            self._value = value
            self.version += 1

    def get(self) -> tuple[int, ParsedProgress | None]:
        with self._lock:
            return self.version, self._value


class _Reader:
    """Copies one pipe to the task log and feeds its lines (split on \\n and \\r) to the progress parser."""

    def __init__(
        self,
        stream: IO[bytes],
        ctx: TaskContext,
        latest: _LatestProgress,
        pattern: re.Pattern[str] | None,
        tail: collections.deque[str] | None = None,
    ) -> None:
        self._stream = stream
        self._ctx = ctx
        self._latest = latest
        self._pattern = pattern
        self._tail = tail
        self.thread = threading.Thread(target=self._run, name=f"command-reader-{ctx.task_id}", daemon=True)

    def _run(self) -> None:
        segment = b""  # the unfinished part after the last \r or \n, for progress
        line = b""  # the unfinished part after the last \n, for the stderr tail
        early: bytes | None = None  # `segment` as already parsed before it was finished
        try:
            while chunk := self._stream.read1(READ_CHUNK_BYTES):  # type: ignore[attr-defined]
                self._ctx.write_log(chunk)
                data = segment + chunk
                *finished, segment = _SEPARATORS.split(data)
                for index, piece in enumerate(finished):
                    if not (index == 0 and piece == early):
                        self._progress(piece)
                if finished:
                    early = None
                # tqdm redraws its bar after a \r and leaves the line open: parse the newest drawing now.
                redrawn = bool(segment) and data[-len(segment) - 1 : -len(segment)] == b"\r"
                segment = segment[-MAX_LINE_BYTES:]
                if redrawn and segment != early:
                    self._progress(segment)
                    early = segment
                if self._tail is not None:
                    *lines, line = (line + chunk).split(b"\n")
                    line = line[-MAX_LINE_BYTES:]
                    for text in lines:
                        self._add_to_tail(text)
        except (OSError, ValueError):
            pass  # the pipe was closed under us
        finally:
            if segment and segment != early:
                self._progress(segment)
            if line:
                self._add_to_tail(line)
            self._stream.close()

    def _add_to_tail(self, line: bytes) -> None:
        assert self._tail is not None
        # What a terminal would show: the last drawing of a line rewritten after \r.
        drawings = [d for d in line.split(b"\r") if d.strip()]
        if drawings:
            self._tail.append(drawings[-1].decode("utf-8", "replace").rstrip())

    def _progress(self, segment: bytes) -> None:
        if not segment.strip():
            return
        parsed = parse_progress(segment.decode("utf-8", "replace"), self._pattern)
        if parsed is not None:
            self._latest.set(parsed)


@dataclass(frozen=True, slots=True)
class Finished:
    returncode: int
    stderr_tail: list[str]
    duration_seconds: float


def _exited(pid: int) -> bool:
    """True once the child has exited; it stays unreaped (a zombie holding its pid and group id)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _terminate(ctx: TaskContext, pid: int) -> None:
    """SIGTERM the group and give the leader until shortly before the stop grace ends (SIGKILL follows)."""
    patience = max(MIN_TERM_SECONDS, ctx.stop_grace - KILL_MARGIN_SECONDS)
    ctx.log(f"[taskservice] stop requested: SIGTERM to process group {pid}, SIGKILL in {patience:g} s if it lives")
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + patience
    while not _exited(pid):
        if time.monotonic() >= deadline:
            ctx.log(f"[taskservice] process {pid} ignored SIGTERM for {patience:g} s: SIGKILL to its group")
            return
        time.sleep(0.01)


def _publish(ctx: TaskContext, latest: _LatestProgress, published: int) -> int:
    version, value = latest.get()
    if version != published and value is not None:
        with contextlib.suppress(StopTask):  # the main loop notices the stop and ends the command
            ctx.progress(value.percent, value.message, current=value.current, total=value.total)
    return version


def run_process(
    ctx: TaskContext,
    argv: Sequence[str],
    *,
    cwd: str | None,
    env: dict[str, str],
    pattern: re.Pattern[str] | None,
    pass_fds: Sequence[int] = (),
) -> Finished:
    """Run argv to its end; raise StopTask after a stop, once no process of its group is left."""
    started = time.monotonic()
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=env,
        start_new_session=True,
        close_fds=True,
        pass_fds=tuple(pass_fds),
    )
    assert proc.stdout is not None and proc.stderr is not None
    latest = _LatestProgress()
    tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
    readers = [_Reader(proc.stdout, ctx, latest, pattern), _Reader(proc.stderr, ctx, latest, pattern, tail)]
    stopped = False
    published = 0
    try:
        for reader in readers:
            reader.thread.start()
        while not _exited(proc.pid):
            if ctx.wait_for_stop(POLL_SECONDS):
                stopped = True
                _terminate(ctx, proc.pid)
                break
            published = _publish(ctx, latest, published)
    finally:
        # The leader is not reaped yet, so its group id is still ours: kill whatever is left of the group.
        _signal_group(proc.pid, signal.SIGKILL)
        returncode = proc.wait()
        for reader in readers:
            reader.thread.join(READER_JOIN_SECONDS)
    if stopped:
        raise StopTask()
    _publish(ctx, latest, published)
    return Finished(returncode, list(tail), time.monotonic() - started)
