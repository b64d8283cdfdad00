"""TaskService over gRPC: a thin adapter that converts, calls the manager, converts back."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError

from taskservice.core.engine.manager import SubmitSpec, WorkerManager
from taskservice.core.engine.validation import MAX_STOP_REASON, check_task_id
from taskservice.core.handlers.logs import Logs
from taskservice.core.model.errors import InvalidRequest, ShuttingDown, TaskServiceError
from taskservice.core.model.events import Watcher
from taskservice.core.model.models import Task, TaskEvent, TaskState
from taskservice.server import convert, convert_schedules
from taskservice.server.convert_listing import encode_page_token, listing_from_proto
from taskservice.server.limit_rpcs import LimitRpcs
from taskservice.server.rpc_errors import UndecodableRequest, abort_for, check_decoded
from taskservice.server.rpc_errors import unary as _unary
from taskservice.server.stats_rpcs import StatsRpcs
from taskservice.server.waker import LoopWaker
from taskservice.server.watch_many import ManyWatch
from taskservice.server.watch_many import stream as watch_stream
from taskservice.telemetry import current_carrier
from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

# How often WatchLogs with follow looks for new output of a running task.
LOG_POLL_SECONDS = 0.1
# WaitTask answers this long (at most a tenth of the time left) before the call's deadline.
WAIT_DEADLINE_MARGIN = 0.1
# Most requests one SubmitBatch may carry; with 16 MiB messages, more would mostly hit the size limit anyway.
MAX_BATCH = 10_000
# Tasks whose last encoded event is kept for their other watchers (see TaskServiceServicer._encode).
MAX_ENCODED_EVENTS = 10_000
# A ListTasks page stops short of this many bytes of tasks (messages are capped at 16 MiB; tasks can be 2 MiB).
MAX_PAGE_BYTES = 8 * 1024 * 1024


def _tolerant_parser(message_class: Any) -> Callable[[bytes], Any]:
    """Parse a request, or hand the servicer an UndecodableRequest so it can answer INVALID_ARGUMENT.

    grpc's own handling of a parse error is UNKNOWN with an internal exception name; a client deserves better.
    """

    def parse(data: bytes) -> Any:
        try:
            return message_class.FromString(data)
        except DecodeError as exc:
            return UndecodableRequest(message_class.DESCRIPTOR.full_name, str(exc))

    return parse


def _serializer(message_class: Any) -> Callable[[Any], bytes]:
    """Serialize a response; bytes pass as they are (an event encoded once for all of its watchers)."""
    serialize = message_class.SerializeToString

    def encode(message: Any) -> bytes:
        return message if isinstance(message, bytes) else serialize(message)

    return encode


def task_service_handler(servicer: TaskServiceServicer) -> grpc.GenericRpcHandler:
    """TaskService's method handlers, built from the proto's descriptor with tolerant request parsing."""
    service = pb.DESCRIPTOR.services_by_name["TaskService"]
    handlers = {}
    for method in service.methods:
        request_class = getattr(pb, method.input_type.name)
        response_class = getattr(pb, method.output_type.name)
        make = grpc.unary_stream_rpc_method_handler if method.server_streaming else grpc.unary_unary_rpc_method_handler
        handlers[method.name] = make(
            getattr(servicer, method.name),
            request_deserializer=_tolerant_parser(request_class),
            response_serializer=_serializer(response_class),
        )
    return grpc.method_handlers_generic_handler(service.full_name, handlers)


T = TypeVar("T")


class TaskServiceServicer(LimitRpcs, StatsRpcs, pb_grpc.TaskServiceServicer):
    def __init__(
        self, manager: WorkerManager, waker: LoopWaker, logs: Logs | None = None, reads: Executor | None = None
    ) -> None:
        self._manager = manager
        self._waker = waker
        self._logs = logs
        # Reads of the board may wait for the disk or the network: never on the event loop.
        self._reads = reads
        # Wake-up events of the open WatchProgress streams, so shutdown can end them.
        self._streams: set[asyncio.Event] = set()
        self._closing = False
        self._stats_lock, self._stats_cache = threading.Lock(), None  # GetStats' shared count (stats_rpcs.py)
        # The last event encoded per task: its watchers all get the same event object, so one encoding serves
        # them all (20 watchers of a task cost one conversion per event, not 20).
        self._encoded: OrderedDict[str, tuple[TaskEvent, bytes]] = OrderedDict()

    def _encode(self, event: TaskEvent) -> bytes:
        cached = self._encoded.get(event.task_id)
        if cached is not None and cached[0] is event:
            return cached[1]
        data = convert.event_to_proto(event).SerializeToString()
        if event.is_terminal:
            self._encoded.pop(event.task_id, None)
        else:
            self._encoded[event.task_id] = (event, data)
            if len(self._encoded) > MAX_ENCODED_EVENTS:
                self._encoded.popitem(last=False)
        return data

    def close_streams(self) -> None:
        """End every open WatchProgress with UNAVAILABLE, so clients reconnect to the next server."""
        self._closing = True
        for wake in self._streams:
            wake.set()

    @_unary
    async def Submit(self, request: pb.SubmitRequest, context: Any) -> pb.SubmitResponse:
        spec = convert.submit_spec_from_proto(request)
        submit = functools.partial(
            self._manager.submit_async,
            spec.task_type,
            spec.args,
            task_id=spec.task_id or None,
            time_limit=spec.time_limit,
            priority=spec.priority,
            labels=spec.labels,
            not_before=spec.not_before,
            delay=spec.delay,
            retention=spec.retention,
            after=spec.after,
            trace_context=current_carrier(),
        )
        # Off the event loop when it reads storage: a disk (or a slow file system under --data-root) must not
        # hold up every other call.
        pending = await self._read(submit) if self._manager.submit_reads_storage([spec]) else submit()
        outcome = await self._waker.wrap(pending)
        return pb.SubmitResponse(task=convert.task_to_proto(outcome.task), created=outcome.created)

    @_unary
    async def SubmitBatch(self, request: pb.SubmitBatchRequest, context: Any) -> pb.SubmitBatchResponse:
        if len(request.requests) > MAX_BATCH:
            raise InvalidRequest(
                f"{len(request.requests)} requests in one batch, more than {MAX_BATCH}",
                [("requests", f"send at most {MAX_BATCH} per call")],
            )
        specs: list[SubmitSpec | TaskServiceError] = []
        for index, item in enumerate(request.requests):
            try:
                specs.append(convert.submit_spec_from_proto(item))
            except TaskServiceError as exc:
                exc.message = f"requests[{index}]: {exc.message}"
                specs.append(exc)
        carrier = current_carrier()
        valid = [dataclasses.replace(spec, trace_context=carrier) if carrier else spec
                 for spec in specs if isinstance(spec, SubmitSpec)]  # fmt: skip
        if self._manager.submit_reads_storage(valid):
            submitted = await self._read(self._manager.submit_many, valid)
        else:
            submitted = self._manager.submit_many(valid)
        answers = await self._waker.wrap(submitted)
        outcomes = iter(answers)
        results = [convert.batch_result_to_proto(spec if isinstance(spec, TaskServiceError) else next(outcomes))
                   for spec in specs]  # fmt: skip
        return pb.SubmitBatchResponse(results=results)

    def unready_reason(self) -> str:
        """Why this server should get no new work now ("" when it should): as gRPC health says NOT_SERVING."""
        if not self._manager.accepting:
            return "the server is shutting down"
        if not self._manager.store_writable:
            return "the task database refuses writes"
        return ""

    async def _task(self, task_id: str) -> Task:
        """A task as it is now: from memory when this server runs it, else read off the event loop."""
        task = self._manager.get_now(task_id)
        return task if task is not None else await self._read(self._manager.get, task_id)

    async def _read(self, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` on the read threads."""
        return await asyncio.get_running_loop().run_in_executor(self._reads, functools.partial(function, *args))

    @_unary
    async def GetState(self, request: pb.GetStateRequest, context: Any) -> pb.GetStateResponse:
        check_task_id(request.task_id)
        task = await self._task(request.task_id)
        waiting = await self._read(self._manager.board.waiting_for, [task]) if task.state is TaskState.PENDING else {}
        return pb.GetStateResponse(task=convert.task_to_proto(task, waiting.get(task.task_id)))

    @_unary
    async def Stop(self, request: pb.StopRequest, context: Any) -> pb.StopResponse:
        check_task_id(request.task_id)
        # Off the event loop: a task that has ended is read from storage.
        stopping = await self._read(self._manager.stop_async, request.task_id, request.reason[:MAX_STOP_REASON])
        task = await self._waker.wrap(stopping)
        return pb.StopResponse(task=convert.task_to_proto(task))

    @_unary
    async def ListTasks(self, request: pb.ListTasksRequest, context: Any) -> pb.ListTasksResponse:
        listing = listing_from_proto(request, time.time())
        page_size = convert.page_size_from_proto(request.page_size)
        if len(request.labels) > convert.MAX_LABEL_FILTERS:
            return pb.ListTasksResponse()  # no task has that many labels (and SQLite limits the filters)
        page = await self._read(self._manager.list, listing.task_filter, page_size, listing.after, listing.order)
        waiting = await self._read(self._manager.board.waiting_for, page.tasks)
        tasks: list[pb.Task] = []
        size = 0
        following = page.next
        for shown, task in enumerate(page.tasks):
            message = convert.task_to_proto(task, waiting.get(task.task_id))
            size += message.ByteSize()
            if tasks and size > MAX_PAGE_BYTES:
                following = listing.order.after(page.tasks[shown - 1])  # the rest, from this task on, next
                break
            tasks.append(message)
        return pb.ListTasksResponse(tasks=tasks, next_page_token=encode_page_token(listing.order, following))

    async def WatchProgress(  # type: ignore[override] # yields messages already encoded (see _encode)
        self, request: pb.WatchProgressRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:  # encoded WatchProgressResponse messages
        wake = asyncio.Event()
        watcher = Watcher(notify=lambda: self._waker.wake(wake))
        try:
            check_decoded(request)
            check_task_id(request.task_id)
            more = self._manager.watch_now(request.task_id, watcher, request.after_sequence)
            if more is None:
                more = await self._read(self._manager.watch, request.task_id, watcher, request.after_sequence)
        except Exception as exc:
            await abort_for(context, exc)
        if not more:
            return  # resumed after the terminal event: nothing follows it, the stream ends OK
        self._streams.add(wake)
        try:
            while True:
                wake.clear()
                events = watcher.drain()
                if not events:
                    if self._closing:
                        await context.abort(
                            grpc.StatusCode.UNAVAILABLE,
                            "the server is shutting down; watch again with after_sequence to resume",
                        )
                    await wake.wait()
                    continue
                for event in events:
                    # A slow client blocks here; meanwhile the watcher coalesces its progress.
                    yield self._encode(event)
                    if event.is_terminal:
                        return
        finally:
            self._streams.discard(wake)
            self._manager.unwatch(request.task_id, watcher)

    async def WatchTasks(  # type: ignore[override] # yields messages already encoded (see _encode)
        self, request: pb.WatchTasksRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:  # encoded WatchTasksResponse messages
        watch = ManyWatch(self._manager, self._waker, self._read)
        try:
            try:
                check_decoded(request)
                await watch.attach(request)
            except Exception as exc:
                await abort_for(context, exc)
            self._streams.add(watch.wake)
            async for data in watch_stream(watch, self._encode, lambda: self._closing, context):
                yield data
        finally:
            self._streams.discard(watch.wake)
            watch.close()

    @_unary
    async def StopTasks(self, request: pb.StopTasksRequest, context: Any) -> pb.StopTasksResponse:
        task_filter = convert.stop_filter_from_proto(request)
        if len(request.labels) > convert.MAX_LABEL_FILTERS:
            return pb.StopTasksResponse()  # no task has that many labels (as in ListTasks)
        reason = request.reason[:MAX_STOP_REASON]
        count = await self._read(self._manager.stop_matching, task_filter, reason)
        return pb.StopTasksResponse(revoked=count.revoked, stopping=count.stopping)

    @_unary
    async def DeleteTask(self, request: pb.DeleteTaskRequest, context: Any) -> pb.DeleteTaskResponse:
        check_task_id(request.task_id)
        # On a read thread: the board reads the ended task from storage before it deletes it.
        task = await self._read(lambda: self._manager.delete_async(request.task_id).result())
        return pb.DeleteTaskResponse(task=convert.task_to_proto(task))

    # ------------------------------------------------------------------ schedules (their board calls on read threads)

    @_unary
    async def CreateSchedule(self, request: pb.CreateScheduleRequest, context: Any) -> pb.CreateScheduleResponse:
        spec, paused = convert_schedules.schedule_spec_from_proto(request.schedule)
        schedule, created = await self._read(
            lambda: self._manager.schedules.create(spec, paused=paused, validate_only=request.validate_only)
        )
        return pb.CreateScheduleResponse(schedule=convert_schedules.schedule_to_proto(schedule), created=created)

    @_unary
    async def GetSchedule(self, request: pb.GetScheduleRequest, context: Any) -> pb.GetScheduleResponse:
        schedule = await self._read(self._manager.schedules.get, _schedule_id(request.schedule_id))
        return pb.GetScheduleResponse(schedule=convert_schedules.schedule_to_proto(schedule))

    @_unary
    async def ListSchedules(self, request: pb.ListSchedulesRequest, context: Any) -> pb.ListSchedulesResponse:
        page_size = convert.page_size_from_proto(request.page_size)
        after_id = convert_schedules.decode_id_page_token(request.page_token)
        found, next_after = await self._read(self._manager.schedules.list, page_size, after_id)
        return pb.ListSchedulesResponse(
            schedules=[convert_schedules.schedule_to_proto(schedule) for schedule in found],
            next_page_token=convert_schedules.encode_id_page_token(next_after),
        )

    @_unary
    async def PauseSchedule(self, request: pb.PauseScheduleRequest, context: Any) -> pb.PauseScheduleResponse:
        schedule = await self._read(self._manager.schedules.pause, _schedule_id(request.schedule_id))
        return pb.PauseScheduleResponse(schedule=convert_schedules.schedule_to_proto(schedule))

    @_unary
    async def ResumeSchedule(self, request: pb.ResumeScheduleRequest, context: Any) -> pb.ResumeScheduleResponse:
        schedule = await self._read(self._manager.schedules.resume, _schedule_id(request.schedule_id))
        return pb.ResumeScheduleResponse(schedule=convert_schedules.schedule_to_proto(schedule))

    @_unary
    async def DeleteSchedule(self, request: pb.DeleteScheduleRequest, context: Any) -> pb.DeleteScheduleResponse:
        schedule = await self._read(self._manager.schedules.delete, _schedule_id(request.schedule_id))
        return pb.DeleteScheduleResponse(schedule=convert_schedules.schedule_to_proto(schedule))

    @_unary
    async def ListTaskTypes(self, request: pb.ListTaskTypesRequest, context: Any) -> pb.ListTaskTypesResponse:
        serving = await self._read(self._manager.presence.serving)
        return pb.ListTaskTypesResponse(
            task_types=[convert.task_type_to_proto(t, serving.get(t.name, [])) for t in self._manager.task_types()]
        )

    @_unary
    async def DeleteTasks(self, request: pb.DeleteTasksRequest, context: Any) -> pb.DeleteTasksResponse:
        task_filter, ended_before = convert.delete_filter_from_proto(request)
        if len(request.labels) > convert.MAX_LABEL_FILTERS:
            return pb.DeleteTasksResponse()  # no task has that many labels (as in ListTasks)
        deleted = await self._read(self._manager.delete_matching, task_filter, ended_before)
        return pb.DeleteTasksResponse(deleted=deleted)

    @_unary
    async def RetryTask(self, request: pb.RetryTaskRequest, context: Any) -> pb.RetryTaskResponse:
        check_task_id(request.task_id)
        # On a read thread: the board reads the ended task from storage before it writes.
        task = await self._read(lambda: self._manager.retry_async(request.task_id, request.reason).result())
        return pb.RetryTaskResponse(task=convert.task_to_proto(task))

    @_unary
    async def WaitTask(self, request: pb.WaitTaskRequest, context: Any) -> pb.WaitTaskResponse:
        check_task_id(request.task_id)
        loop = asyncio.get_running_loop()
        until = _wait_until(loop.time(), convert.wait_timeout_from_proto(request), context.time_remaining())
        wake = asyncio.Event()
        watcher = Watcher(notify=lambda: self._waker.wake(wake))
        self._streams.add(wake)
        try:
            if self._manager.watch_now(request.task_id, watcher) is None:
                await self._read(self._manager.watch, request.task_id, watcher)
            while True:
                wake.clear()
                ended = next((event.task for event in watcher.drain() if event.is_terminal), None)
                if ended is not None:
                    return pb.WaitTaskResponse(task=convert.task_to_proto(ended), done=True)
                if self._closing:
                    raise ShuttingDown("the server is shutting down; wait again (on another server)")
                if until is not None and loop.time() >= until:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), None if until is None else until - loop.time())
        finally:
            self._streams.discard(wake)
            self._manager.unwatch(request.task_id, watcher)
        task = await self._task(request.task_id)
        return pb.WaitTaskResponse(task=convert.task_to_proto(task), done=task.state.is_terminal)

    async def WatchLogs(
        self, request: pb.WatchLogsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.WatchLogsResponse]:
        logs = self._logs
        try:
            check_decoded(request)
            check_task_id(request.task_id)
            await self._read(self._manager.get, request.task_id)  # NOT_FOUND for an unknown task
            if logs is None:
                raise InvalidRequest("this server keeps no task logs", [])
        except Exception as exc:
            await abort_for(context, exc)
            return
        offset = request.offset
        ended = False
        while True:
            chunk = await self._read(logs.read, request.task_id, offset)
            if chunk.data:
                yield pb.WatchLogsResponse(task_id=request.task_id, offset=chunk.offset, data=chunk.data)
                offset = chunk.offset + len(chunk.data)
                continue
            if not request.follow or ended:
                return
            if self._closing:
                await context.abort(
                    grpc.StatusCode.UNAVAILABLE, "the server is shutting down; watch the logs again from your offset"
                )
            # Read once more after the task ended: its last output may have landed after the read above.
            ended = (await self._read(self._manager.get, request.task_id)).state.is_terminal
            if not ended:
                await asyncio.sleep(LOG_POLL_SECONDS)


def _wait_until(now: float, timeout: float | None, deadline_in: float | None) -> float | None:
    """When a WaitTask answers with the task as it is: at its timeout, or a little before the call's deadline
    (an answer after it would be lost: the client has given up), whichever comes first; None: no limit."""
    limits = [] if timeout is None else [timeout]
    if deadline_in is not None:
        limits.append(max(0.0, deadline_in - min(WAIT_DEADLINE_MARGIN, deadline_in / 10)))
    return now + min(limits) if limits else None


def _schedule_id(schedule_id: str) -> str:
    check_task_id(schedule_id, "schedule_id")
    return schedule_id
