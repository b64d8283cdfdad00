"""How an RPC's failure reaches its caller: engine errors as the status status.py maps them to, a request that did
not decode as INVALID_ARGUMENT, a shortage of descriptors as UNAVAILABLE, anything else as INTERNAL (logged)."""

from __future__ import annotations

import errno
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from taskservice.core.engine.throttle import ThrottledLog
from taskservice.core.model.errors import InvalidRequest, TaskServiceError
from taskservice.server.status import status_for

log = logging.getLogger("taskservice.server.servicer")

Request = TypeVar("Request")
Response = TypeVar("Response")


@dataclass(frozen=True, slots=True)
class UndecodableRequest:
    """Stands in for a request whose bytes are not the message they should be (garbage, too deeply nested)."""

    message_type: str
    reason: str


def check_decoded(request: Any) -> None:
    if isinstance(request, UndecodableRequest):
        raise InvalidRequest(
            f"the request is not a valid {request.message_type}: {request.reason}",
            [("request", "send a well-formed protobuf message (nesting depth under 100)")],
        )


# A descriptor shortage lasts: said once per interval, with a count, not once per call.
_descriptors_short = ThrottledLog(log)


async def abort_for(context: grpc.aio.ServicerContext[Any, Any], exc: BaseException) -> None:
    if isinstance(exc, TaskServiceError):
        status = status_for(exc)
        await context.abort(status.code, status.details, status.trailing_metadata)
    if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
        _descriptors_short.log("out of file descriptors: calls are answered UNAVAILABLE (%s)", exc)
        await context.abort(grpc.StatusCode.UNAVAILABLE, "the server has no file descriptor free; try again shortly")
    log.exception("unexpected error in an RPC", exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__}); see the server log")


def unary(
    method: Callable[[Any, Request, grpc.aio.ServicerContext[Any, Any]], Awaitable[Response]],
) -> Callable[[Any, Request, grpc.aio.ServicerContext[Any, Any]], Awaitable[Response]]:
    """Map engine errors to their status, in the one way status.py defines."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Request, context: grpc.aio.ServicerContext[Any, Any]) -> Response:
        try:
            check_decoded(request)
            return await method(self, request, context)
        except Exception as exc:
            await abort_for(context, exc)
            raise  # unreachable: abort raises

    return wrapper
