"""The client's one exception tree, rooted at `TaskServiceError`, and how a failed gRPC call maps onto it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from taskservice.client.models import Task

if TYPE_CHECKING:
    from taskservice.client.security import Security

_DETAILS_KEY = "grpc-status-details-bin"


class TaskServiceError(Exception):
    """An RPC failed. `code` is the gRPC status code, `message` the server's text, and
    `field_violations` the (field, description) pairs of google.rpc.BadRequest details, if any."""

    default_code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        field_violations: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(message)
        self.code: grpc.StatusCode = code if code is not None else self.default_code
        self.message = message
        self.field_violations: list[tuple[str, str]] = list(field_violations)

    def __str__(self) -> str:
        # One line a person can act on; violations the message does not already say are appended.
        text = f"{self.code.name}: {self.message}" if self.message else self.code.name
        extra = [f"{f}: {d}" if d else f for f, d in self.field_violations if not (d and d in self.message)]
        if extra:
            text += f" ({'; '.join(extra)})"
        return " ".join(text.split())


class TaskNotFound(TaskServiceError):
    """No task has this id (NOT_FOUND)."""

    default_code = grpc.StatusCode.NOT_FOUND


class InvalidArgument(TaskServiceError):
    """The request was rejected: unknown type, args that do not fit, bad id or limit (INVALID_ARGUMENT)."""

    default_code = grpc.StatusCode.INVALID_ARGUMENT


class AlreadyExists(TaskServiceError):
    """A different request was submitted before under this task_id (ALREADY_EXISTS)."""

    default_code = grpc.StatusCode.ALREADY_EXISTS


class QueueFull(TaskServiceError):
    """The server's queue is at its bound (RESOURCE_EXHAUSTED); retry later."""

    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(TaskServiceError):
    """The server cannot be reached or is draining (UNAVAILABLE)."""

    default_code = grpc.StatusCode.UNAVAILABLE


class OutOfRange(TaskServiceError):
    """A watch asked to resume after events the server no longer keeps (OUT_OF_RANGE)."""

    default_code = grpc.StatusCode.OUT_OF_RANGE


class FailedPrecondition(TaskServiceError):
    """The task's state does not allow the request (FAILED_PRECONDITION), e.g. a retry of a task that succeeded."""

    default_code = grpc.StatusCode.FAILED_PRECONDITION


class DeadlineExceeded(TaskServiceError, TimeoutError):
    """A call or a wait() did not finish in time (DEADLINE_EXCEEDED); also a TimeoutError. From wait(), `task` is
    the task as the server last showed it (not ended); else None."""

    default_code = grpc.StatusCode.DEADLINE_EXCEEDED
    task: Task | None = None


ERROR_CLASSES: dict[grpc.StatusCode, type[TaskServiceError]] = {
    cls.default_code: cls
    for cls in (
        TaskNotFound,
        InvalidArgument,
        AlreadyExists,
        QueueFull,
        Unavailable,
        OutOfRange,
        DeadlineExceeded,
        FailedPrecondition,
    )
}


def error_from_status(
    code: grpc.StatusCode, message: str, trailing_metadata: Iterable[tuple[str, str | bytes]] | None = None
) -> TaskServiceError:
    """Build the typed exception of a failed call from its status and trailing metadata."""
    violations: list[tuple[str, str]] = []
    for key, value in trailing_metadata or ():
        if key == _DETAILS_KEY and isinstance(value, bytes):
            violations.extend(_field_violations(value))
    cls = ERROR_CLASSES.get(code, TaskServiceError)
    return cls(message or "", code=code, field_violations=violations)


def error_from_rpc(err: grpc.RpcError) -> TaskServiceError:
    """Map a grpc (sync or aio) RpcError to the typed exception tree."""
    # grpc.RpcError declares nothing; the instances raised by calls are also grpc.Call / AioRpcError.
    code = _call_attr(err, "code") or grpc.StatusCode.UNKNOWN
    return error_from_status(code, _call_attr(err, "details") or "", _call_attr(err, "trailing_metadata"))


# How gRPC describes a connection the server closed before any call: a TLS handshake it refused.
_CLOSED_AT_CONNECT = ("Socket closed", "handshake", "Connection reset")


def connection_hint(error: TaskServiceError, security: Security) -> TaskServiceError:
    """The error, with a likely cause added when the server shut the connection at once: a TLS setting."""
    if error.code is not grpc.StatusCode.UNAVAILABLE or not any(m in error.message for m in _CLOSED_AT_CONNECT):
        return error
    if not security.uses_tls:
        hint = "the server may speak TLS only: pass its CA (tls_ca, taskctl --tls-ca, TASKSERVICE_TLS_CA)"
    elif not security.tls_cert:
        hint = (
            "the server probably requires a client certificate (mutual TLS): pass tls_cert and tls_key "
            "(taskctl --tls-cert/--tls-key, TASKSERVICE_CLIENT_CERT/_KEY)"
        )
    else:
        hint = "the server probably does not trust this client certificate: it must be signed by its --tls-client-ca"
    error.message = f"{error.message} ({hint})"
    error.args = (error.message,)
    return error


@contextlib.contextmanager
def rpc_errors(security: Security | None = None) -> Iterator[None]:
    """Raise the typed exception for a grpc error inside the block."""
    try:
        yield
    except grpc.RpcError as err:
        error = error_from_rpc(err)
        raise (connection_hint(error, security) if security is not None else error) from err


def _call_attr(err: grpc.RpcError, name: str) -> Any:
    getter = getattr(err, name, None)
    return getter() if callable(getter) else None


def _field_violations(status_bytes: bytes) -> list[tuple[str, str]]:
    # A malformed details trailer must not hide the error itself: ignore what cannot be parsed.
    try:
        status = status_pb2.Status.FromString(status_bytes)
    except DecodeError:
        return []
    violations: list[tuple[str, str]] = []
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):  # False for other kinds of detail
            violations.extend((v.field, v.description) for v in bad_request.field_violations)
    return violations
