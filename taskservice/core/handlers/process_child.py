"""Inside a worker process: the loop that runs one handler call after another, and the context it hands them.

Every message to the server carries the number of the run it belongs to, so a line a handler's background
thread logs after its handler returned, or a progress timer that fires late, is dropped by the server rather than
landing in the next task. All sends share one lock: two threads writing one pipe at once would corrupt it.
The process leads its own process group, so the server kills whatever a handler started along with it.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import threading
import time
import traceback
from collections.abc import Sequence
from multiprocessing import reduction
from pathlib import Path
from typing import Any

from taskservice.core.handlers.children import ChildMaker, ChildSubmitError, ChildTask
from taskservice.core.handlers.context import check_progress
from taskservice.core.handlers.json_values import as_json
from taskservice.core.model.errors import StopTask
from taskservice.core.model.models import SubmitSpec
from taskservice.telemetry.runs import attach_carrier, detach_carrier
from taskservice.telemetry.setup import configure_tracing, shutdown_tracing

PROGRESS_SECONDS = 0.02
# How often a waiting handler (sleep, wait_for_stop) looks at the stop flag.
POLL_SECONDS = 0.02
# Worker processes yield the CPU to the server: with every core busy running handlers, the event loop still answers
# soon (GetState p99 with both cores busy: 8.0 ms at the same priority, 4.9-5.6 ms at nice 10-19; 1.3-2.8 ms idle).
NICENESS = 19
# How often a worker process looks whether the server still runs.
SERVER_CHECK_SECONDS = 1.0
SELF_FD = "/proc/self/fd/"

_send_lock = threading.Lock()


def send(conn: Any, run: int, kind: str, *payload: Any) -> None:
    with _send_lock:
        conn.send((run, kind, *payload))


class ChildContext:
    """The TaskContext a handler gets in a worker process: the same methods, relayed to the server."""

    def __init__(self, conn: Any, stop: Any, meta: dict[str, Any], run: int = 0) -> None:
        self._conn = conn
        self._stop = stop
        self._run = run
        self._pending_lock = threading.Lock()
        self.task_id: str = meta["task_id"]
        self.task_type: str = meta["task_type"]
        self.attempt: int = meta["attempt"]
        self.args: dict[str, Any] = meta["args"]
        self.stop_grace: float = meta["stop_grace"]
        self.deadline = None if meta["time_left"] is None else time.monotonic() + meta["time_left"]
        self.data_root = Path(meta["data_root"]) if meta["data_root"] is not None else None
        self.min_free_bytes: int = meta["min_free_bytes"]
        self._given: dict[str, str] = meta["given"]
        self._fds: tuple[int, ...] = tuple(meta.get("fds", ()))
        self.trace_context: dict[str, str] = meta.get("trace_context") or {}
        self._pending: tuple[Any, ...] | None = None
        self._sent_at = 0.0
        self._flusher: threading.Timer | None = None
        self._children = ChildMaker(self.task_id, _PipeChildren(conn, run))

    @property
    def stop_requested(self) -> bool:
        return bool(self._stop.value)

    def check_stop(self) -> None:
        if self._stop.value:
            raise StopTask()

    def progress(self, percent: float | None = None, message: str = "", *, current: int | None = None,
                 total: int | None = None) -> None:  # fmt: skip
        check_progress(percent, current, total)  # the handler's own ValueError, as in a thread
        self._pending = (percent, str(message), current, total)
        now = time.monotonic()
        if now - self._sent_at >= PROGRESS_SECONDS:
            self.flush()
        elif self._flusher is None:  # the latest goes out soon even if the handler reports no more
            self._flusher = threading.Timer(PROGRESS_SECONDS, self.flush)
            self._flusher.daemon = True
            self._flusher.start()
        self.check_stop()

    def flush(self) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, None
            self._flusher = None
            if pending is not None:
                self._sent_at = time.monotonic()
                send(self._conn, self._run, "progress", *pending)

    def sleep(self, seconds: float) -> None:
        end = time.monotonic() + max(0.0, seconds)
        while True:
            self.check_stop()
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, POLL_SECONDS))

    def wait_for_stop(self, timeout: float | None = None) -> bool:
        end = None if timeout is None else time.monotonic() + timeout
        while not self._stop.value:
            if end is not None and time.monotonic() >= end:
                return False
            time.sleep(POLL_SECONDS)
        return True

    def submit(self, task: Any, args: dict[str, Any] | None = None, *, key: str | None = None, detached: bool = False,
               **options: Any) -> str:  # fmt: skip
        """As TaskContext.submit(): the server submits the child for this process."""
        self.check_stop()
        return self._children.submit(task, args, key=key, detached=detached, **options)

    def wait(self, task_ids: list[str], timeout: float | None = None) -> list[ChildTask]:
        """As TaskContext.wait()."""
        return self._children.wait(task_ids, timeout, self.wait_for_stop)

    def given_path(self, name: str) -> str:
        """The path arg `name` as the client sent it (the handler's value is a descriptor path)."""
        return self._given.get(name, "")

    @property
    def path_fds(self) -> tuple[int, ...]:
        """This process's copies of the descriptors behind the task's path args."""
        return self._fds

    def open_folder(self, relative: str) -> Any:
        raise RuntimeError("open_folder() is not available in a worker process: declare the folder as a path arg")

    def log(self, message: str) -> None:
        self.write_log((message if message.endswith("\n") else message + "\n").encode("utf-8", "replace"))

    def write_log(self, data: bytes) -> None:
        self.flush()  # progress before the line it preceded
        send(self._conn, self._run, "log", bytes(data))


class _PipeChildren:
    """ctx.submit() and ctx.wait() of a handler in this process: a question on the pipe, its answer read back (one
    at a time: the server answers in order, and nothing else is sent to this process while it runs a task)."""

    def __init__(self, conn: Any, run: int) -> None:
        self._conn = conn
        self._run = run
        self._asking = threading.Lock()

    def _ask(self, kind: str, payload: Any) -> tuple[Any, ...]:
        with self._asking:
            send(self._conn, self._run, kind, payload)
            answer: tuple[Any, ...] = self._conn.recv()
            return answer

    def submit(self, spec: SubmitSpec) -> str:
        kind, value = self._ask("submit", spec)
        if kind != "submitted":
            raise ChildSubmitError(value)
        return str(value)

    def states(self, task_ids: Sequence[str]) -> list[ChildTask]:
        _, found = self._ask("states", list(task_ids))
        return list(found)


def _die_with_the_server(server_pid: int) -> None:
    """End this process, and what its handlers started, once the server is gone (killed with SIGKILL, say): an
    idle process sees its pipe close, but one running a handler would run it out for nobody. (Its parent is the
    forkserver, which lives as long as any of its processes do, so the parent's death says nothing.)"""

    def watch() -> None:
        while True:
            time.sleep(SERVER_CHECK_SECONDS)
            try:
                os.kill(server_pid, 0)
            except (ProcessLookupError, PermissionError):  # gone (or its pid reused by another user's process)
                os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, name="taskservice-server-watch", daemon=True).start()


def _received_paths(conn: Any, args: dict[str, Any], meta: dict[str, Any]) -> list[int]:
    """The task's descriptors, sent after the call: this process's copies, and the args pointed at them."""
    theirs: list[int] = meta.pop("fds", [])
    ours = [reduction.recv_handle(conn) for _ in theirs]
    mine = {str(fd): str(copy) for fd, copy in zip(theirs, ours, strict=True)}
    for name, value in args.items():
        if isinstance(value, str) and value.startswith(SELF_FD) and value[len(SELF_FD) :] in mine:
            args[name] = SELF_FD + mine[value[len(SELF_FD) :]]
    meta["args"], meta["fds"] = args, ours
    return ours


def child_main(conn: Any, stop: Any, server_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server's Ctrl-C is the server's to handle
    os.setpgid(0, 0)  # a group of its own: a stop kills the handler's children too
    os.nice(NICENESS)
    _die_with_the_server(server_pid)
    try:
        _serve(conn, stop)
    finally:
        shutdown_tracing()  # a process of multiprocessing's ends without atexit: its last spans go out now


def _serve(conn: Any, stop: Any) -> None:
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        _, run, module, qualname, args, meta = message
        fds = _received_paths(conn, args, meta)
        try:
            _call(conn, stop, run, module, qualname, args, meta)
        finally:
            for fd in fds:
                os.close(fd)


def _call(conn: Any, stop: Any, run: int, module: str, qualname: str, args: dict[str, Any], meta: Any) -> None:
    ctx = ChildContext(conn, stop, meta, run)
    # The handler's own spans nest under the run's span in the server (tracing starts with the first traced run).
    traced = attach_carrier(ctx.trace_context) if ctx.trace_context and configure_tracing() else None
    try:
        _call_handler(conn, run, module, qualname, args, ctx)
    finally:
        detach_carrier(traced)


def _call_handler(conn: Any, run: int, module: str, qualname: str, args: dict[str, Any], ctx: ChildContext) -> None:
    try:
        handler: Any = importlib.import_module(module)
        for part in qualname.split("."):
            handler = getattr(handler, part)
        value = handler(ctx, **args)
        ctx.flush()
        try:
            encoded = None if value is None else json.dumps(value, allow_nan=False, ensure_ascii=False, default=as_json)
        except (TypeError, ValueError, RecursionError) as exc:
            message = f"the handler returned a value JSON cannot carry: {exc}"
            send(conn, run, "failed", "ResultNotJSON", message, "", ())
            return
        send(conn, run, "done", encoded)
    except StopTask:
        ctx.flush()
        send(conn, run, "stopped")
    except BaseException as exc:  # the handler's SystemExit too: the process must live on
        ctx.flush()
        if ctx.stop_requested:
            send(conn, run, "stopped")
            return
        formatted = "".join(traceback.format_exception(exc))[-16384:]
        names = tuple(f"{kind.__module__}.{kind.__qualname__}" for kind in type(exc).__mro__)
        send(conn, run, "failed", type(exc).__name__, str(exc)[:4096], formatted, names)
