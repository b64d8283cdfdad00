"""Python handlers in worker processes: every core used, and a stop that really kills.

A pool of worker processes, started by a forkserver (never a bare fork of the threaded server). A worker thread
of the engine that runs a task of a process-isolated type hands the call to an idle process and waits for it,
relaying what the handler reports to the real TaskContext:

- progress: the process keeps the latest and sends it at most every PROGRESS_SECONDS (latest wins), so a handler
  reporting 10,000 times a second costs the server a few messages;
- logs: each line, in order;
- a stop: a flag in shared memory the handler's check_stop(), progress() and sleep() read; after the stop grace
  the process is killed (SIGKILL) and a fresh one takes its slot, so a handler stuck in C code really ends;
- the end: the result as JSON text (the same rules as in thread mode), or the error with its traceback.

A process that dies on its own (a segfault, os._exit, the OOM killer) ends its task FAILURE with error type
WorkerProcessDied and the signal. A process is replaced after `max_tasks` tasks or once it holds more than
`max_rss` bytes. Paths are the parent's descriptors, which the child reaches as /proc/<server pid>/fd/N.
"""

from __future__ import annotations

import importlib
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskservice.core.errors import RaisedElsewhere, StopTask
from taskservice.core.models import TaskError, TaskState

log = logging.getLogger(__name__)

WORKER_PROCESS_DIED = "WorkerProcessDied"
PROGRESS_SECONDS = 0.02
# How often the waiting thread looks at the stop flag and the process's health.
POLL_SECONDS = 0.02
# A process is killed this much before the stop grace ends, so it is gone before the watchdog gives up on it.
KILL_MARGIN = 0.8
# Worker processes yield the CPU to the server: with every core busy running handlers, the event loop still answers
# soon (GetState p99 with both cores busy: 8.0 ms at the same priority, 4.9-5.6 ms at nice 10-19; 1.3-2.8 ms idle).
NICENESS = 19
# How often a worker process looks whether the server still runs.
SERVER_CHECK_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class ProcessOutcome:
    """How a call in a process ended: state None when it ended because of a stop (or was killed after one)."""

    state: TaskState | None
    result_json: str | None = None
    error: TaskError | None = None
    # What the handler raised, as the server can know it (for retry policies).
    raised: BaseException | None = None


class _Slot:
    def __init__(self, context: Any) -> None:
        self.stop = context.Value("b", 0, lock=False)
        parent, child = context.Pipe()
        self.conn: multiprocessing.connection.Connection = parent
        self.process = context.Process(target=_child_main, args=(child, self.stop, os.getpid()), daemon=True)
        self.process.start()
        child.close()
        self.tasks = 0

    def close(self, *, kill: bool = False) -> None:
        if self.process.is_alive():
            if kill:
                self.process.kill()
            else:
                self.conn.send(None)
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)
        self.conn.close()


class ProcessPool:
    def __init__(self, size: int, *, max_tasks: int = 0, max_rss: int = 0, start_method: str = "forkserver") -> None:
        self.size = size
        self.max_tasks = max_tasks
        self.max_rss = max_rss
        self._context = multiprocessing.get_context(start_method)
        self._idle: queue.Queue[_Slot] = queue.Queue()
        self._lock = threading.Lock()
        self._slots: set[_Slot] = set()
        self._closed = False
        self.replaced = 0  # processes replaced (killed, died, recycled): a metric, and for tests

    def start(self) -> None:
        for _ in range(self.size):
            self._add()

    def _add(self) -> None:
        slot = _Slot(self._context)
        with self._lock:
            self._slots.add(slot)
        self._idle.put(slot)

    def _replace(self, slot: _Slot, *, kill: bool) -> None:
        with self._lock:
            self._slots.discard(slot)
            closed = self._closed
        slot.close(kill=kill)
        self.replaced += 1
        if not closed:
            self._add()

    def pids(self) -> list[int]:
        with self._lock:
            return [slot.process.pid for slot in self._slots if slot.process.pid is not None]

    def run(self, handler: Any, args: dict[str, Any], meta: dict[str, Any], relay: Relay) -> ProcessOutcome:
        """Call `handler(ctx, **args)` in a process of the pool; blocks until it ends (see the module docstring)."""
        slot = self._idle.get()
        while not slot.process.is_alive():  # killed while idle (from outside): it ran nothing of this task
            self._replace(slot, kill=True)
            slot = self._idle.get()
        slot.stop.value = 0
        try:
            slot.conn.send(("run", handler.__module__, handler.__qualname__, args, meta))
        except (OSError, ValueError) as exc:
            self._replace(slot, kill=True)
            return ProcessOutcome(TaskState.FAILURE, error=TaskError(WORKER_PROCESS_DIED, f"could not send: {exc}"))
        stopped_at: float | None = None
        while True:
            if relay.stop_requested() and stopped_at is None:
                stopped_at = time.monotonic()
                slot.stop.value = 1  # cooperative first
            if stopped_at is not None and time.monotonic() - stopped_at > relay.stop_grace * KILL_MARGIN:
                self._replace(slot, kill=True)
                return ProcessOutcome(None)
            try:
                ready = slot.conn.poll(POLL_SECONDS)
                message = slot.conn.recv() if ready else None
            except (EOFError, OSError):
                message = ("died",)
            if message is None:
                if not slot.process.is_alive():
                    message = ("died",)
                else:
                    continue
            kind = message[0]
            if kind == "progress":
                relay.progress(*message[1:])
            elif kind == "log":
                relay.log(message[1])
            elif kind == "died":
                slot.process.join(timeout=1)
                died = _how_it_died(slot.process.exitcode)
                self._replace(slot, kill=True)
                if stopped_at is not None:
                    return ProcessOutcome(None)
                return ProcessOutcome(TaskState.FAILURE, error=TaskError(WORKER_PROCESS_DIED, died))
            else:
                self._release(slot)
                if kind == "done":
                    return ProcessOutcome(TaskState.SUCCESS, result_json=message[1])
                if kind == "stopped":
                    return ProcessOutcome(None)
                name, text, formatted, *names = message[1:]
                raised = RaisedElsewhere(text, tuple(names[0])) if names else None
                return ProcessOutcome(TaskState.FAILURE, error=TaskError(name, text, formatted), raised=raised)

    def _release(self, slot: _Slot) -> None:
        slot.tasks += 1
        if (self.max_tasks and slot.tasks >= self.max_tasks) or (self.max_rss and _rss(slot) > self.max_rss):
            self._replace(slot, kill=False)
        else:
            self._idle.put(slot)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            slots = list(self._slots)
            self._slots.clear()
        for slot in slots:
            slot.close(kill=True)


class Relay:
    """What the waiting thread passes on to the task's real context."""

    def __init__(self, progress: Any, log_line: Any, stop_requested: Any, stop_grace: float) -> None:
        self.progress = progress
        self.log = log_line
        self.stop_requested = stop_requested
        self.stop_grace = stop_grace


def _rss(slot: _Slot) -> int:
    try:
        with open(f"/proc/{slot.process.pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _how_it_died(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name if -exitcode in signal.Signals._value2member_map_ else str(-exitcode)
        return f"the worker process running this task was killed by {name}"
    return f"the worker process running this task exited with code {exitcode} before the handler returned"


# ---------------------------------------------------------------------- in the child


class ChildContext:
    """The TaskContext a handler gets in a worker process: the same methods, relayed to the server."""

    def __init__(self, conn: Any, stop: Any, meta: dict[str, Any]) -> None:
        self._conn = conn
        self._stop = stop
        self._send_lock = threading.Lock()
        self.task_id: str = meta["task_id"]
        self.task_type: str = meta["task_type"]
        self.attempt: int = meta["attempt"]
        self.args: dict[str, Any] = meta["args"]
        self.stop_grace: float = meta["stop_grace"]
        self.deadline = None if meta["time_left"] is None else time.monotonic() + meta["time_left"]
        self.data_root = Path(meta["data_root"]) if meta["data_root"] is not None else None
        self.min_free_bytes: int = meta["min_free_bytes"]
        self._given: dict[str, str] = meta["given"]
        self._pending: tuple[Any, ...] | None = None
        self._sent_at = 0.0
        self._flusher: threading.Timer | None = None

    @property
    def stop_requested(self) -> bool:
        return bool(self._stop.value)

    def check_stop(self) -> None:
        if self._stop.value:
            raise StopTask()

    def progress(self, percent: float | None = None, message: str = "", *, current: int | None = None,
                 total: int | None = None) -> None:  # fmt: skip
        self._pending = (percent, message, current, total)
        now = time.monotonic()
        if now - self._sent_at >= PROGRESS_SECONDS:
            self.flush()
        elif self._flusher is None:  # the latest goes out soon even if the handler reports no more
            self._flusher = threading.Timer(PROGRESS_SECONDS, self.flush)
            self._flusher.daemon = True
            self._flusher.start()
        self.check_stop()

    def flush(self) -> None:
        with self._send_lock:
            pending, self._pending = self._pending, None
            self._flusher = None
            if pending is not None:
                self._sent_at = time.monotonic()
                self._conn.send(("progress", *pending))

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

    def given_path(self, name: str) -> str:
        """The path arg `name` as the client sent it (the handler's value is a descriptor path)."""
        return self._given.get(name, "")

    @property
    def path_fds(self) -> tuple[int, ...]:
        return ()  # the descriptors are the server's; this process reaches them by path only

    def open_folder(self, relative: str) -> Any:
        raise RuntimeError("open_folder() is not available in a worker process: declare the folder as a path arg")

    def log(self, message: str) -> None:
        self.write_log((message if message.endswith("\n") else message + "\n").encode("utf-8", "replace"))

    def write_log(self, data: bytes) -> None:
        self.flush()  # progress before the line it preceded
        with self._send_lock:
            self._conn.send(("log", data))


def _die_with_the_server(server_pid: int) -> None:
    """End this process once the server is gone (killed with SIGKILL, say): an idle process sees its pipe close,
    but one running a handler would run it out for nobody. (Its parent is the forkserver, which lives as long as
    any of its processes do, so the parent's death says nothing.)"""

    def watch() -> None:
        while True:
            time.sleep(SERVER_CHECK_SECONDS)
            try:
                os.kill(server_pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:  # the pid was reused by another user's process: the server is gone
                os._exit(1)

    threading.Thread(target=watch, name="taskservice-server-watch", daemon=True).start()


def _child_main(conn: Any, stop: Any, server_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server's Ctrl-C is the server's to handle
    os.nice(NICENESS)
    _die_with_the_server(server_pid)
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        _, module, qualname, args, meta = message
        ctx = ChildContext(conn, stop, meta)
        try:
            handler: Any = importlib.import_module(module)
            for part in qualname.split("."):
                handler = getattr(handler, part)
            value = handler(ctx, **args)
            ctx.flush()
            try:
                encoded = None if value is None else json.dumps(value, allow_nan=False, ensure_ascii=False)
            except (TypeError, ValueError, RecursionError) as exc:
                conn.send(("failed", "ResultNotJSON", f"the handler returned a value JSON cannot carry: {exc}", ""))
                continue
            conn.send(("done", encoded))
        except StopTask:
            ctx.flush()
            conn.send(("stopped",))
        except BaseException as exc:  # the handler's SystemExit too: the process must live on
            ctx.flush()
            if ctx.stop_requested:
                conn.send(("stopped",))
                continue
            formatted = "".join(traceback.format_exception(exc))[-16384:]
            names = tuple(f"{kind.__module__}.{kind.__qualname__}" for kind in type(exc).__mro__)
            conn.send(("failed", type(exc).__name__, str(exc)[:4096], formatted, names))
