"""WatchTasks: the events of many tasks in one stream, each as WatchProgress would send them.

One Watcher per task, all waking the same stream; the stream drains only the watchers that have something (a
ready set the publishing threads fill), so 10,000 quiet tasks cost nothing per event of one of them. A slow
client gets each task's latest progress and every state change, as on WatchProgress. The stream ends OK right
after the last task's terminal event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from taskservice.core.engine.manager import WorkerManager
from taskservice.core.engine.validation import check_task_id
from taskservice.core.model.errors import InvalidRequest, SequenceOutOfRange, TaskNotFound
from taskservice.core.model.events import Watcher
from taskservice.core.model.listing import every_match
from taskservice.core.model.models import TaskEvent, TaskFilter, TaskState
from taskservice.server import convert
from taskservice.server.waker import LoopWaker
from taskservice.v1 import task_service_pb2 as pb

MAX_WATCHED = 10_000
UNFINISHED = frozenset({TaskState.PENDING, TaskState.RUNNING, TaskState.STOPPING})
# ListTasks pages read to find the tasks a filter names.
PAGE = 1000

Read = Callable[..., Awaitable[Any]]


class ManyWatch:
    """One WatchTasks call: attach() its watchers, then events() until every task has ended; close() always."""

    def __init__(self, manager: WorkerManager, waker: LoopWaker, read: Read) -> None:
        self._manager = manager
        self._waker = waker
        self._read = read
        self.wake = asyncio.Event()
        self._watchers: dict[str, Watcher] = {}
        self._ready: set[str] = set()  # tasks whose watcher has events; filled from the publishing threads
        self._open: set[str] = set()  # tasks whose terminal event has not been sent yet

    async def attach(self, request: pb.WatchTasksRequest) -> None:
        """Watch what the request names; InvalidRequest, TaskNotFound as the contract says."""
        task_ids = await self._task_ids(request)
        missing: list[str] = []
        unread: list[str] = []
        for task_id in task_ids:
            watcher = self._watcher_for(task_id)
            after = request.after_sequences.get(task_id, 0)
            more = self._attach_now(task_id, watcher, after)
            if more is None:
                unread.append(task_id)
            elif more:
                self._open.add(task_id)
        if unread:  # tasks not in memory: read from storage, all in one call off the event loop
            for task_id, more in await self._read(self._attach_stored, unread, dict(request.after_sequences)):
                if more is None:
                    missing.append(task_id)
                elif more:
                    self._open.add(task_id)
        if missing and not request.ignore_missing:
            shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
            raise TaskNotFound(shown)

    def _watcher_for(self, task_id: str) -> Watcher:
        def ready() -> None:
            self._ready.add(task_id)
            self._waker.wake(self.wake)

        watcher = self._watchers[task_id] = Watcher(notify=ready)
        return watcher

    def _attach_now(self, task_id: str, watcher: Watcher, after: int) -> bool | None:
        """watch_now(): None when the task must be read from storage (or is not there at all)."""
        try:
            return self._manager.watch_now(task_id, watcher, after)
        except SequenceOutOfRange:  # those events are no longer kept: from a fresh snapshot
            return self._manager.watch_now(task_id, watcher, 0)
        except TaskNotFound:
            return None

    def _attach_stored(self, task_ids: list[str], afters: dict[str, int]) -> list[tuple[str, bool | None]]:
        """On a read thread: attach the watchers of tasks that must be read from storage; None for a missing one."""
        attached: list[tuple[str, bool | None]] = []
        for task_id in task_ids:
            watcher = self._watchers[task_id]
            try:
                try:
                    more: bool | None = self._manager.watch(task_id, watcher, afters.get(task_id, 0))
                except SequenceOutOfRange:
                    more = self._manager.watch(task_id, watcher, 0)
            except TaskNotFound:
                more = None
            attached.append((task_id, more))
        return attached

    async def _task_ids(self, request: pb.WatchTasksRequest) -> list[str]:
        if request.task_ids:
            if request.states or request.task_type or request.labels:
                raise InvalidRequest(
                    "WatchTasks names its tasks by id or by filter, not both",
                    [("task_ids", "leave it empty to watch the tasks the filters match, or leave the filters out")],
                )
            task_ids = list(dict.fromkeys(request.task_ids))
            if len(task_ids) > MAX_WATCHED:
                raise InvalidRequest(
                    f"{len(task_ids)} tasks in one WatchTasks, more than {MAX_WATCHED}",
                    [("task_ids", f"at most {MAX_WATCHED}; open more streams for more")],
                )
            for task_id in task_ids:
                check_task_id(task_id)
            return task_ids
        task_filter = _unfinished_filter(request)
        matching: list[str] = await self._read(self._matching, task_filter)
        return matching

    def _matching(self, task_filter: TaskFilter) -> list[str]:
        """On a read thread: the ids of the tasks the filter matches now, at most MAX_WATCHED."""
        found: list[str] = []
        for task in every_match(self._manager.list, task_filter, PAGE):
            found.append(task.task_id)
            if len(found) > MAX_WATCHED:
                raise InvalidRequest(
                    f"more than {MAX_WATCHED} unfinished tasks match",
                    [("states", f"narrow the filters to at most {MAX_WATCHED} tasks, or name the tasks by id")],
                )
        return found

    def events(self) -> list[TaskEvent]:
        """What the ready watchers hold now; a task whose terminal event is among them leaves the stream."""
        taken: list[TaskEvent] = []
        while self._ready:
            task_id = self._ready.pop()
            for event in self._watchers[task_id].drain():
                taken.append(event)
                if event.is_terminal:
                    self._open.discard(task_id)
        return taken

    @property
    def done(self) -> bool:
        return not self._open

    def close(self) -> None:
        for task_id, watcher in self._watchers.items():
            self._manager.unwatch(task_id, watcher)


def _unfinished_filter(request: pb.WatchTasksRequest) -> TaskFilter:
    asked = frozenset(convert.state_from_proto(number, "states") for number in request.states)
    if not asked and not request.task_type and not request.labels:
        raise InvalidRequest(
            "WatchTasks needs task ids or a filter",
            [("task_ids", "name the tasks, or filter by states, task_type or labels")],
        )
    states = (asked & UNFINISHED) if asked else UNFINISHED
    if asked and not states:
        raise InvalidRequest(
            "WatchTasks watches unfinished tasks; the states asked for are all ended ones",
            [("states", "PENDING, RUNNING or STOPPING (empty: all three)")],
        )
    return TaskFilter(states=states, task_type=request.task_type, labels=tuple(sorted(request.labels.items())))


# Events sent in one WatchTasksResponse at most (their encodings' bytes): well under the message size limit.
MESSAGE_BYTES = 1 << 20


def wrapped(event: bytes) -> bytes:
    """An encoded WatchProgressResponse as one entry of WatchTasksResponse.events (field 1, length-delimited):
    the encoding WatchProgress streams share is reused as it is, and entries concatenated make the message."""
    size, prefix = len(event), bytearray(b"\x0a")
    while size >= 0x80:
        prefix.append(size & 0x7F | 0x80)
        size >>= 7
    prefix.append(size)
    return bytes(prefix) + event


async def stream(
    watch: ManyWatch, encode: Callable[[TaskEvent], bytes], closing: Callable[[], bool], context: Any
) -> AsyncIterator[bytes]:
    """The encoded WatchTasksResponse messages of `watch` until every task ended; UNAVAILABLE when the server shuts
    down."""
    while not watch.done:
        watch.wake.clear()
        events = watch.events()
        if not events:
            if closing():
                await context.abort(
                    grpc.StatusCode.UNAVAILABLE,
                    "the server is shutting down; watch again with after_sequences to resume",
                )
            await watch.wake.wait()
            continue
        message = bytearray()
        for event in events:
            message += wrapped(encode(event))
            if len(message) >= MESSAGE_BYTES:
                yield bytes(message)  # a slow client blocks here; meanwhile each task's watcher coalesces
                message.clear()
        if message:
            yield bytes(message)
