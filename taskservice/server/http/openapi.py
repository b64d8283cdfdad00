"""GET /openapi.json: the routes of routes.py, their parameters and bodies, with JSON schemas made from the proto's
messages (canonical JSON: lowerCamelCase names, 64-bit integers as strings, Timestamps as RFC 3339 strings,
Durations as "1.5s"; any field may be null, which protobuf reads as its default), and google.rpc.Status for
every error.

The schemas say what the server refuses, not only what protobuf can parse (openapi_rules.py): id patterns, page
sizes, label bounds, the states a filter takes, unknown fields (refused: `additionalProperties: false`), required
fields and one-of choices. What depends on the server's state or clock (a task type's args, a time not in the
past) cannot be said here; a request that breaks it is refused with 400 naming the field.
"""

from __future__ import annotations

from typing import Any, cast

from google.protobuf import descriptor

from taskservice.server.http.openapi_rules import (
    DURATION,
    HIDDEN_ENUM_VALUES,
    NOT_BOTH,
    ONE_OF_THESE,
    REQUIRED,
    RULES,
    STREAMS,
    path_parameter_schema,
)
from taskservice.server.http.routes import ROUTES, Route, request_class
from taskservice.v1 import task_service_pb2 as pb

FD = descriptor.FieldDescriptor
_SCALARS: dict[int, dict[str, Any]] = {
    FD.TYPE_STRING: {"type": "string"},
    FD.TYPE_BOOL: {"type": "boolean"},
    FD.TYPE_DOUBLE: {"type": "number"},
    FD.TYPE_FLOAT: {"type": "number"},
    FD.TYPE_INT32: {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1},
    FD.TYPE_SINT32: {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1},
    FD.TYPE_UINT32: {"type": "integer", "format": "int32", "minimum": 0, "maximum": 2**32 - 1},
    # (18 and 19 digits: what always fits; a pattern cannot bound the numbers beyond.)
    FD.TYPE_INT64: {"type": "string", "format": "int64", "pattern": "^-?[0-9]{1,18}$"},
    FD.TYPE_UINT64: {"type": "string", "format": "uint64", "pattern": "^[0-9]{1,19}$"},
    FD.TYPE_BYTES: {"type": "string", "format": "byte"},
}
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": DURATION,
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {"nullable": True},
}
# A value that is there: anything but null.
_GIVEN = {"not": {"enum": [None]}}
_STATUS = {
    "type": "object",
    "description": "google.rpc.Status: the gRPC code, a message, and details such as google.rpc.BadRequest",
    "properties": {
        "code": {"type": "integer"},
        "message": {"type": "string"},
        "details": {"type": "array", "items": {"type": "object", "additionalProperties": True}},
    },
    "required": ["code", "message"],
}
_ERROR = {
    "description": "an error: its HTTP status is the gRPC code's (400 INVALID_ARGUMENT, 404 NOT_FOUND, ...)",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/google.rpc.Status"}}},
}


def openapi_document() -> dict[str, Any]:
    schemas: dict[str, Any] = {"google.rpc.Status": _STATUS}
    paths: dict[str, Any] = {}
    for route in ROUTES:
        paths.setdefault(openapi_path(route.path), {})[route.http_method.lower()] = _operation(route, schemas)
    return {
        "openapi": "3.0.3",
        "info": {"title": "taskservice", "version": "v1", "description": "The TaskService API over HTTP/JSON."},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
    }


def openapi_path(path: str) -> str:
    """A route's path as OpenAPI names its parameters: `{limit.limit_id}` (a field of the body) is `{limit_id}`."""
    return path.replace("{limit.limit_id}", "{limit_id}")


def _operation(route: Route, schemas: dict[str, Any]) -> dict[str, Any]:
    # The C (upb) and Python descriptor classes have one interface; the stubs name both.
    request = cast(descriptor.Descriptor, request_class(route.rpc).DESCRIPTOR)
    method = pb.DESCRIPTOR.services_by_name["TaskService"].methods_by_name[route.rpc]
    in_path = [part.split("}")[0].rsplit(".", 1)[-1] for part in route.path.split("{")[1:]]
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": path_parameter_schema(name)} for name in in_path
    ]
    if not route.body:
        parameters += _query_parameters(request, in_path, schemas)
    operation: dict[str, Any] = {
        "operationId": route.rpc,
        "summary": route.summary,
        "parameters": parameters,
        "responses": {"200": _ok(route, method.output_type, schemas), "default": _ERROR},
    }
    if route.body:
        body = request if route.body == "*" else request.fields_by_name[route.body].message_type
        assert body is not None
        schema = _ref(body, schemas)
        if route.body == "*" and in_path:
            # The path gives the id; the body may leave it out, or give the same one.
            schema = _without_required(body, schemas, in_path)
        # A body is needed when its message has required fields; otherwise no body is the empty message.
        needed = bool(REQUIRED.get(body.full_name) or ONE_OF_THESE.get(body.full_name)) and not in_path
        operation["requestBody"] = {"required": needed, "content": {"application/json": {"schema": schema}}}
    return operation


def _query_parameters(request: descriptor.Descriptor, in_path: list[str], schemas: dict[str, Any]) -> list[Any]:
    parameters: list[Any] = []
    for field in request.fields:
        if field.name in in_path:
            continue
        schema = _field_schema(request, field, schemas)
        schema.pop("nullable", None)  # a query has no null
        if field.message_type is not None and field.message_type.full_name not in _WELL_KNOWN:
            if not field.message_type.GetOptions().map_entry:
                continue  # a message in the query: not expressible
            # labels[team]=ops; a key may hold brackets, but not "][" (a nested object's form).
            schema["propertyNames"] = {"pattern": "^((?!\\]\\[).)*$"}
            parameters.append({"name": field.json_name, "in": "query", "style": "deepObject", "explode": True,
                               "schema": schema})  # fmt: skip
            continue
        parameters.append({"name": field.json_name, "in": "query", "schema": schema})
    return parameters


def _ok(route: Route, output: descriptor.Descriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    stream = STREAMS.get(route.rpc)
    if stream is not None:
        content_type, description = stream
        return {"description": description, "content": {content_type: {"schema": {"type": "string"}}}}
    return {"description": "OK", "content": {"application/json": {"schema": _ref(output, schemas)}}}


def _ref(message: descriptor.Descriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    if message.full_name in _WELL_KNOWN:
        return dict(_WELL_KNOWN[message.full_name])
    if message.full_name not in schemas:
        schemas[message.full_name] = {}  # placed first: a message may refer to itself
        schemas[message.full_name] = _object(message, schemas)
    return {"$ref": f"#/components/schemas/{message.full_name}"}


def _object(message: descriptor.Descriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    """A message's schema: its fields, no others (the server refuses unknown fields), what is required, and at
    most one field of each choice (a proto oneof, or a pair the server takes one of)."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {field.json_name: _field_schema(message, field, schemas) for field in message.fields},
        "additionalProperties": False,
    }
    required = REQUIRED.get(message.full_name, ())
    if required:
        schema["required"] = list(required)
    exclusive = [[field.json_name for field in oneof.fields] for oneof in message.oneofs if len(oneof.fields) > 1] + [
        list(pair) for pair in NOT_BOTH.get(message.full_name, ())
    ]
    if exclusive:
        # Both given, and neither null (protobuf reads null as unset).
        schema["not"] = {"anyOf": [{"required": [a, b], "properties": {a: _GIVEN, b: _GIVEN}}
                                   for group in exclusive for a, b in _pairs(group)]}  # fmt: skip
    if message.full_name in ONE_OF_THESE:
        schema["anyOf"] = ONE_OF_THESE[message.full_name]
    return schema


def _pairs(names: list[str]) -> list[tuple[str, str]]:
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]


def _without_required(message: descriptor.Descriptor, schemas: dict[str, Any], dropped: list[str]) -> dict[str, Any]:
    """The message's schema inline, without the fields the path gives among the required."""
    _ref(message, schemas)
    schema = dict(schemas[message.full_name])
    names = {field.name: field.json_name for field in message.fields}
    left = [name for name in schema.get("required", []) if name not in {names.get(d, d) for d in dropped}]
    schema.pop("required", None)
    if left:
        schema["required"] = left
    return schema


def _field_schema(
    message: descriptor.Descriptor, field: descriptor.FieldDescriptor, schemas: dict[str, Any]
) -> dict[str, Any]:
    rule = RULES.get(f"{message.full_name}.{field.name}") or RULES.get(field.name) or {}
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value = field.message_type.fields_by_name["value"]
        schema = {"type": "object", "additionalProperties": {**_single(value, schemas), **rule.get("values", {})}}
        return {**schema, **{k: v for k, v in rule.items() if k != "values"}, "nullable": True}
    schema = _single(field, schemas)
    if field.is_repeated:
        return {"type": "array", "items": {**schema, **rule.get("items", {})},
                **{k: v for k, v in rule.items() if k != "items"}, "nullable": True}  # fmt: skip
    if "$ref" in schema:
        return schema  # a reference takes no siblings in OpenAPI 3.0
    return {**schema, **rule, "nullable": True}


def _single(field: descriptor.FieldDescriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    if field.type == FD.TYPE_MESSAGE and field.message_type is not None:
        return _ref(field.message_type, schemas)
    if field.type == FD.TYPE_ENUM and field.enum_type is not None:
        values = [value.name for value in field.enum_type.values if value.name not in HIDDEN_ENUM_VALUES]
        return {"type": "string", "enum": values}
    return dict(_SCALARS.get(field.type, {"type": "string"}))
