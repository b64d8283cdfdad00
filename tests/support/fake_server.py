"""An in-process gRPC server with a scripted TaskService, to drive the client through cases a real
server makes hard to reach on demand (a stream cut mid-way, OUT_OF_RANGE, a stream ending early)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent import futures

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc

# One scripted WatchProgress call: gets the request and context, yields the events to send.
WatchStep = Callable[[pb.WatchProgressRequest, grpc.ServicerContext], Iterator[pb.WatchProgressResponse]]


def event(seq: int, state: int = pb.TASK_STATE_RUNNING, percent: float = 0.0) -> pb.WatchProgressResponse:
    """An event of task "t"; state changes carry the task, as the contract says."""
    e = pb.WatchProgressResponse(task_id="t", sequence=seq, state=state, progress=pb.Progress(percent=percent))
    if state != pb.TASK_STATE_RUNNING or percent == 0.0:
        e.task.CopyFrom(pb.Task(task_id="t", task_type="demo", state=state))
    return e


def send(*events: pb.WatchProgressResponse, then: grpc.StatusCode | None = None, message: str = "") -> WatchStep:
    """A watch step that sends these events, then ends with `then` (None: ends OK)."""

    def step(request: pb.WatchProgressRequest, context: grpc.ServicerContext) -> Iterator[pb.WatchProgressResponse]:
        yield from events
        if then is not None:
            context.abort(then, message or then.name.lower())

    return step


def hang(request: pb.WatchProgressRequest, context: grpc.ServicerContext) -> Iterator[pb.WatchProgressResponse]:
    """A watch step that sends a snapshot and then nothing until the client goes away."""
    yield event(1)
    done = threading.Event()
    context.add_callback(done.set)
    done.wait(30)


# One scripted WaitTask call: gets the request and context, answers (or aborts).
WaitStep = Callable[[pb.WaitTaskRequest, grpc.ServicerContext], pb.WaitTaskResponse]


def answer(state: int, *, done: bool) -> WaitStep:
    """A wait step that answers task "t" in `state`."""

    def step(request: pb.WaitTaskRequest, context: grpc.ServicerContext) -> pb.WaitTaskResponse:
        return pb.WaitTaskResponse(task=pb.Task(task_id="t", task_type="demo", state=state), done=done)

    return step


def refuse(code: grpc.StatusCode, message: str = "") -> WaitStep:
    """A wait step that fails with `code`."""

    def step(request: pb.WaitTaskRequest, context: grpc.ServicerContext) -> pb.WaitTaskResponse:
        context.abort(code, message or code.name.lower())
        raise AssertionError("unreachable")

    return step


class ScriptedTaskService(pb_grpc.TaskServiceServicer):
    def __init__(self) -> None:
        self.watch_steps: list[WatchStep] = []
        self.watch_requests: list[int] = []
        # None: the service predates WaitTask (UNIMPLEMENTED); else the scripted answers, in order.
        self.wait_steps: list[WaitStep] | None = None
        self.wait_timeouts: list[float] = []
        self.tasks = [pb.Task(task_id=f"t{i}", task_type="demo", state=pb.TASK_STATE_SUCCESS) for i in range(5)]

    def Submit(self, request: pb.SubmitRequest, context: grpc.ServicerContext) -> pb.SubmitResponse:
        if request.task_type != "demo":
            detail = any_pb2.Any()
            detail.Pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(field="task_type", description="not registered")
                    ]
                )
            )
            message = f"unknown task type {request.task_type!r}"
            status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=message, details=[detail])
            context.abort_with_status(rpc_status.to_status(status))
        task = pb.Task(task_id=request.task_id or "generated", task_type=request.task_type, args=request.args)
        task.time_limit.CopyFrom(request.time_limit)
        task.labels.update(request.labels)
        task.priority = request.priority
        return pb.SubmitResponse(task=task, created=True)

    def GetState(self, request: pb.GetStateRequest, context: grpc.ServicerContext) -> pb.GetStateResponse:
        for task in self.tasks:
            if task.task_id == request.task_id:
                return pb.GetStateResponse(task=task)
        context.abort(grpc.StatusCode.NOT_FOUND, f"task {request.task_id!r} not found")
        raise AssertionError("unreachable")

    def WatchProgress(
        self, request: pb.WatchProgressRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.WatchProgressResponse]:
        self.watch_requests.append(request.after_sequence)
        if not self.watch_steps:
            context.abort(grpc.StatusCode.NOT_FOUND, f"task {request.task_id!r} not found")
        yield from self.watch_steps.pop(0)(request, context)

    def WaitTask(self, request: pb.WaitTaskRequest, context: grpc.ServicerContext) -> pb.WaitTaskResponse:
        if self.wait_steps is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")  # as a server without it answers
        self.wait_timeouts.append(request.timeout.ToNanoseconds() / 1e9)
        if not self.wait_steps:
            context.abort(grpc.StatusCode.NOT_FOUND, f"task {request.task_id!r} not found")
        return self.wait_steps.pop(0)(request, context)

    def ListTasks(self, request: pb.ListTasksRequest, context: grpc.ServicerContext) -> pb.ListTasksResponse:
        start = int(request.page_token or 0)
        end = start + request.page_size
        return pb.ListTasksResponse(
            tasks=self.tasks[start:end], next_page_token=str(end) if end < len(self.tasks) else ""
        )


class FakeServer:
    """The scripted service on 127.0.0.1:<free port>; a context manager."""

    def __init__(self) -> None:
        self.service = ScriptedTaskService()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        pb_grpc.add_TaskServiceServicer_to_server(self.service, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self.address = f"127.0.0.1:{self.port}"

    def __enter__(self) -> FakeServer:
        self._server.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.stop(grace=None)
