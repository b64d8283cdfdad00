"""Task types the engine and server tests run: each shows one behaviour a real handler can have."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

from taskservice.core.handlers.context import TaskContext
from taskservice.core.handlers.paths import InputFile, OutputFile
from taskservice.core.handlers.registry import TaskRegistry
from taskservice.core.handlers.retry import RetryPolicy
from taskservice.tasks.demo import demo
from taskservice.tasks.sleep import sleep


class Gates:
    """Named events a test opens to let a `gate` task finish; plus the order tasks ran in."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gates: dict[str, threading.Event] = {}
        self.ran: list[str] = []
        self.left: list[str] = []  # the gate tasks whose handler returned or raised, in that order

    def gate(self, name: str) -> threading.Event:
        with self._lock:
            return self._gates.setdefault(name, threading.Event())

    def open(self, name: str) -> None:
        self.gate(name).set()

    def open_all(self) -> None:
        with self._lock:
            for gate in self._gates.values():
                gate.set()


def make_registry(gates: Gates) -> TaskRegistry:
    """A registry with the built-in types and the test types, fresh for each test."""
    registry = TaskRegistry()
    registry.register("demo", demo)
    registry.register("sleep", sleep)

    def echo(ctx: TaskContext, *, value: Any = None) -> Any:
        return value

    def fail(ctx: TaskContext, *, message: str = "boom") -> None:
        raise ValueError(message)

    def gate(ctx: TaskContext, *, name: str) -> str:
        """Runs until the test opens gate `name`; stoppable."""
        gates.ran.append(name)
        event = gates.gate(name)
        try:
            while not event.wait(0.005):
                ctx.check_stop()
            return name
        finally:
            gates.left.append(name)

    def record(ctx: TaskContext, *, tag: str) -> str:
        gates.ran.append(tag)
        return tag

    def stubborn(ctx: TaskContext, *, name: str, seconds: float = 30.0) -> str:
        """Ignores stop: returns only when its gate opens (or after `seconds`)."""
        gates.ran.append(name)
        gates.gate(name).wait(seconds)
        return "late"

    def spin(ctx: TaskContext, *, reports: int) -> int:
        for i in range(1, reports + 1):
            ctx.progress(current=i, total=reports, message=f"{i}")
        return reports

    def typed(
        ctx: TaskContext,
        *,
        i: int,
        f: float = 0.0,
        s: str = "",
        b: bool = False,
        items: list[int] | None = None,
        options: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return {"i": i, "f": f, "s": s, "b": b, "items": items, "options": options}

    def not_json(ctx: TaskContext) -> Any:
        return object()

    def rerunnable(ctx: TaskContext, *, name: str) -> str:
        gates.ran.append(name)
        return name

    def progress_then_wait(ctx: TaskContext, *, name: str) -> str:
        """Reports progress every 10 ms until its gate opens: stoppable through progress()."""
        event = gates.gate(name)
        count = 0
        while not event.is_set():
            count += 1
            ctx.progress(message=f"tick {count}")
            time.sleep(0.01)
        return name

    def write_output(ctx: TaskContext, *, output_fpath: OutputFile, text: str = "data", then: str = "succeed") -> str:
        """Writes `text` to its output, then succeeds, fails (then="fail") or waits for a stop (then="wait")."""
        with open(output_fpath, "w") as out:
            out.write(text)
            out.flush()
            if then == "fail":
                raise RuntimeError("failed after writing half the output")
            if then == "wait":
                gates.ran.append("writing")
                while True:
                    ctx.progress(message="holding the output open")
                    time.sleep(0.005)
        return output_fpath

    def read_input(ctx: TaskContext, *, input_fpath: InputFile) -> str:
        ctx.log(f"reading {ctx.given_path('input_fpath')}")
        with open(input_fpath) as source:
            return source.read()

    def flaky(ctx: TaskContext, *, name: str, failures: int) -> int:
        """Fails with ConnectionError on its first `failures` attempts."""
        gates.ran.append(f"{name}:{ctx.attempt}")
        if ctx.attempt <= failures:
            raise ConnectionError(f"attempt {ctx.attempt} could not connect")
        return ctx.attempt

    def picky(ctx: TaskContext) -> None:
        """Its policy retries ConnectionError only; this ValueError ends it at once."""
        raise ValueError("bad input, retrying will not help")

    for handler in (echo, fail, gate, record, stubborn, spin, typed, not_json, progress_then_wait):
        registry.register(handler.__name__, handler)

    def chatty(ctx: TaskContext, *, name: str, lines: int = 10) -> int:
        """Logs `lines` lines, waiting for gate `name` halfway through."""
        for i in range(lines):
            if i == lines // 2:
                event = gates.gate(name)
                while not event.wait(0.005):
                    ctx.check_stop()
            ctx.log(f"line {i}")
        return lines

    for handler in (write_output, read_input, chatty):
        registry.register(handler.__name__, handler)
    registry.register("rerunnable", rerunnable, rerun_on_restart=True)
    registry.register("rerunnable_gate", gate, rerun_on_restart=True)
    retry = RetryPolicy(max_attempts=3, backoff=10.0, multiplier=3.0, jitter=0.0, retry_on=(ConnectionError,))
    registry.register("flaky", flaky, retry=retry)
    registry.register("picky", picky, retry=retry)
    # Attempts past 1,024: the backoff's power overflows a float long before such a count.
    endless = RetryPolicy(max_attempts=1_000_000, backoff=0.001, max_backoff=0.002, retry_on=(ConnectionError,))
    registry.register("flaky_for_long", flaky, retry=endless)
    registry.register("flaky_broken_policy", flaky, retry=BrokenPolicy(retry_on=(ConnectionError,)))
    return registry


class BrokenPolicy(RetryPolicy):
    """A retry policy whose backoff fails: a stand-in for any bug in the engine around the end of a run."""

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        raise ArithmeticError("the backoff could not be computed")
