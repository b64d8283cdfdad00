"""One table: engine error -> gRPC status code, message and google.rpc.BadRequest details."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from taskservice.core.model import errors

STATUS_BY_ERROR: dict[type[errors.TaskServiceError], grpc.StatusCode] = {
    errors.TaskNotFound: grpc.StatusCode.NOT_FOUND,
    errors.ScheduleNotFound: grpc.StatusCode.NOT_FOUND,
    errors.LimitNotFound: grpc.StatusCode.NOT_FOUND,
    errors.InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    errors.TaskConflict: grpc.StatusCode.ALREADY_EXISTS,
    errors.QueueFull: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.ShuttingDown: grpc.StatusCode.UNAVAILABLE,
    errors.StoreUnavailable: grpc.StatusCode.UNAVAILABLE,
    errors.StoreDamaged: grpc.StatusCode.DATA_LOSS,
    errors.SequenceOutOfRange: grpc.StatusCode.OUT_OF_RANGE,
    errors.WrongState: grpc.StatusCode.FAILED_PRECONDITION,
}


def status_code_for(exc: errors.TaskServiceError) -> grpc.StatusCode:
    return next((status for kind, status in STATUS_BY_ERROR.items() if isinstance(exc, kind)), grpc.StatusCode.INTERNAL)


def status_for(exc: errors.TaskServiceError) -> grpc.Status:
    """The rich status for an engine error; field problems carry a BadRequest detail."""
    return rich_status(status_code_for(exc), exc.message, getattr(exc, "field_violations", []))


def rich_status(code: grpc.StatusCode, message: str, field_violations: list[tuple[str, str]]) -> grpc.Status:
    status = status_pb2.Status(code=code.value[0], message=message)
    if field_violations:
        detail = any_pb2.Any()
        detail.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
                    for field, description in field_violations
                ]
            )
        )
        status.details.append(detail)
    rich: grpc.Status = rpc_status.to_status(status)
    return rich
