"""GET /openapi.json: the routes of routes.py, their parameters and bodies, with JSON schemas made from the proto's
messages (canonical JSON: lowerCamelCase names, 64-bit integers as strings, Timestamps as RFC 3339 strings,
Durations as "1.5s"), and google.rpc.Status for every error."""

from __future__ import annotations

from typing import Any, cast

from google.protobuf import descriptor

from taskservice.server.http.routes import ROUTES, Route, request_class
from taskservice.v1 import task_service_pb2 as pb

FD = descriptor.FieldDescriptor
_SCALARS: dict[int, dict[str, Any]] = {
    FD.TYPE_STRING: {"type": "string"},
    FD.TYPE_BOOL: {"type": "boolean"},
    FD.TYPE_DOUBLE: {"type": "number"},
    FD.TYPE_FLOAT: {"type": "number"},
    FD.TYPE_INT32: {"type": "integer", "format": "int32"},
    FD.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FD.TYPE_UINT32: {"type": "integer", "format": "int32", "minimum": 0},
    FD.TYPE_INT64: {"type": "string", "format": "int64"},
    FD.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FD.TYPE_BYTES: {"type": "string", "format": "byte"},
}
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": "^-?[0-9]+(\\\\.[0-9]+)?s$", "example": "30s"},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {},
}
_STATUS = {
    "type": "object",
    "description": "google.rpc.Status: the gRPC code, a message, and details such as google.rpc.BadRequest",
    "properties": {
        "code": {"type": "integer"},
        "message": {"type": "string"},
        "details": {"type": "array", "items": {"type": "object", "additionalProperties": True}},
    },
}


def openapi_document() -> dict[str, Any]:
    schemas: dict[str, Any] = {"google.rpc.Status": _STATUS}
    paths: dict[str, Any] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.http_method.lower()] = _operation(route, schemas)
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


def _operation(route: Route, schemas: dict[str, Any]) -> dict[str, Any]:
    # The C (upb) and Python descriptor classes have one interface; the stubs name both.
    request = cast(descriptor.Descriptor, request_class(route.rpc).DESCRIPTOR)
    method = pb.DESCRIPTOR.services_by_name["TaskService"].methods_by_name[route.rpc]
    in_path = {part.split("}")[0] for part in route.path.split("{")[1:]}
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in sorted(in_path)
    ]
    if not route.body:
        for field in request.fields:
            if field.name in in_path:
                continue
            schema = _field_schema(field, schemas)
            if field.message_type is not None and field.message_type.full_name not in _WELL_KNOWN:
                if not field.message_type.GetOptions().map_entry:
                    continue  # a message in the query: not expressible
                parameters.append({"name": f"{field.json_name}[key]", "in": "query", "schema": {"type": "string"}})
                continue
            parameters.append({"name": field.json_name, "in": "query", "schema": schema})
    operation: dict[str, Any] = {
        "operationId": route.rpc,
        "summary": route.summary,
        "parameters": parameters,
        "responses": {
            "200": _ok(route, method.output_type, schemas),
            "default": {
                "description": "an error",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/google.rpc.Status"}}},
            },
        },
    }
    if route.body:
        body = request if route.body == "*" else request.fields_by_name[route.body].message_type
        assert body is not None
        operation["requestBody"] = {
            "required": route.body != "*",
            "content": {"application/json": {"schema": _ref(body, schemas)}},
        }
    return operation


def _ok(route: Route, output: descriptor.Descriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    if route.rpc == "WatchProgress":
        return {"description": "Server-Sent Events, each data a WatchProgressResponse",
                "content": {"text/event-stream": {"schema": {"type": "string"}}}}  # fmt: skip
    if route.rpc == "WatchLogs":
        return {"description": "the log's bytes", "content": {"text/plain": {"schema": {"type": "string"}}}}
    return {"description": "OK", "content": {"application/json": {"schema": _ref(output, schemas)}}}


def _ref(message: descriptor.Descriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    if message.full_name in _WELL_KNOWN:
        return _WELL_KNOWN[message.full_name]
    if message.full_name not in schemas:
        schemas[message.full_name] = {}  # placed first: a message may refer to itself
        schemas[message.full_name] = {
            "type": "object",
            "properties": {field.json_name: _field_schema(field, schemas) for field in message.fields},
        }
    return {"$ref": f"#/components/schemas/{message.full_name}"}


def _field_schema(field: descriptor.FieldDescriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value = field.message_type.fields_by_name["value"]
        return {"type": "object", "additionalProperties": _single(value, schemas)}
    schema = _single(field, schemas)
    if field.is_repeated:
        return {"type": "array", "items": schema}
    return schema


def _single(field: descriptor.FieldDescriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    if field.type == FD.TYPE_MESSAGE and field.message_type is not None:
        return _ref(field.message_type, schemas)
    if field.type == FD.TYPE_ENUM and field.enum_type is not None:
        return {"type": "string", "enum": [value.name for value in field.enum_type.values]}
    return dict(_SCALARS.get(field.type, {"type": "string"}))
