"""Task types that misbehave on purpose, for the fault tests (tests/faults/).

`make_fault_registry` is tests/support/task_types.make_registry plus these types. Each shows one way a
real handler can go wrong: bad progress values, results JSON or protobuf cannot carry, exceptions that are
not Exceptions (or whose str() fails), threads that outlive the handler, progress floods.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from taskservice.core.handlers.context import TaskContext
from taskservice.core.handlers.registry import TaskRegistry
from tests.support.task_types import Gates, make_registry

MIB = 1024 * 1024
# A non-UTF-8 file name as os.listdir() hands it to Python (surrogateescape): b"\xff" -> "\udcff".
SURROGATE_NAME = b"report-\xff.txt".decode("utf-8", "surrogateescape")
# Protobuf (and so every gRPC client) refuses messages nested deeper than 100 levels.
TOO_DEEP = 150


class Probe:
    """Counters the fault handlers bump, so tests can wait on what a handler (or its leaked thread) did."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self.threads: dict[str, str] = {}

    def bump(self, key: str, by: int = 1) -> int:
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + by
            return self._counts[key]

    def count(self, key: str) -> int:
        with self._lock:
            return self._counts.get(key, 0)


class UnprintableError(Exception):
    """An exception whose str() itself raises (a buggy __str__ in some library's exception class)."""

    def __str__(self) -> str:
        raise RuntimeError("__str__ of this exception is broken")


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


# What `returns` hands back, by kind.
RESULTS: dict[str, Any] = {
    "object": lambda: object(),
    "nan": lambda: float("nan"),
    "infinity": lambda: {"ratio": float("inf")},
    "set": lambda: {1, 2, 3},
    "bytes": lambda: b"raw bytes",
    "huge": lambda: "x" * (MIB + 10),
    "just_under_limit": lambda: "y" * (MIB - 100),
    "int_keys": lambda: {1: "one", 2: "two"},
    "big_int": lambda: 10**400,
    "too_deep": lambda: _nested(TOO_DEEP),
    "surrogate": lambda: {"file": SURROGATE_NAME},
}


def make_fault_registry(gates: Gates, probe: Probe) -> TaskRegistry:
    """The test registry (built-in and test types) plus the misbehaving types below."""
    registry = make_registry(gates)

    def bad_progress(ctx: TaskContext, *, kind: str) -> str:
        """Passes something ctx.progress() should not take; returns 'accepted' if that did not raise."""
        if kind == "nan":
            ctx.progress(float("nan"))
        elif kind == "infinity":
            ctx.progress(float("inf"))
        elif kind == "string_percent":
            ctx.progress("fifty")  # type: ignore[arg-type]
        elif kind == "string_current":
            ctx.progress(current="many", total=10)  # type: ignore[arg-type]
        elif kind == "huge_current":
            # Beyond int64, the type of Progress.current and .total on the wire.
            ctx.progress(current=2**70, total=2**71, message="a lot of bytes")
        elif kind == "surrogate_message":
            ctx.progress(50, message=f"reading {SURROGATE_NAME}")
        else:
            raise AssertionError(f"unknown kind {kind!r}")
        return "accepted"

    def returns(ctx: TaskContext, *, kind: str, gate: str = "") -> Any:
        """Returns the value RESULTS[kind] makes; with `gate`, once that gate opens (so a test can watch the end)."""
        if gate:
            event = gates.gate(gate)
            while not event.wait(0.005):
                ctx.check_stop()
        return RESULTS[kind]()

    def raises(ctx: TaskContext, *, kind: str) -> None:
        """Ends by raising something unusual."""
        probe.threads[ctx.task_id] = threading.current_thread().name
        if kind == "sys_exit":
            sys.exit(3)
        if kind == "keyboard_interrupt":
            raise KeyboardInterrupt
        if kind == "unprintable":
            raise UnprintableError("never shown")
        if kind == "surrogate_message":
            # A message naming a file listed from a directory with a non-UTF-8 name.
            raise ValueError(f"bad header in {SURROGATE_NAME}")
        raise AssertionError(f"unknown kind {kind!r}")

    def whoami(ctx: TaskContext) -> str:
        """The name of the worker thread running it."""
        return threading.current_thread().name

    def leaks_thread(ctx: TaskContext, *, name: str) -> str:
        """Starts a thread that keeps reporting progress and logging after the handler returned, until gate
        `name` opens; returns once that thread is going."""
        started = threading.Event()

        def keep_going() -> None:
            started.set()
            while not gates.gate(name).wait(0.002):
                try:
                    ctx.progress(current=probe.bump(f"{name}:reports"), total=0, message="still here")
                    ctx.log("the leaked thread is still running")
                except Exception as exc:  # count, never die: the point is to keep poking
                    probe.bump(f"{name}:raised:{type(exc).__name__}")

        threading.Thread(target=keep_going, name=f"leaked-{name}", daemon=True).start()
        started.wait(5)
        ctx.progress(100, "handler done")
        return "returned while its thread runs on"

    def flood(ctx: TaskContext, *, name: str, message_bytes: int = 1000, burst: int = 50) -> int:
        """Reports progress fast (big messages) until gate `name` opens: `burst` reports, then a 1 ms pause
        that lets other threads (the server's event loop) have the GIL. Stoppable."""
        filler = "m" * message_bytes
        event = gates.gate(name)
        count = 0
        while not event.is_set():
            count += 1
            probe.bump(f"{name}:reports")
            ctx.progress(current=count, total=0, message=f"{count} {filler}")
            if count % burst == 0:
                time.sleep(0.001)
        return count

    for handler in (bad_progress, returns, raises, whoami, leaks_thread, flood):
        registry.register(handler.__name__, handler)
    return registry
