"""Mapping of gRPC statuses (and BadRequest details) to the client's exception tree (no server)."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from taskservice import client as c
from taskservice.client import errors


def _details(code: int, message: str, violations: list[tuple[str, str]]) -> bytes:
    bad_request = error_details_pb2.BadRequest(
        field_violations=[error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in violations]
    )
    detail = any_pb2.Any()
    detail.Pack(bad_request)
    return status_pb2.Status(code=code, message=message, details=[detail]).SerializeToString()


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (grpc.StatusCode.NOT_FOUND, c.TaskNotFound),
        (grpc.StatusCode.INVALID_ARGUMENT, c.InvalidArgument),
        (grpc.StatusCode.ALREADY_EXISTS, c.AlreadyExists),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, c.QueueFull),
        (grpc.StatusCode.UNAVAILABLE, c.Unavailable),
        (grpc.StatusCode.OUT_OF_RANGE, c.OutOfRange),
        (grpc.StatusCode.DEADLINE_EXCEEDED, c.DeadlineExceeded),
        (grpc.StatusCode.INTERNAL, c.TaskServiceError),
        (grpc.StatusCode.PERMISSION_DENIED, c.TaskServiceError),
    ],
)
def test_status_code_selects_class(code: grpc.StatusCode, cls: type[c.TaskServiceError]) -> None:
    err = errors.error_from_status(code, "something happened")
    assert type(err) is cls
    assert isinstance(err, c.TaskServiceError)
    assert err.code is code
    assert err.message == "something happened"
    assert err.field_violations == []
    assert str(err) == f"{code.name}: something happened"


def test_bad_request_details_become_field_violations_and_one_line() -> None:
    message = "args do not fit task type 'demo'"
    metadata = [
        ("content-type", "application/grpc"),
        (
            "grpc-status-details-bin",
            _details(code_pb2.INVALID_ARGUMENT, message, [("args.steps", "expected an integer, got 10.5")]),
        ),
    ]
    err = errors.error_from_status(grpc.StatusCode.INVALID_ARGUMENT, message, metadata)
    assert isinstance(err, c.InvalidArgument)
    assert err.field_violations == [("args.steps", "expected an integer, got 10.5")]
    assert str(err) == "INVALID_ARGUMENT: args do not fit task type 'demo' (args.steps: expected an integer, got 10.5)"


def test_violation_already_in_message_is_not_repeated() -> None:
    message = "bad args: args.steps: expected an integer, got 10.5"
    metadata = [("grpc-status-details-bin", _details(3, message, [("args.steps", "expected an integer, got 10.5")]))]
    err = errors.error_from_status(grpc.StatusCode.INVALID_ARGUMENT, message, metadata)
    assert str(err) == f"INVALID_ARGUMENT: {message}"
    assert err.field_violations == [("args.steps", "expected an integer, got 10.5")]


def test_violation_whose_description_the_message_says_is_not_repeated() -> None:
    message = "unknown task type 'nope' (registered: demo, sleep)"
    metadata = [("grpc-status-details-bin", _details(3, message, [("task_type", "unknown task type 'nope'")]))]
    err = errors.error_from_status(grpc.StatusCode.INVALID_ARGUMENT, message, metadata)
    assert str(err) == f"INVALID_ARGUMENT: {message}"


def test_multiline_messages_become_one_line() -> None:
    err = errors.error_from_status(grpc.StatusCode.INTERNAL, "first line\n  second line")
    assert str(err) == "INTERNAL: first line second line"
    assert "\n" not in str(err)


def test_malformed_details_are_ignored() -> None:
    err = errors.error_from_status(grpc.StatusCode.INVALID_ARGUMENT, "nope", [("grpc-status-details-bin", b"\xff\xff")])
    assert isinstance(err, c.InvalidArgument)
    assert err.field_violations == []


def test_error_from_rpc_reads_the_call() -> None:
    class FakeCall(grpc.RpcError):
        def code(self) -> grpc.StatusCode:
            return grpc.StatusCode.INVALID_ARGUMENT

        def details(self) -> str:
            return "unknown task type 'nope'"

        def trailing_metadata(self) -> list[tuple[str, bytes]]:
            return [
                (
                    "grpc-status-details-bin",
                    _details(3, "unknown task type 'nope'", [("task_type", "unknown")]),
                )
            ]

    err = errors.error_from_rpc(FakeCall())
    assert isinstance(err, c.InvalidArgument)
    assert err.field_violations == [("task_type", "unknown")]


def test_error_from_bare_rpc_error_is_unknown() -> None:
    err = errors.error_from_rpc(grpc.RpcError())
    assert type(err) is c.TaskServiceError
    assert err.code is grpc.StatusCode.UNKNOWN


def test_deadline_exceeded_is_a_timeout_error() -> None:
    err = c.DeadlineExceeded("too slow")
    assert isinstance(err, TimeoutError)
    assert str(err) == "DEADLINE_EXCEEDED: too slow"


def test_exception_defaults_and_explicit_code() -> None:
    assert c.TaskNotFound("x").code is grpc.StatusCode.NOT_FOUND
    assert c.TaskServiceError("x").code is grpc.StatusCode.UNKNOWN
    assert c.TaskServiceError("x", code=grpc.StatusCode.INTERNAL).code is grpc.StatusCode.INTERNAL
    assert str(c.TaskServiceError("", code=grpc.StatusCode.CANCELLED)) == "CANCELLED"
