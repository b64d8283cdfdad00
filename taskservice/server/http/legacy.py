"""The call of the REST API this service replaces, kept for its clients: POST /API/tasks with

    {"task_no": 9326, "args": {"input_fpath": "~/input", "output_fpath": "~/output", "time_limit": 1200,
                               "clear_nodes": true}}

answered with {"message": "", "result": {"message": "task is running", "start_time": "2016-04-20 08:08:19.566249",
"task_no": 9326}, "state": "success"}; GET /API/tasks/{task_no} and POST /API/tasks/{task_no}/stop beside it.

The operator names the task type it runs (--legacy-task-type: a type, or `command:NAME` for a command of
--commands); without one the routes answer 404 saying how to turn them on. `task_no` is the task id (posting it
again is the same task), `time_limit` is seconds, `clear_nodes=false` keeps a failed task's partial output, `~/` in
a path is the top of the data root. Errors keep the old envelope:
{"state": "failure", "message": "...", "result": null}.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from google.protobuf import duration_pb2, timestamp_pb2

from taskservice.server.http.errors import HTTP_STATUS, invalid
from taskservice.server.http.gateway import Gateway, RpcAbort
from taskservice.v1 import task_service_pb2 as pb

# The old words for states: the state's name without its prefix (SUCCESS, FAILURE, REVOKED, and the new ones).
_STATE_PREFIX = "TASK_STATE_"
_HOME = "~/"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def add_legacy_routes(app: web.Application, gateway: Gateway, task_type: str) -> None:
    app.router.add_post("/API/tasks", _submit(gateway, task_type))
    app.router.add_get("/API/tasks/{task_no}", _about(gateway, task_type, "GetState", pb.GetStateRequest))
    app.router.add_post(
        "/API/tasks/{task_no}/stop",
        _about(gateway, task_type, "Stop", lambda task_id: pb.StopRequest(task_id=task_id, reason="stopped by /API")),
    )


def _success(result: dict[str, Any]) -> web.Response:
    return web.json_response({"message": "", "result": result, "state": "success"})


def _failure(message: str, status: int) -> web.Response:
    return web.json_response({"state": "failure", "message": message, "result": None}, status=status)


def _refused(abort: RpcAbort) -> web.Response:
    return _failure(abort.message, HTTP_STATUS.get(abort.code, 500))


def _off(task_type: str) -> web.Response | None:
    if task_type:
        return None
    return _failure(
        "the legacy /API/tasks call is off on this server: start it with --legacy-task-type TYPE, naming the task "
        "type (e.g. a command of --commands) that its tasks run",
        404,
    )


def _when(stamp: timestamp_pb2.Timestamp) -> str:
    return datetime.fromtimestamp(stamp.ToNanoseconds() / 1e9, UTC).strftime(TIME_FORMAT)


def _task_no(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 19:  # "²" is a digit to str.isdigit()
        raise invalid(f"task_no must be a whole number of at most 19 digits, not {text[:40]!r}", "task_no")
    return int(text)


def _request(body: Any, task_type: str) -> tuple[int, pb.SubmitRequest]:
    """The Submit of an old client's body; RpcAbort (INVALID_ARGUMENT) naming what does not fit."""
    if not isinstance(body, dict):
        raise invalid('the body must be a JSON object: {"task_no": 1, "args": {...}}', "body")
    task_no = body.get("task_no")
    if isinstance(task_no, bool) or not isinstance(task_no, int) or task_no < 0:
        raise invalid("task_no must be a whole number of 0 or more", "task_no")
    args = body.get("args", {})
    if not isinstance(args, dict):
        raise invalid("args must be a JSON object", "args")
    args = dict(args)
    task_type, _, command = task_type.partition(":")
    if command:  # command:NAME runs that command of --commands
        args["name"] = command
    request = pb.SubmitRequest(task_type=task_type, task_id=str(task_no))
    time_limit = args.pop("time_limit", None)
    if time_limit is not None:
        if isinstance(time_limit, bool) or not isinstance(time_limit, int | float) or not 0 < time_limit < 2**40:
            raise invalid("args.time_limit must be a number of seconds above 0", "args.time_limit")
        request.time_limit.CopyFrom(duration_pb2.Duration(seconds=int(time_limit), nanos=int(time_limit % 1 * 1e9)))
    for name, value in args.items():
        if isinstance(value, str) and value.startswith(_HOME):
            args[name] = value[len(_HOME) :] or "."  # ~/ is the top of the data root
    request.args.update(args)
    return task_no, request


def _submit(gateway: Gateway, task_type: str) -> Any:
    async def handle(request: web.Request) -> web.Response:
        off = _off(task_type)
        if off is not None:
            return off
        try:
            try:
                body = json.loads(await request.read() or b"null")
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                raise invalid(f"the body is not JSON this call can read: {exc}", "body") from None
            try:
                task_no, submit = _request(body, task_type)
            except (ValueError, TypeError, RecursionError) as exc:  # args a Struct cannot carry
                raise invalid(f"the body's args cannot be carried: {exc}", "args") from None
            answer = await gateway.unary("Submit", submit)
        except RpcAbort as abort:
            return _refused(abort)
        task = answer.task
        state = task.state
        running = state in (pb.TASK_STATE_PENDING, pb.TASK_STATE_RUNNING, pb.TASK_STATE_STOPPING)
        message = "task is running" if running else f"task ended {pb.TaskState.Name(state).removeprefix(_STATE_PREFIX)}"
        return _success({"message": message, "start_time": _when(task.submitted_at), "task_no": task_no})

    return handle


def _about(gateway: Gateway, task_type: str, rpc: str, make: Callable[..., Any]) -> Any:
    """GET /API/tasks/{task_no} (GetState) or its stop (Stop): the task's state in the old words."""

    async def handle(request: web.Request) -> web.Response:
        off = _off(task_type)
        if off is not None:
            return off
        try:
            task_no = _task_no(request.match_info["task_no"])
            task = (await gateway.unary(rpc, make(task_id=str(task_no)))).task
        except RpcAbort as abort:
            return _refused(abort)
        return _success(_status(task_no, task))

    return handle


def _status(task_no: int, task: pb.Task) -> dict[str, Any]:
    result: dict[str, Any] = {
        "task_no": task_no,
        "state": pb.TaskState.Name(task.state).removeprefix(_STATE_PREFIX),
        "start_time": _when(task.submitted_at),
    }
    if task.HasField("ended_at"):
        result["end_time"] = _when(task.ended_at)
    if task.HasField("error"):
        result["message"] = f"{task.error.type}: {task.error.message}"
    return result
