"""Task handlers for worker processes: module-level, so that a worker process can import them by name."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import threading
import time
from typing import Any

from taskservice import TaskContext
from taskservice.core.handlers.paths import InputFile, OutputFile
from taskservice.core.handlers.registry import TaskRegistry
from taskservice.core.handlers.retry import RetryPolicy


def report(ctx: TaskContext, *, reports: int) -> int:
    """Reports progress `reports` times as fast as it can, then logs a line."""
    for i in range(reports):
        ctx.progress(100.0 * (i + 1) / reports, f"{i + 1}/{reports}")
    ctx.log(f"reported {reports} times")
    return reports


def pid(ctx: TaskContext) -> int:
    return os.getpid()


def stuck_in_c(ctx: TaskContext) -> None:
    """Ignores every stop: one long C call."""
    time.sleep(3600)


def endless(ctx: TaskContext) -> None:
    while True:
        pass


def crash(ctx: TaskContext, *, how: str) -> None:
    if how == "exit":
        os._exit(3)
    if how == "segfault":
        ctypes.string_at(0)
    os.kill(os.getpid(), signal.SIGKILL)


def not_json(ctx: TaskContext) -> Any:
    return {1, 2}


def fail(ctx: TaskContext, *, message: str) -> None:
    raise ValueError(message)


def upper(ctx: TaskContext, *, input_fpath: InputFile, output_fpath: OutputFile) -> int:
    """Reads its input and writes it upper-cased, through the server's descriptors."""
    with open(input_fpath, "rb") as source, open(output_fpath, "wb") as target:
        data = source.read().upper()
        target.write(data)
    return len(data)


def cooperative(ctx: TaskContext, *, seconds: float) -> str:
    ctx.sleep(seconds)
    return "slept"


class FlakyError(ValueError):
    """A failure a retry policy names."""


def flaky(ctx: TaskContext, *, failures: int) -> int:
    """Fails its first `failures` runs with FlakyError, then succeeds."""
    if ctx.attempt <= failures:
        raise FlakyError(f"run {ctx.attempt} fails")
    return ctx.attempt


def stubborn_error(ctx: TaskContext) -> None:
    raise KeyError("never retried: the policy names ValueError")


def bad_progress(ctx: TaskContext) -> None:
    """Reports a count that is not a whole number: the handler's own ValueError."""
    ctx.progress(current=1.5, total=10)  # type: ignore[arg-type]


def hog(ctx: TaskContext, *, mib: int) -> None:
    """Holds `mib` MiB, touched, until stopped."""
    held = bytearray(mib * 2**20)
    for i in range(0, len(held), 4096):
        held[i] = 1
    ctx.sleep(3600)


def with_children(ctx: TaskContext) -> None:
    """Starts a child process and logs its pid, then ignores every stop: the stop must kill the child too."""
    child = subprocess.Popen(["sleep", "3600"])
    ctx.log(f"child {child.pid}")
    time.sleep(3600)


def late_log(ctx: TaskContext) -> None:
    """Returns at once, leaving a thread that logs for a while after: those lines belong to no task."""

    def chatter() -> None:
        for i in range(40):
            time.sleep(0.025)
            ctx.log(f"late line {i}")

    threading.Thread(target=chatter, daemon=True).start()


def garbage(ctx: TaskContext) -> None:
    """Writes bytes that are no message into the pipe to the server."""
    ctx._conn.send_bytes(b"\x80\x05 not a pickle")  # type: ignore[attr-defined]
    time.sleep(3600)


def holds(ctx: TaskContext, *, input_fpath: InputFile) -> list[str]:
    """What this process holds open besides the standard streams: the task's own descriptors only."""
    return sorted(os.readlink(f"/proc/self/fd/{fd}") for fd in ctx.path_fds)


def register_process_types(registry: TaskRegistry) -> TaskRegistry:
    handlers = (report, pid, stuck_in_c, endless, crash, not_json, fail, upper, cooperative, bad_progress, hog,
                with_children, late_log, garbage, holds)  # fmt: skip
    for handler in handlers:
        registry.register(f"proc.{handler.__name__}", handler, isolation="process")
    policy = RetryPolicy(max_attempts=3, backoff=0.0, jitter=0.0, retry_on=(ValueError,))
    for handler in (flaky, stubborn_error):
        registry.register(f"proc.{handler.__name__}", handler, isolation="process", retry=policy)
    return registry
