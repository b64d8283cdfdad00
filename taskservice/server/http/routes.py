"""The routes of the HTTP/JSON face: one per RPC, as the proto's google.api.http options say.

Bodies and answers are protobuf's canonical JSON (lowerCamelCase; snake_case is read too). A request is built from
the path (the id), the query (other fields of GET and DELETE) and the body (POST), then handed to the servicer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web
from google.protobuf import descriptor, json_format
from google.protobuf.message import Message

from taskservice.server.http.errors import error_response, invalid
from taskservice.server.http.fast_json import message_to_dict
from taskservice.server.http.gateway import Gateway, RpcAbort
from taskservice.v1 import task_service_pb2 as pb


@dataclass(frozen=True, slots=True)
class Route:
    http_method: str
    path: str  # as in OpenAPI and google.api.http: {task_id} is a path parameter
    rpc: str
    # Where the POST body goes: "*" the whole request, a field name, or "" (no body).
    body: str = ""
    summary: str = ""


ROUTES = (
    Route("POST", "/v1/tasks", "Submit", "*", "queue a task"),
    Route("POST", "/v1/tasks:batch", "SubmitBatch", "*", "queue up to 10,000 tasks in one commit"),
    Route("GET", "/v1/tasks", "ListTasks", "", "tasks, newest first"),
    Route("POST", "/v1/tasks:stop", "StopTasks", "*", "stop every unfinished task matching the filters"),
    Route("POST", "/v1/tasks:delete", "DeleteTasks", "*", "delete every ended task matching the filters"),
    Route("GET", "/v1/tasks/{task_id}", "GetState", "", "a task as it is now"),
    Route("POST", "/v1/tasks/{task_id}:stop", "Stop", "*", "stop a task"),
    Route("POST", "/v1/tasks/{task_id}:retry", "RetryTask", "*", "run an ended task again"),
    Route("GET", "/v1/tasks/{task_id}:wait", "WaitTask", "", "the task once it ended, or when the timeout passed"),
    Route("DELETE", "/v1/tasks/{task_id}", "DeleteTask", "", "delete an ended task"),
    Route("GET", "/v1/tasks/{task_id}/events", "WatchProgress", "", "Server-Sent Events: state changes, progress"),
    Route("GET", "/v1/tasks/{task_id}/logs", "WatchLogs", "", "the task's log, from an offset; follow to its end"),
    Route("GET", "/v1/tasks/{task_id}/history", "GetTaskHistory", "", "the task's state changes and progress samples"),
    Route(
        "GET",
        "/v1/events",
        "WatchTasks",
        "",
        "Server-Sent Events of many tasks: by id, or the unfinished ones a filter matches",
    ),
    Route("POST", "/v1/schedules", "CreateSchedule", "schedule", "create a schedule"),
    Route("GET", "/v1/schedules", "ListSchedules", "", "schedules in id order"),
    Route("GET", "/v1/schedules/{schedule_id}", "GetSchedule", "", "a schedule"),
    Route("POST", "/v1/schedules/{schedule_id}:pause", "PauseSchedule", "*", "pause a schedule"),
    Route("POST", "/v1/schedules/{schedule_id}:resume", "ResumeSchedule", "*", "resume a schedule"),
    Route("DELETE", "/v1/schedules/{schedule_id}", "DeleteSchedule", "", "delete a schedule"),
    Route("GET", "/v1/taskTypes", "ListTaskTypes", "", "the task types this server runs, with their args"),
    Route("GET", "/v1/stats", "GetStats", "", "tasks by type and state, the last hour per minute, the oldest wait"),
    Route("GET", "/v1/nodes", "ListNodes", "", "the servers of the database: types claimed, busy and total workers"),
    Route("POST", "/v1/limits", "CreateLimit", "limit", "create a limit"),
    Route("GET", "/v1/limits", "ListLimits", "", "limits in id order"),
    Route("GET", "/v1/limits/{limit_id}", "GetLimit", "", "a limit"),
    Route("PUT", "/v1/limits/{limit.limit_id}", "UpdateLimit", "limit", "replace a limit's definition"),
    Route("DELETE", "/v1/limits/{limit_id}", "DeleteLimit", "", "delete a limit"),
)

# Items of one repeated field in a query: a URL holds a few kilobytes (start_http allows a line of MAX_LINE_BYTES).
MAX_QUERY_ITEMS = 200
MAX_LINE_BYTES = 64 * 1024
_SERVICE = pb.DESCRIPTOR.services_by_name["TaskService"]
_CPP = descriptor.FieldDescriptor
_WHOLE_NUMBERS = frozenset({_CPP.CPPTYPE_INT32, _CPP.CPPTYPE_INT64, _CPP.CPPTYPE_UINT32, _CPP.CPPTYPE_UINT64})
_WHOLE = re.compile(r"-?[0-9]+")
_STATE_PREFIX = "TASK_STATE_"


def request_class(rpc: str) -> type[Message]:
    return _message_class(_SERVICE.methods_by_name[rpc].input_type)


def _message_class(message: descriptor.Descriptor) -> type[Message]:
    return getattr(pb, message.name)  # type: ignore[no-any-return]


def to_json(message: Message) -> dict[str, Any]:
    converted: dict[str, Any] = message_to_dict(message)
    return converted


async def build_request(route: Route, request: web.Request, path_value: str) -> Message:
    """The RPC's request from the path, the query and the body; RpcAbort (INVALID_ARGUMENT) when they do not make
    one, naming what is wrong."""
    # The C (upb) and Python descriptor classes have one interface; the stubs name both.
    message_type = cast(descriptor.Descriptor, request_class(route.rpc).DESCRIPTOR)
    fields: dict[str, Any] = _query_fields(message_type, request.query)
    if route.body and request.can_read_body:
        try:
            body = json.loads(await request.read() or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise invalid(f"the request body is not JSON: {exc}", "body") from None
        except RecursionError:
            raise invalid("the request body is JSON nested too deeply", "body") from None
        if not isinstance(body, dict):
            raise invalid("the request body must be a JSON object", "body")
        fields.update(body if route.body == "*" else {route.body: body})
    if "{" in route.path:
        *outer, name = route.path.split("{", 1)[1].split("}", 1)[0].split(".")
        into = fields
        for part in outer:  # {limit.limit_id}: the id of the body's limit, whatever the body says
            if not isinstance(into.get(part), dict):
                into[part] = {}
            into = into[part]
        into.pop(_camel(name), None)
        into[name] = path_value
    message = request_class(route.rpc)()
    try:
        json_format.ParseDict(fields, message)
    except json_format.ParseError as exc:
        raise invalid(f"the request does not fit {message.DESCRIPTOR.name}: {exc}", "body") from None
    except RecursionError:
        raise invalid(f"the request does not fit {message.DESCRIPTOR.name}: nested too deeply", "body") from None
    return message


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _query_fields(message: descriptor.Descriptor, query: Any) -> dict[str, Any]:
    """Query parameters as JSON fields: repeated ones by repeating the key (or by commas), map entries as
    `labels[key]=value`, states by their short names too (RUNNING for TASK_STATE_RUNNING). A single field given
    twice, an empty item, or a whole number that is not one is refused rather than guessed at."""
    fields: dict[str, Any] = {}
    for key in set(query.keys()):
        name, _, map_key = key.partition("[")
        field = message.fields_by_name.get(name) or message.fields_by_camelcase_name.get(name)
        if field is None:
            raise invalid(f"unknown query parameter {key!r}", key)
        values = query.getall(key)
        if map_key:
            # A key may hold brackets (a label key may be any text), not "][" (a nested object); an empty one matches
            # nothing (no label has one).
            if not map_key.endswith("]") or "][" in map_key:
                raise invalid(f"query parameter {key!r} is not {name}[KEY]=VALUE", name)
            if len(values) > 1:
                raise invalid(f"{key} is given {len(values)} times; give it once", name)
            fields.setdefault(field.json_name, {})[map_key[:-1]] = values[0]
        elif field.is_repeated:
            items = [v for value in values for v in value.split(",")]
            if "" in items:
                raise invalid(f"{field.json_name} has an empty item", field.json_name)
            if len(items) > MAX_QUERY_ITEMS:
                why = f"{len(items)} {field.json_name} in a query, over {MAX_QUERY_ITEMS}: use gRPC, or several calls"
                raise invalid(why, field.json_name)
            fields[field.json_name] = [_query_value(field, item) for item in items]
        elif len(values) > 1:
            raise invalid(f"{field.json_name} is given {len(values)} times; give it once", field.json_name)
        else:
            fields[field.json_name] = _query_value(field, values[0])
    return fields


def _query_value(field: descriptor.FieldDescriptor, value: str) -> Any:
    if field.type == descriptor.FieldDescriptor.TYPE_BOOL:
        if value.lower() not in ("true", "false", "1", "0"):
            raise invalid(f"{field.json_name} must be true or false, not {value!r}", field.json_name)
        return value.lower() in ("true", "1")
    if (
        field.type == descriptor.FieldDescriptor.TYPE_ENUM
        and field.enum_type is not None
        and field.enum_type.name == "TaskState"
    ):
        upper = value.upper()
        return upper if upper.startswith(_STATE_PREFIX) else _STATE_PREFIX + upper
    if field.cpp_type in _WHOLE_NUMBERS and not _WHOLE.fullmatch(value):
        raise invalid(f"{field.json_name} must be a whole number, not {value[:40]!r}", field.json_name)
    return value


async def unary(gateway: Gateway, route: Route, request: web.Request, path_value: str = "") -> web.Response:
    try:
        message = await build_request(route, request, path_value)
        response = await gateway.unary(route.rpc, message)
    except RpcAbort as abort:
        return error_response(abort)
    return web.json_response(to_json(response))
