"""gRPC status -> HTTP status and body: a google.rpc.Status as JSON, with the details the servicer attached.

The mapping is grpc-gateway's (and Google's API design guide's), so clients of either read it the same way.
"""

from __future__ import annotations

import grpc
from aiohttp import web
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2

from taskservice.server.http.gateway import RpcAbort

# Imported for its messages: the JSON of a Status's Any details needs their descriptors.
__all__ = ["HTTP_STATUS", "error_details_pb2", "error_dict", "error_response"]

HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}


def error_dict(abort: RpcAbort) -> dict[str, object]:
    return json_format.MessageToDict(abort.status())


def error_response(abort: RpcAbort) -> web.Response:
    return web.json_response(error_dict(abort), status=HTTP_STATUS.get(abort.code, 500))


def invalid(message: str, field: str = "") -> RpcAbort:
    """An INVALID_ARGUMENT of the HTTP layer itself (a body that is not JSON, a query that is not a number)."""
    status = status_pb2.Status(code=grpc.StatusCode.INVALID_ARGUMENT.value[0], message=message)
    if field:
        status.details.add().Pack(
            error_details_pb2.BadRequest(
                field_violations=[error_details_pb2.BadRequest.FieldViolation(field=field, description=message)]
            )
        )
    details = [("grpc-status-details-bin", status.SerializeToString())]
    return RpcAbort(grpc.StatusCode.INVALID_ARGUMENT, message, details)
