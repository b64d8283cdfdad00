"""The state of a stream across reconnects (watch, logs, many tasks, wait), shared by the sync and async clients."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc
import grpc.aio

from taskservice.client.convert import event_from_pb, task_from_pb
from taskservice.client.errors import (
    DeadlineExceeded,
    OutOfRange,
    TaskServiceError,
    Unavailable,
    connection_hint,
    error_from_rpc,
)
from taskservice.client.models import LogChunk, Task, TaskEvent
from taskservice.client.security import Security
from taskservice.client.wire import seconds_to_duration
from taskservice.v1 import task_service_pb2 as pb

# Backoff between watch reconnect attempts: first delay, cap (seconds) and relative jitter.
BACKOFF_INITIAL = 0.1
BACKOFF_MAX = 1.0
BACKOFF_JITTER = 0.2
# wait(): one WaitTask call waits at most this long (a lost connection or a proxy's idle limit then costs one
# call, retried), and its deadline leaves the server this much longer to answer "not yet".
_WAIT_CALL_SECONDS = 60.0
_WAIT_CALL_GRACE = 5.0


class WatchCursor:
    """The state of one watch across reconnects, shared by the sync and async clients.

    It remembers the last sequence seen (to resume after it and to drop replayed events), keeps the
    bounded reconnect budget, and decides after each failed or cut stream whether and when to retry.
    """

    def __init__(
        self,
        task_id: str,
        after_sequence: int,
        *,
        reconnect_timeout: float,
        timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        security: Security | None = None,
        started: float | None = None,
    ) -> None:
        """`started`: when the timeout began (default: now), for a watch that continues an earlier wait."""
        self.task_id = task_id
        self._security = security
        self.last_sequence = after_sequence
        self.final: TaskEvent | None = None
        self._reconnect_timeout = reconnect_timeout
        self._timeout = timeout
        self._clock = clock
        self.started = clock() if started is None else started
        self._deadline = None if timeout is None else self.started + timeout
        self._failing_since: float | None = None
        self._failures = 0
        # Reconnecting is for a connection that was lost; a watch that never got an event fails at once
        # (a wrong address should not make `taskctl watch` hang for reconnect_timeout).
        self._connected = False
        # After OUT_OF_RANGE the fresh snapshot may carry any sequence (e.g. a restarted server).
        self._resync = False
        self._error: TaskServiceError | None = None
        # Messages of the current stream, and whether the server said the task ended at last_sequence.
        self._received = 0
        self._ended_at_resume = False

    @property
    def done(self) -> bool:
        return self.final is not None or self._ended_at_resume

    def request(self) -> pb.WatchProgressRequest:
        return pb.WatchProgressRequest(task_id=self.task_id, after_sequence=self.last_sequence)

    def call_timeout(self) -> float | None:
        """The deadline for the next stream: what is left of the overall timeout."""
        if self._deadline is None:
            return None
        left = self._deadline - self._clock()
        if left <= 0:
            raise self._timed_out()
        return left

    def accept(self, message: pb.WatchProgressResponse) -> tuple[TaskEvent, ...]:
        """The events to yield for `message`: none when it was seen before a reconnect, else one."""
        event = event_from_pb(message)
        self._received += 1
        self._failing_since, self._failures, self._connected = None, 0, True
        if not self._resync and event.sequence <= self.last_sequence:
            return ()
        self._resync = False
        self.last_sequence = event.sequence
        if event.state.is_terminal:
            self.final = event
        return (event,)

    @contextlib.contextmanager
    def attempt(self, stream: grpc.Call | grpc.aio.Call) -> Iterator[None]:
        """Wraps the reading of one stream: notes why it ended (for next_delay) and always cancels it,
        which frees the call when the caller stops iterating early."""
        self._error = None
        self._received = 0
        try:
            yield
        except grpc.RpcError as err:
            self._error = error_from_rpc(err)
            if self._security is not None:
                self._error = connection_hint(self._error, self._security)
        finally:
            stream.cancel()
        if self._error is None:
            self._ended_cleanly()

    def _ended_cleanly(self) -> None:
        """A stream ended with OK. A watch must have reached the terminal event; else it is retried.

        A resumed stream that ends OK at once means the task ended at exactly the sequence resumed after.
        """
        if not self.done and self._received == 0 and self.last_sequence > 0 and not self._resync:
            self._ended_at_resume = True
        if not self.done:
            self._error = self.ended_early()

    def next_delay(self) -> float:
        """After an attempt that did not reach the end: seconds to wait before the next, or raise."""
        return self.retry_delay(self._error or self.ended_early())

    def ended_early(self) -> Unavailable:
        """The error for a stream that ended OK before a terminal event (retried like a lost connection)."""
        return Unavailable(f"the watch of task {self.task_id!r} ended before the task did")

    def retry_delay(self, err: TaskServiceError) -> float:
        """Seconds to wait before the next attempt after `err`, or raise when it is not worth retrying."""
        if self._deadline is not None and self._clock() >= self._deadline:
            raise self._timed_out() from err
        if isinstance(err, OutOfRange) and self.last_sequence != 0:
            # The events after last_sequence are gone: start again from a fresh snapshot.
            self.last_sequence, self._resync = 0, True
            return 0.0
        if not isinstance(err, Unavailable) or not self._connected:
            raise err
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
        budget = self._failing_since + self._reconnect_timeout - now
        if budget <= 0:
            raise Unavailable(
                f"{err.message} (gave up reconnecting the watch of task {self.task_id!r} "
                f"after {self._reconnect_timeout:g}s)",
                field_violations=err.field_violations,
            ) from err
        delay = min(BACKOFF_MAX, BACKOFF_INITIAL * 2.0**self._failures)
        delay *= 1 + random.uniform(-BACKOFF_JITTER, BACKOFF_JITTER)
        self._failures += 1
        if self._deadline is not None:
            budget = min(budget, self._deadline - now)
        return max(0.0, min(delay, budget))

    def final_task(self) -> Task | None:
        return self.final.task if self.final is not None else None

    def _timed_out(self) -> DeadlineExceeded:
        return DeadlineExceeded(f"task {self.task_id!r} did not finish within {self._timeout:g}s")


class WaitCursor(WatchCursor):
    """One wait() across WaitTask calls: the overall timeout, and reconnects on UNAVAILABLE as a watch's."""

    def __init__(self, task_id: str, **options: Any) -> None:
        super().__init__(task_id, 0, **options)
        self.task: Task | None = None

    @property
    def done(self) -> bool:
        return self.task is not None and self.task.state.is_terminal

    def wait_request(self) -> tuple[pb.WaitTaskRequest, float]:
        """The next call: its request and its deadline (DeadlineExceeded once the overall timeout passed)."""
        wait = _WAIT_CALL_SECONDS
        if self._deadline is not None:
            left = self._deadline - self._clock()
            if left <= 0 and self.task is not None:  # the first call always asks, even with a timeout of 0
                raise self._timed_out()
            wait = min(max(left, 0.0), _WAIT_CALL_SECONDS)
        request = pb.WaitTaskRequest(task_id=self.task_id, timeout=seconds_to_duration(wait))
        return request, wait + _WAIT_CALL_GRACE

    def accept_wait(self, response: pb.WaitTaskResponse) -> Task | None:
        """The ended task, or None to call again; DeadlineExceeded when the timeout passed before the end."""
        self._failing_since, self._failures, self._connected = None, 0, True
        self.task = task_from_pb(response.task)
        if response.done:
            return self.task
        if self._deadline is not None and self._clock() >= self._deadline:
            raise self._timed_out()
        return None

    def _timed_out(self) -> DeadlineExceeded:
        now = f" (still {self.task.state.value})" if self.task is not None else ""
        error = DeadlineExceeded(f"task {self.task_id!r} did not finish within {self._timeout:g}s{now}")
        error.task = self.task
        return error


def unimplemented(err: TaskServiceError) -> bool:
    """A server older than WaitTask: wait() falls back to watching."""
    return err.code is grpc.StatusCode.UNIMPLEMENTED


class ManyCursor(WatchCursor):
    """The state of one WatchTasks across reconnects: per task, the last sequence seen; done once every task has
    ended. A reconnect asks again for the tasks not ended, each after its own last sequence."""

    def __init__(self, task_ids: Sequence[str], *, ignore_missing: bool, reconnect_timeout: float,
                 timeout: float | None, security: Security | None) -> None:  # fmt: skip
        super().__init__(f"{len(task_ids)} tasks", 0, reconnect_timeout=reconnect_timeout, timeout=timeout,
                         security=security)  # fmt: skip
        self._ignore_missing = ignore_missing
        self._open = dict.fromkeys(task_ids, 0)  # task id -> the last sequence seen of it

    @property
    def done(self) -> bool:
        return not self._open

    def request(self) -> pb.WatchTasksRequest:  # type: ignore[override]
        return pb.WatchTasksRequest(
            task_ids=list(self._open),
            after_sequences={task_id: seen for task_id, seen in self._open.items() if seen},
            ignore_missing=self._ignore_missing,
        )

    def accept(self, message: pb.WatchTasksResponse) -> tuple[TaskEvent, ...]:  # type: ignore[override]
        self._received += 1
        self._failing_since, self._failures, self._connected = None, 0, True
        fresh: list[TaskEvent] = []
        for item in message.events:
            event = event_from_pb(item)
            seen = self._open.get(event.task_id)
            if seen is None or event.sequence <= seen:
                continue  # ended already, or seen before a reconnect
            if event.state.is_terminal:
                del self._open[event.task_id]
            else:
                self._open[event.task_id] = event.sequence
            fresh.append(event)
        return tuple(fresh)

    def _ended_cleanly(self) -> None:
        """The server ends a WatchTasks OK only once every task it watched has ended: those still open ended
        before the sequence resumed after, or do not exist (ignore_missing)."""
        self._open.clear()


class LogCursor(WatchCursor):
    """The state of one WatchLogs across reconnects: the next offset; done when a stream ends with OK."""

    def __init__(
        self, task_id: str, offset: int, follow: bool, *, reconnect_timeout: float, security: Security | None = None
    ) -> None:
        super().__init__(task_id, 0, reconnect_timeout=reconnect_timeout, security=security)
        self.offset = offset
        self.follow = follow
        self._finished = False

    @property
    def done(self) -> bool:
        return self._finished

    def request(self) -> pb.WatchLogsRequest:  # type: ignore[override]
        return pb.WatchLogsRequest(task_id=self.task_id, offset=self.offset, follow=self.follow)

    def accept(self, message: pb.WatchLogsResponse) -> tuple[LogChunk, ...]:  # type: ignore[override]
        self._failing_since, self._failures, self._connected = None, 0, True
        skip = max(0, self.offset - message.offset)  # bytes already yielded before a reconnect
        data = message.data[skip:]
        if not data:
            return ()
        start = message.offset + skip
        self.offset = start + len(data)
        return (LogChunk(message.task_id, start, data),)

    def _ended_cleanly(self) -> None:
        self._finished = True

    def ended_early(self) -> Unavailable:
        return Unavailable(f"the log stream of task {self.task_id!r} was cut")
