"""Generated from async_client.py by scripts/unasync.py: do not edit; edit async_client.py and run `make unasync`."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, overload

import grpc

from taskservice.client.base import CHANNEL_OPTIONS, ClientBase
from taskservice.client.calls import (
    MAX_BATCH,
    as_submit_request,
    batch_call,
    create_schedule_call,
    delete_call,
    delete_tasks_call,
    get_call,
    history_call,
    list_call,
    list_schedules_call,
    nodes_call,
    retry_call,
    schedule_call,
    stats_call,
    stop_call,
    stop_tasks_call,
    submit_call,
    task_types_call,
    typed_calls,
)
from taskservice.client.cursors import LogCursor, WatchCursor, unimplemented
from taskservice.client.errors import TaskServiceError, rpc_errors
from taskservice.client.limits import (
    Limit,
    LimitPage,
    LimitResult,
    create_limit_call,
    limit_call,
    list_limits_call,
    update_limit_call,
)
from taskservice.client.models import (
    History,
    LogChunk,
    Nodes,
    Schedule,
    SchedulePage,
    ScheduleResult,
    Stats,
    StopCount,
    SubmitResult,
    Task,
    TaskEvent,
    TaskPage,
    TaskState,
    TaskTypes,
)
from taskservice.client.sync_run import TaskRun
from taskservice.client.wire import R, Unary
from taskservice.handles import TaskCall
from taskservice.v1 import task_service_pb2 as pb


class TaskClient(ClientBase):
    """The synchronous client: each call returns when the server answered, each stream is an iterator.

    Use it as a context manager, or call close(); one client may be shared by threads.
    `address` None means $TASKSERVICE_ADDR, else 127.0.0.1:50051. `timeout` is the deadline of each
    unary call in seconds (None: no deadline). `reconnect_timeout` bounds how long watch() and wait()
    keep reconnecting to an unreachable server.
    `token`, `tls_ca`, `tls_cert` and `tls_key` (default: $TASKSERVICE_TOKEN, $TASKSERVICE_TLS_CA, ...)
    send a bearer token and turn on TLS or mutual TLS; see Security.
    """

    def _open_channel(self, address: str, credentials: grpc.ChannelCredentials | None) -> grpc.Channel:
        if credentials is None:
            return grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        return grpc.secure_channel(address, credentials, options=CHANNEL_OPTIONS)

    def __enter__(self) -> TaskClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel; safe to call twice."""
        self._channel.close()

    def _invoke(self, call: Unary[R]) -> R:
        with rpc_errors(self.security):
            response = getattr(self._stub, call.method)(
                call.request, timeout=self.timeout, metadata=self._call_metadata()
            )
        return call.convert(response)

    @overload
    def submit(self, task_type: TaskCall[R], /) -> TaskRun[R]: ...
    @overload
    def submit(
        self,
        task_type: str,
        args: Mapping[str, Any] | None = None,
        *,
        task_id: str | None = None,
        time_limit: float | None = None,
        priority: int = 0,
        labels: Mapping[str, str] | None = None,
        not_before: datetime | None = None,
        delay: float | None = None,
        retention: float | None = None,
        after: Iterable[str] = (),
    ) -> SubmitResult: ...
    def submit(
        self,
        task_type: str | TaskCall[Any],
        args: Mapping[str, Any] | None = None,
        *,
        task_id: str | None = None,
        time_limit: float | None = None,
        priority: int = 0,
        labels: Mapping[str, str] | None = None,
        not_before: datetime | None = None,
        delay: float | None = None,
        retention: float | None = None,
        after: Iterable[str] = (),
    ) -> SubmitResult | TaskRun[Any]:
        """Queue a task. time_limit is in seconds (None: the server default). To run it later: `not_before` (an
        aware datetime) or `delay` (seconds); it waits PENDING, with scheduled_at set, until then. `retention`
        (seconds; 0: for ever) keeps it that long once ended instead of the server's --retention. `after`: ids of
        tasks that must succeed first (it ends REVOKED, error type DependencyFailed, if one does not).

        Typed: `submit(resize.bind(width=640))` (or `resize.submit(client, width=640)`) submits a `@task` handler's
        type with args mypy checked against its signature, and returns a run whose result() is what it returns."""
        if isinstance(task_type, TaskCall):
            submitted = self._invoke(submit_call(task_type.task_type, task_type.args, **task_type.options))
            return TaskRun(self, submitted, task_type.result_type)
        options = {"task_id": task_id, "time_limit": time_limit, "priority": priority, "labels": labels,
                   "not_before": not_before, "delay": delay, "retention": retention, "after": after}  # fmt: skip
        return self._invoke(submit_call(task_type, args, **options))

    @overload
    def submit_batch(self, requests: Iterable[TaskCall[R]]) -> list[TaskRun[R] | TaskServiceError]: ...
    @overload
    def submit_batch(self, requests: Iterable[pb.SubmitRequest]) -> list[SubmitResult | TaskServiceError]: ...
    def submit_batch(
        self, requests: Iterable[pb.SubmitRequest] | Iterable[TaskCall[Any]]
    ) -> list[SubmitResult | TaskServiceError] | list[TaskRun[Any] | TaskServiceError]:
        """Submit many tasks (build each with submit_request(), or a handle's bind()), MAX_BATCH per call, one
        durable commit per call.

        Returns one result per request, in order: a SubmitResult (a run for a bound handle), or the error that
        request alone got.
        """
        pending: list[pb.SubmitRequest | TaskCall[Any]] = list(requests)
        typed = typed_calls(pending)
        results: list[SubmitResult | TaskServiceError] = []
        for start in range(0, len(pending), MAX_BATCH):
            call = batch_call([as_submit_request(r) for r in pending[start : start + MAX_BATCH]])
            chunk: list[SubmitResult | TaskServiceError] = self._invoke(call)
            results.extend(chunk)
        if not typed:
            return results
        return [
            TaskRun(self, result, request.result_type) if isinstance(result, SubmitResult) else result
            for request, result in zip(typed, results, strict=True)
        ]

    def get(self, task_id: str) -> Task:
        """The task as it is now; TaskNotFound for an unknown id."""
        return self._invoke(get_call(task_id))

    def stop(self, task_id: str, reason: str = "") -> Task:
        """Revoke a pending task or ask a running one to stop; a finished task is returned unchanged."""
        return self._invoke(stop_call(task_id, reason))

    def stop_tasks(
        self,
        *,
        states: Iterable[TaskState | str] = (),
        task_type: str = "",
        labels: Mapping[str, str] | None = None,
        scheduled: bool = False,
        reason: str = "",
        everything: bool = False,
    ) -> StopCount:
        """Stop every unfinished task matching the filters (states: PENDING and/or RUNNING), as stop() each;
        with no filter at all, only with everything=True."""
        filters = {"states": states, "task_type": task_type, "labels": labels, "scheduled": scheduled}
        return self._invoke(stop_tasks_call(reason, everything, **filters))

    def delete(self, task_id: str) -> Task:
        """Delete an ended task now, with its log; returns it as it was. FailedPrecondition for an unfinished one."""
        return self._invoke(delete_call(task_id))

    def delete_tasks(
        self,
        *,
        states: Iterable[TaskState | str] = (),
        task_type: str = "",
        labels: Mapping[str, str] | None = None,
        ended_before: datetime | None = None,
        everything: bool = False,
    ) -> int:
        """Delete every ended task matching the filters (states: ended ones); how many. With no filter at all,
        only with everything=True."""
        filters = {"states": states, "task_type": task_type, "labels": labels}
        return self._invoke(delete_tasks_call(ended_before, everything, **filters))

    def retry(self, task_id: str, reason: str = "") -> Task:
        """Run a task that ended FAILURE, TIMED_OUT, REVOKED or LOST again, as its next attempt; returns it PENDING.
        FailedPrecondition for a task in another state; `reason` goes to its log."""
        return self._invoke(retry_call(task_id, reason))

    def list(
        self,
        *,
        states: Iterable[TaskState | str] = (),
        task_type: str = "",
        labels: Mapping[str, str] | None = None,
        page_size: int = 100,
        page_token: str = "",
        scheduled: bool = False,
        waiting_for_limit: str = "",
        parent_id: str = "",
        search: str = "",
        submitted_after: datetime | None = None,
        submitted_before: datetime | None = None,
        depends_on: str = "",
        order_by: str = "",
    ) -> TaskPage:
        """One page of tasks, newest first unless `order_by` says otherwise ("duration desc", "ended_at", ...),
        filtered by states, type, labels, parent (`parent_id`: its children), `search` (an id prefix, or text in the
        args or the error), submission time and `depends_on` (the tasks that run after that one)."""
        filters = {"states": states, "task_type": task_type, "labels": labels, "scheduled": scheduled,
                   "waiting_for_limit": waiting_for_limit, "parent_id": parent_id, "search": search,
                   "submitted_after": submitted_after, "submitted_before": submitted_before,
                   "depends_on": depends_on, "order_by": order_by}  # fmt: skip
        return self._invoke(list_call(**filters, page_size=page_size, page_token=page_token))

    def iter_tasks(
        self,
        *,
        states: Iterable[TaskState | str] = (),
        task_type: str = "",
        labels: Mapping[str, str] | None = None,
        page_size: int = 100,
        scheduled: bool = False,
        waiting_for_limit: str = "",
        parent_id: str = "",
        search: str = "",
        submitted_after: datetime | None = None,
        submitted_before: datetime | None = None,
        depends_on: str = "",
        order_by: str = "",
    ) -> Iterator[Task]:
        """Every task matching the filters, in `order_by`'s order, page after page (see list())."""
        wanted = tuple(states)
        token = ""
        while True:
            page = self.list(
                states=wanted,
                task_type=task_type,
                labels=labels,
                page_size=page_size,
                page_token=token,
                scheduled=scheduled,
                waiting_for_limit=waiting_for_limit,
                parent_id=parent_id,
                search=search,
                submitted_after=submitted_after,
                submitted_before=submitted_before,
                depends_on=depends_on,
                order_by=order_by,
            )
            yield from page.tasks
            token = page.next_page_token
            if not token:
                return

    def create_schedule(
        self,
        schedule_id: str,
        task_type: str,
        args: Mapping[str, Any] | None = None,
        *,
        cron: str = "",
        time_zone: str = "",
        interval: float | None = None,
        catch_up: str = "ONCE",
        paused: bool = False,
        time_limit: float | None = None,
        priority: int = 0,
        labels: Mapping[str, str] | None = None,
        retention: float | None = None,
        validate_only: bool = False,
    ) -> ScheduleResult:
        """Submit `task_type` with `args` on `cron` (five fields, or six with seconds last; in `time_zone`, UTC when
        empty) or every `interval` seconds, each firing as task `<schedule_id>:<due time>`. `catch_up` ("SKIP",
        "ONCE", "ALL") decides about due times missed while no server ran. The same definition again answers
        created=False; another one under the id raises AlreadyExists. `validate_only`: the checks alone, and the
        schedule as it would be (its `upcoming` due times), nothing stored."""
        options = {"cron": cron, "time_zone": time_zone, "interval": interval, "catch_up": catch_up,
                   "paused": paused, "time_limit": time_limit, "priority": priority, "labels": labels,
                   "retention": retention}  # fmt: skip
        call = create_schedule_call(schedule_id, task_type, args, validate_only=validate_only, **options)
        return self._invoke(call)

    def get_schedule(self, schedule_id: str) -> Schedule:
        return self._invoke(schedule_call("GetSchedule", schedule_id))

    def task_types(self) -> TaskTypes:
        """The task types the server runs, by name, with the args each takes."""
        return self._invoke(task_types_call())

    def stats(self) -> Stats:
        """Tasks by type and state, the last hour's starts and ends per minute, and the oldest runnable task's wait:
        the overview of every server of the database."""
        return self._invoke(stats_call())

    def history(self, task_id: str) -> History:
        """The task's stored life, oldest first: each state change, and a sample of its progress each time a run
        passed another tenth of the way. TaskNotFound for an unknown id."""
        return self._invoke(history_call(task_id))

    def nodes(self) -> Nodes:
        """The servers of the database (each engine process), by name: the types each claims, its worker threads,
        how many were busy, and the handlers it abandoned after a stop that still run, when it last said."""
        return self._invoke(nodes_call())

    def list_schedules(self, *, page_size: int = 100, page_token: str = "") -> SchedulePage:
        return self._invoke(list_schedules_call(page_size, page_token))

    def iter_schedules(self, *, page_size: int = 100) -> Iterator[Schedule]:
        """Every schedule, in id order, page after page."""
        token = ""
        while True:
            page = self.list_schedules(page_size=page_size, page_token=token)
            yield from page.schedules
            token = page.next_page_token
            if not token:
                return

    def pause_schedule(self, schedule_id: str) -> Schedule:
        """No firing until resumed."""
        return self._invoke(schedule_call("PauseSchedule", schedule_id))

    def resume_schedule(self, schedule_id: str) -> Schedule:
        """Fire again from the next due time after now (those missed while paused are skipped)."""
        return self._invoke(schedule_call("ResumeSchedule", schedule_id))

    def delete_schedule(self, schedule_id: str) -> Schedule:
        """Remove a schedule; the tasks it submitted stay. Returns it as it was."""
        return self._invoke(schedule_call("DeleteSchedule", schedule_id))

    def create_limit(self, limit_id: str, **definition: Any) -> LimitResult:
        """Create a limit: `task_type=`, `labels=` (what it covers), `key_label=` (what splits it into groups),
        `max_running=`, `rate=` ("10/s", "100/m", or (count, seconds)), `burst=`, `on_full=` ("QUEUE",
        "REFUSE_NEWEST", "STOP_OLDEST"), `max_waiting=`, `weights=`. The same definition again answers
        created=False; another one under the id raises AlreadyExists."""
        return self._invoke(create_limit_call(limit_id, **definition))

    def get_limit(self, limit_id: str) -> Limit:
        return self._invoke(limit_call("GetLimit", limit_id))

    def list_limits(self, *, page_size: int = 100, page_token: str = "") -> LimitPage:
        return self._invoke(list_limits_call(page_size, page_token))

    def iter_limits(self, *, page_size: int = 100) -> Iterator[Limit]:
        """Every limit, in id order, page after page."""
        token = ""
        while True:
            page = self.list_limits(page_size=page_size, page_token=token)
            yield from page.limits
            token = page.next_page_token
            if not token:
                return

    def update_limit(self, limit_id: str, **definition: Any) -> Limit:
        """Replace a limit's whole definition (as create_limit() takes it); in force from the next claim."""
        return self._invoke(update_limit_call(limit_id, **definition))

    def delete_limit(self, limit_id: str) -> Limit:
        """Remove a limit: what it held back may start. Returns it as it was."""
        return self._invoke(limit_call("DeleteLimit", limit_id))

    def watch(self, task_id: str, *, after_sequence: int = 0, timeout: float | None = None) -> Iterator[TaskEvent]:
        """Events of a task up to and including the terminal one.

        Once connected, it reconnects on UNAVAILABLE (resuming after the last sequence seen) for up to
        reconnect_timeout seconds of failure; on OUT_OF_RANGE it goes on from a fresh snapshot. A watch
        that never got its first event raises at once. `timeout` bounds the whole watch
        (DeadlineExceeded).
        """
        return self._follow(self._cursor(task_id, after_sequence, timeout), self._stub.WatchProgress)

    def logs(self, task_id: str, *, offset: int = 0, follow: bool = False) -> Iterator[LogChunk]:
        """A task's log from `offset` on; with follow, until the task ends. Reconnects like watch()."""
        cursor = LogCursor(task_id, offset, follow, reconnect_timeout=self.reconnect_timeout, security=self.security)
        return self._follow(cursor, self._stub.WatchLogs)

    def watch_many(
        self, task_ids: Sequence[str], *, timeout: float | None = None, ignore_missing: bool = False
    ) -> Iterator[TaskEvent]:
        """The events of many tasks (up to 10,000) in one WatchTasks stream, until every one has ended; each
        reconnect resumes every task after its last event. TaskNotFound for unknown ids unless ignore_missing."""
        return self._follow(self._many_cursor(task_ids, timeout, ignore_missing), self._stub.WatchTasks)

    def as_completed(self, task_ids: Sequence[str], *, timeout: float | None = None) -> Iterator[Task]:
        """Each task as it ends, in the order they end (one WatchTasks stream); DeadlineExceeded after `timeout`."""
        for event in self.watch_many(task_ids, timeout=timeout):
            if event.state.is_terminal and event.task is not None:
                yield event.task

    def wait_all(self, task_ids: Sequence[str], timeout: float | None = None) -> Sequence[Task]:
        """Every task once ended, in the order given (one WatchTasks stream); DeadlineExceeded after `timeout`."""
        ended = {task.task_id: task for task in self.as_completed(task_ids, timeout=timeout)}
        return [ended[task_id] for task_id in task_ids]

    def _follow(self, cursor: WatchCursor, method: Any) -> Iterator[Any]:
        while True:
            stream = method(cursor.request(), timeout=cursor.call_timeout(), metadata=self._call_metadata())
            with cursor.attempt(stream):
                for message in stream:
                    yield from cursor.accept(message)
                    if cursor.done:
                        return
            if cursor.done:
                return
            time.sleep(cursor.next_delay())

    def wait(self, task_id: str, timeout: float | None = None) -> Task:
        """Wait until the task ends and return it; DeadlineExceeded after `timeout` seconds (None: no limit).

        One WaitTask call at a time, each at most a minute; reconnects on UNAVAILABLE as watch() does."""
        cursor = self._wait_cursor(task_id, timeout)
        while True:
            request, deadline = cursor.wait_request()
            try:
                with rpc_errors(self.security):
                    response = self._stub.WaitTask(request, timeout=deadline, metadata=self._call_metadata())
            except TaskServiceError as err:
                if unimplemented(err):
                    return self._wait_by_watch(task_id, timeout, cursor.started)
                time.sleep(cursor.retry_delay(err))
                continue
            task = cursor.accept_wait(response)
            if task is not None:
                return task

    def _wait_by_watch(self, task_id: str, timeout: float | None, started: float) -> Task:
        cursor = self._cursor(task_id, 0, timeout, started)
        for _ in self._follow(cursor, self._stub.WatchProgress):
            pass
        return cursor.final_task() or self.get(task_id)
