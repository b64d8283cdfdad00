"""TaskContext: what a handler gets to report progress and to notice a stop."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskservice.core.handlers.children import ChildMaker
from taskservice.core.model.errors import StopTask

if TYPE_CHECKING:
    from taskservice.core.handlers.children import Children, ChildTask
    from taskservice.core.handlers.paths import DataRoot, OpenedFolder, OpenedPaths
    from taskservice.handles import TaskCall

# Progress counts travel as int64 (protobuf) and are stored as SQLite INTEGER.
INT64_MAX = 2**63 - 1

ProgressSink = Callable[[float | None, str, int | None, int | None], None]
LogSink = Callable[[bytes], None]


def check_progress(percent: object, current: object, total: object) -> None:
    """ValueError, in the handler's own frame, for progress no watcher could be shown (a thread and a worker
    process check alike)."""
    for name, count in (("current", current), ("total", total)):
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or abs(count) > INT64_MAX):
            raise ValueError(f"ctx.progress({name}=...) must be a whole number within 64 bits, got {count!r}")
    if percent is not None and (
        isinstance(percent, bool) or not isinstance(percent, int | float) or not math.isfinite(percent)
    ):
        raise ValueError(f"ctx.progress(percent=...) must be a finite number, got {percent!r}")


class StopSignal:
    """Set once, when a stop or the time limit is pending; like threading.Event, but a task's signal costs
    nothing to make until something waits on it (most handlers only look at it, between units of work)."""

    __slots__ = ("_condition", "_set")
    _making = threading.Lock()

    def __init__(self) -> None:
        self._set = False
        self._condition: threading.Condition | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        condition = self._condition
        if condition is not None:
            with condition:
                condition.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until set (True) or `timeout` seconds pass (False)."""
        if self._set:
            return True
        if timeout is not None and timeout <= 0:
            return False
        condition = self._condition
        if condition is None:
            # One lock for every task's first wait only: a handler sleeping in steps takes it once, not each step.
            with StopSignal._making:
                if self._condition is None:
                    self._condition = threading.Condition(threading.Lock())
                condition = self._condition
        deadline = None if timeout is None else time.monotonic() + timeout
        with condition:
            while not self._set:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                condition.wait(left)
        return self._set


class TaskContext:
    """Handed to a handler as its first argument.

    A handler that reports progress is stoppable for free: progress() raises StopTask once a stop or
    the time limit is pending. Long stretches without progress should call check_stop(), or wait with
    sleep(), which wakes at once on a stop instead of at its end.
    """

    def __init__(
        self,
        *,
        task_id: str,
        task_type: str,
        attempt: int,
        args: dict[str, Any],
        stop_event: StopSignal | threading.Event,
        report: ProgressSink,
        deadline: float | None,
        log_sink: LogSink | None = None,
        stop_grace: float = 5.0,
        data_root: DataRoot | None = None,
        paths: OpenedPaths | None = None,
        trace_context: dict[str, str] | None = None,
        children: Children | None = None,
    ) -> None:
        self.task_id = task_id
        self.task_type = task_type
        self.attempt = attempt
        self.args = args
        # time.monotonic() value at which the time limit passes; None without a limit.
        self.deadline = deadline
        # Seconds the server waits after a stop before it abandons the handler; a handler that has to
        # clean up (kill a child process) must finish within it.
        self.stop_grace = stop_grace
        # The folder path args are resolved in (absolute), when the server has one.
        self.data_root: Path | None = data_root.root if data_root is not None else None
        # Bytes a handler writing files must leave free on their file system (--min-free-space).
        self.min_free_bytes = data_root.min_free_bytes if data_root is not None else 0
        # The run's trace context as propagation headers (`traceparent`, ...), empty when tracing is off: a
        # handler that calls other services passes it on; its own OpenTelemetry spans nest under the run already.
        self.trace_context: dict[str, str] = trace_context or {}
        self._root = data_root
        self._paths = paths
        self._stop_event = stop_event
        self._report = report
        self._log_sink = log_sink
        self._children = ChildMaker(task_id, children)

    @property
    def stop_requested(self) -> bool:
        """True once a client asked to stop this task or its time limit passed."""
        return self._stop_event.is_set()

    def check_stop(self) -> None:
        """Raise StopTask if a stop is pending; call it between units of work."""
        if self._stop_event.is_set():
            raise StopTask()

    def progress(
        self,
        percent: float | None = None,
        message: str = "",
        *,
        current: int | None = None,
        total: int | None = None,
    ) -> None:
        """Record progress, then raise StopTask if a stop is pending.

        percent is derived from current/total when not given. Cheap enough to call thousands of times
        a second: watchers get the latest value and the store writes it at a throttled rate.
        """
        self._report(percent, message, current, total)
        self.check_stop()

    def sleep(self, seconds: float) -> None:
        """Wait up to `seconds`, raising StopTask at once when a stop arrives meanwhile."""
        if self._stop_event.wait(max(0.0, seconds)):
            raise StopTask()

    def log(self, message: str) -> None:
        """Add a line to this task's log (`taskctl logs ID`)."""
        self.write_log((message if message.endswith("\n") else message + "\n").encode("utf-8", "replace"))

    def write_log(self, data: bytes) -> None:
        """Add raw bytes to this task's log, e.g. a child process's output."""
        if self._log_sink is not None:
            self._log_sink(data)

    def given_path(self, name: str) -> str:
        """The path arg `name` as the client sent it (the handler's own value is a descriptor path), for
        messages and for names such as the one a gzip header records."""
        return self._paths.given.get(name, "") if self._paths is not None else ""

    @property
    def path_fds(self) -> tuple[int, ...]:
        """The descriptors behind this task's path args: a child process that opens them needs them passed."""
        return self._paths.fds if self._paths is not None else ()

    def open_folder(self, relative: str) -> OpenedFolder:
        """A folder under the data root, made when missing, held open by descriptor (close it when done)."""
        if self._root is None:
            raise RuntimeError("this server has no data root")
        return self._root.open_folder(relative)

    def wait_for_stop(self, timeout: float | None = None) -> bool:
        """Block until a stop is pending (True) or `timeout` seconds pass (False); never raises."""
        return self._stop_event.wait(timeout)

    def submit(
        self,
        task: str | TaskCall[Any],
        args: dict[str, Any] | None = None,
        *,
        key: str | None = None,
        detached: bool = False,
        **options: Any,
    ) -> str:
        """Submit a child task: a type name and its args, or a handle's bind(...); its id. `options` are Submit's
        (priority, labels, time_limit, delay, not_before, retention, after, task_id).

        The child records this task as its parent; a Stop of this task stops it while unfinished, unless
        `detached`. Its id is `<this id>.<key>`, the key counting 1, 2, ... in submission order unless given, so
        that a retried attempt submitting the same children again gets the same children. StopTask if this task
        is being stopped; ChildSubmitError if the server refuses the child."""
        self.check_stop()
        return self._children.submit(task, args, key=key, detached=detached, **options)

    def wait(self, task_ids: list[str], timeout: float | None = None) -> list[ChildTask]:
        """Wait until every one of these tasks ended; each as it ended (ChildTask: state, result, error), in order.
        Raises StopTask at once when this task is stopped meanwhile, TimeoutError after `timeout` seconds.
        The worker slot stays taken, but idle."""
        return self._children.wait(task_ids, timeout, self._stop_event.wait)
