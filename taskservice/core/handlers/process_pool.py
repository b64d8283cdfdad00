"""Python handlers in worker processes: every core used, and a stop that really kills.

A pool of worker processes, started by a forkserver (never a bare fork of the threaded server). A worker thread
of the engine that runs a task of a process-isolated type hands the call to an idle process and waits for it,
relaying what the handler reports to the real TaskContext:

- progress: the process keeps the latest and sends it at most every PROGRESS_SECONDS (latest wins), so a handler
  reporting 10,000 times a second costs the server a few messages;
- logs: each line, in order;
- a stop: a flag in shared memory the handler's check_stop(), progress() and sleep() read; after the stop grace
  the process and its process group are killed (SIGKILL) and a fresh one takes its slot, so a handler stuck in C
  code, and whatever it started, really end;
- the end: the result as JSON text (the same rules as in thread mode), or the error with its traceback.

A process that dies on its own (a segfault, os._exit, the OOM killer) ends its task FAILURE with error type
WorkerProcessDied and the signal; one that holds more than `max_rss` bytes while it runs is killed and its task
ends FAILURE with MemoryLimitExceeded. A process is replaced after `max_tasks` tasks or once it holds more than
`max_rss`. The task's path descriptors, and only those, are passed to the process (SCM_RIGHTS) with the call.

Whatever happens while a call is under way, its slot goes back to the pool or its process is replaced
(`ProcessPool.run`'s one exit), so no failure can shrink the pool. The child's side is process_child.py.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import logging
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import reduction
from typing import Any

from taskservice.core.handlers.children import Children, ChildSubmitError
from taskservice.core.handlers.process_child import child_main
from taskservice.core.model.errors import RaisedElsewhere
from taskservice.core.model.models import ErrorType, TaskError, TaskState

log = logging.getLogger(__name__)

WORKER_PROCESS_DIED = "WorkerProcessDied"
MEMORY_LIMIT_EXCEEDED = "MemoryLimitExceeded"
# How often the waiting thread looks at the stop flag and the process's health.
POLL_SECONDS = 0.02
# How often a running process's memory is measured against max_rss.
RSS_CHECK_SECONDS = 0.1
# A process is killed this much before the stop grace ends, so it is gone before the watchdog gives up on it.
KILL_MARGIN = 0.8
PR_SET_DUMPABLE = 4
# How often a call waiting for an idle process tries again to start those that could not be started.
REFILL_SECONDS = 1.0


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
        self.process = context.Process(target=child_main, args=(child, self.stop, os.getpid()), daemon=True)
        self.process.start()
        child.close()
        self.tasks = 0

    def close(self, *, kill: bool = False) -> None:
        if self.process.is_alive():
            if kill:
                self._kill_group()
            else:
                try:
                    self.conn.send(None)
                except OSError:
                    self._kill_group()
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)
        self._kill_group()  # whatever its handlers left running (children in its group)
        self.conn.close()

    def _kill_group(self) -> None:
        """SIGKILL to the process and every process in its group (it leads one of its own: process_child.py)."""
        pid = self.process.pid
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):  # not its own group yet, or nobody left
            os.killpg(pid, signal.SIGKILL)
        if self.process.is_alive():
            self.process.kill()


class Relay:
    """What the waiting thread passes on to the task's real context."""

    def __init__(
        self, progress: Any, log_line: Any, stop_requested: Any, stop_grace: float, children: Children | None = None
    ) -> None:
        self.progress = progress
        self.log = log_line
        self.stop_requested = stop_requested
        self.stop_grace = stop_grace
        # ctx.submit() and ctx.wait() in the process, asked over the pipe and answered on it.
        self.children = children


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
        self._runs = itertools.count(1)
        self.replaced = 0  # processes replaced (killed, died, recycled): a metric, and for tests

    def start(self) -> None:
        _keep_out_of_proc()
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
        slot.close(kill=kill)
        self.replaced += 1
        self._refill()

    def _refill(self) -> None:
        """Start processes until the pool has its size again. One that cannot start now (no memory, no descriptor
        free) is started again by the next call: the pool never stays smaller than it should."""
        while True:
            with self._lock:
                if self._closed or len(self._slots) >= self.size:
                    return
            try:
                self._add()
            except OSError as exc:
                log.error("cannot start a worker process (the next task tries again): %s", exc)
                return

    def pids(self) -> list[int]:
        with self._lock:
            return [slot.process.pid for slot in self._slots if slot.process.pid is not None]

    def run(
        self, handler: Any, args: dict[str, Any], meta: dict[str, Any], relay: Relay, fds: tuple[int, ...] = ()
    ) -> ProcessOutcome:
        """Call `handler(ctx, **args)` in a process of the pool, passing it `fds`; blocks until it ends (see the
        module docstring). The slot is given back, or its process replaced, whatever happens meanwhile."""
        slot = self._take()
        healthy = False
        try:
            outcome, healthy = _Call(slot, next(self._runs), relay, self.max_rss).run(handler, args, meta, fds)
            return outcome
        except Exception as exc:  # relaying failed (a bug of the server's): this run fails, the pool stays whole
            log.exception("task %s: relaying its worker process failed", meta.get("task_id"))
            error = f"the server failed relaying the worker process ({type(exc).__name__}: {exc}); it was replaced"
            return ProcessOutcome(TaskState.FAILURE, error=TaskError(ErrorType.SERVER_ERROR, error))
        finally:
            if healthy:
                self._release(slot)
            else:
                self._replace(slot, kill=True)

    def _take(self) -> _Slot:
        """An idle process, waiting for one; the pool is refilled meanwhile if a process could not be started."""
        while True:
            self._refill()
            try:
                slot = self._idle.get(timeout=REFILL_SECONDS)
            except queue.Empty:
                continue
            if slot.process.is_alive():
                return slot
            self._replace(slot, kill=True)  # killed while idle (from outside): it ran nothing of this task

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


class _Call:
    """One handler call in one process, from the request to its end; `run` answers the outcome and whether the
    process can take another call (False: it is killed and replaced)."""

    def __init__(self, slot: _Slot, number: int, relay: Relay, max_rss: int) -> None:
        self.slot = slot
        self.number = number
        self.relay = relay
        self.max_rss = max_rss
        self.stopped_at: float | None = None

    def run(
        self, handler: Any, args: dict[str, Any], meta: dict[str, Any], fds: tuple[int, ...]
    ) -> tuple[ProcessOutcome, bool]:
        slot = self.slot
        slot.stop.value = 0
        try:
            slot.conn.send(("run", self.number, handler.__module__, handler.__qualname__, args, {**meta, "fds": fds}))
            for fd in fds:
                reduction.send_handle(slot.conn, fd, slot.process.pid)
        except (OSError, ValueError) as exc:
            return _failure(WORKER_PROCESS_DIED, f"could not send the task to the worker process: {exc}"), False
        measured_at = time.monotonic()
        while True:
            if self.relay.stop_requested() and self.stopped_at is None:
                self.stopped_at = time.monotonic()
                slot.stop.value = 1  # cooperative first
            if self.stopped_at is not None and time.monotonic() - self.stopped_at > self.relay.stop_grace * KILL_MARGIN:
                return ProcessOutcome(None), False
            if self.max_rss and time.monotonic() - measured_at >= RSS_CHECK_SECONDS:
                measured_at = time.monotonic()
                held = _rss(slot)
                if held > self.max_rss:
                    mib, limit = held / 2**20, self.max_rss / 2**20
                    message = f"the worker process held {mib:.0f} MiB, more than --process-max-rss ({limit:.0f} MiB)"
                    return _failure(MEMORY_LIMIT_EXCEEDED, message), False
            ended = self._next_message()
            if ended is not None:
                return ended

    def _next_message(self) -> tuple[ProcessOutcome, bool] | None:
        """Relay one message, if one came; the call's end when it ended."""
        slot = self.slot
        try:
            message = slot.conn.recv() if slot.conn.poll(POLL_SECONDS) else None
        except (EOFError, OSError):
            return self._died()
        except Exception as exc:  # bytes that do not unpickle: nothing more from this pipe can be trusted
            return _failure(ErrorType.SERVER_ERROR, f"the worker process sent a message that is not one: {exc}"), False
        if message is None:
            return None if slot.process.is_alive() else self._died()
        if not isinstance(message, tuple) or len(message) < 2:
            return _failure(ErrorType.SERVER_ERROR, f"the worker process sent {str(message)[:80]!r}"), False
        run, kind, *payload = message
        if run != self.number:
            return None  # a late line of an earlier task's thread: it belongs to no current run
        handle = _HANDLERS.get(kind)
        if handle is None:
            return _failure(ErrorType.SERVER_ERROR, f"the worker process sent an unknown message {kind!r}"), False
        return handle(self, payload)

    def _died(self) -> tuple[ProcessOutcome, bool]:
        self.slot.process.join(timeout=1)
        if self.stopped_at is not None:
            return ProcessOutcome(None), False
        return _failure(WORKER_PROCESS_DIED, _how_it_died(self.slot.process.exitcode)), False

    def _progress(self, payload: list[Any]) -> None:
        percent, message, current, total = payload
        self.relay.progress(percent, message, current, total)

    def _log(self, payload: list[Any]) -> None:
        (data,) = payload
        self.relay.log(data)

    def _submit(self, payload: list[Any]) -> None:
        (spec,) = payload
        try:
            if self.relay.children is None:
                raise ChildSubmitError("this server cannot submit child tasks here")
            answer: tuple[Any, ...] = ("submitted", self.relay.children.submit(spec))
        except ChildSubmitError as exc:
            answer = ("refused", str(exc))
        self.slot.conn.send(answer)

    def _states(self, payload: list[Any]) -> None:
        (task_ids,) = payload
        self.slot.conn.send(("states", self.relay.children.states(task_ids) if self.relay.children else []))

    def _done(self, payload: list[Any]) -> tuple[ProcessOutcome, bool]:
        (result_json,) = payload
        return ProcessOutcome(TaskState.SUCCESS, result_json=result_json), True

    def _stopped(self, payload: list[Any]) -> tuple[ProcessOutcome, bool]:
        return ProcessOutcome(None), True

    def _failed(self, payload: list[Any]) -> tuple[ProcessOutcome, bool]:
        name, text, formatted, names = payload
        raised = RaisedElsewhere(text, tuple(names)) if names else None
        return ProcessOutcome(TaskState.FAILURE, error=TaskError(name, text, formatted), raised=raised), True


_Handler = Callable[[_Call, list[Any]], "tuple[ProcessOutcome, bool] | None"]
_HANDLERS: dict[str, _Handler] = {
    "progress": _Call._progress,
    "log": _Call._log,
    "done": _Call._done,
    "stopped": _Call._stopped,
    "failed": _Call._failed,
    "submit": _Call._submit,
    "states": _Call._states,
}


def _failure(error_type: str, message: str) -> ProcessOutcome:
    return ProcessOutcome(TaskState.FAILURE, error=TaskError(error_type, message))


def _keep_out_of_proc() -> None:
    """Make the server non-dumpable (prctl PR_SET_DUMPABLE 0): a process of its user (a handler in a worker process)
    can then no longer open the server's /proc/<pid>/fd, mem or environ, only root can. It also means no core file
    and no py-spy but as root; a process still reaches its own /proc/self."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            log.warning("cannot make the server non-dumpable: %s", os.strerror(ctypes.get_errno()))
    except (OSError, AttributeError) as exc:  # not Linux
        log.warning("cannot make the server non-dumpable: %s", exc)


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
