"""What watches calls go by (metrics, tracing) hears them here: gRPC calls through one server interceptor, which
wraps each method's behaviour so that each observer hears the call begin, in the call's own task (so a span it
makes is current while the servicer runs), and end, with the status code it ended with (a stream: when it ends);
HTTP calls through one aiohttp middleware, the same way."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol

import grpc
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

_CODES_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


class CallObserver(Protocol):
    def call_began(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        """A call of `method` (its full path) begins; what is returned is handed to call_ended(). Never raises."""

    def call_ended(self, began: Any, method: str, code: str) -> None:
        """The call ended with `code` (a grpc.StatusCode name). Never raises."""


def code_name(code: Any) -> str | None:
    """grpc.StatusCode or its number (grpc.aio returns either, by version) -> 'INVALID_ARGUMENT'; None when unset."""
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    if isinstance(code, int):
        found = _CODES_BY_NUMBER.get(code)
        return str(found.name) if found else None
    return None


def final_code(context: grpc.aio.ServicerContext[Any, Any], default: str) -> str:
    """The status an ended call carries: what the handler set or aborted with, else `default`."""
    try:
        return code_name(context.code()) or default
    except Exception:  # an odd context must not break the call it measures
        return default


# A client's deadline passes on its side a moment before the server's copy of it does (that copy counts from when
# the call arrived): its cancel, coming within this much of the server's deadline, is the deadline's.
DEADLINE_SLACK_SECONDS = 0.25


def ended_code(context: grpc.aio.ServicerContext[Any, Any], exc: BaseException) -> str:
    """The status of a call whose handler raised `exc`."""
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        try:
            remaining = context.time_remaining()
        except Exception:
            remaining = None
        # grpc cancels the handler both when the client goes away and when the deadline passes.
        return "DEADLINE_EXCEEDED" if remaining is not None and remaining <= DEADLINE_SLACK_SECONDS else "CANCELLED"
    # context.abort() sets the code, then raises AbortError; grpc answers UNKNOWN for any other exception that
    # escapes a handler, unless the handler set a code first.
    return final_code(context, "UNKNOWN")


class ObservingInterceptor(grpc.aio.ServerInterceptor):
    """Tells `observers` of every call's beginning and end, the first observer outermost."""

    def __init__(self, observers: Sequence[CallObserver]) -> None:
        self._observers = tuple(observers)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            # No such method: grpc answers UNIMPLEMENTED. Not observed, so clients cannot invent label values.
            return handler
        method = handler_call_details.method
        if handler.request_streaming and handler.response_streaming:
            behaviour, make = handler.stream_stream, grpc.stream_stream_rpc_method_handler
        elif handler.request_streaming:
            behaviour, make = handler.stream_unary, grpc.stream_unary_rpc_method_handler
        elif handler.response_streaming:
            behaviour, make = handler.unary_stream, grpc.unary_stream_rpc_method_handler
        else:
            behaviour, make = handler.unary_unary, grpc.unary_unary_rpc_method_handler
        wrapped = self._wrap(method, behaviour)
        if wrapped is behaviour:
            return handler
        return make(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _begin(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> list[Any]:
        return [observer.call_began(method, context) for observer in self._observers]

    def _end(self, began: list[Any], method: str, code: str) -> None:
        for observer, state in zip(reversed(self._observers), reversed(began), strict=True):
            observer.call_ended(state, method, code)

    def _wrap(self, method: str, behaviour: Any) -> Any:
        if inspect.isasyncgenfunction(behaviour):

            async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
                began = self._begin(method, context)
                code = "OK"
                responses = behaviour(request, context)
                try:
                    async for response in responses:
                        yield response
                    code = final_code(context, "OK")
                except BaseException as exc:
                    code = ended_code(context, exc)
                    raise
                finally:
                    try:
                        await responses.aclose()
                    finally:
                        self._end(began, method, code)

            return stream
        if inspect.iscoroutinefunction(behaviour):

            async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                began = self._begin(method, context)
                code = "OK"
                try:
                    response = await behaviour(request, context)
                    code = final_code(context, "OK")
                    return response
                except BaseException as exc:
                    code = ended_code(context, exc)
                    raise
                finally:
                    self._end(began, method, code)

            return unary
        # A synchronous behaviour runs on grpc's thread pool; not observed (this server has none).
        return behaviour


class HttpObserver(Protocol):
    def http_began(self, request: web.Request, route: str) -> Any:
        """An HTTP call of `route` (its pattern, "unmatched" when none) begins. Never raises."""

    def http_ended(self, began: Any, request: web.Request, route: str, status: int) -> None:
        """It ended with `status` (a stream: when it ended). Never raises."""


def observing_middleware(observers: Sequence[HttpObserver]) -> Middleware:
    """An aiohttp middleware telling `observers` of every call, the first outermost. Put it first, so that it sees
    the status every other middleware chose (a refused Host, a bad token)."""
    chain = tuple(observers)

    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        # Unmatched paths share one name: clients cannot invent label values.
        route = resource.canonical if resource is not None else "unmatched"
        began = [observer.http_began(request, route) for observer in chain]
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            for observer, state in zip(reversed(chain), reversed(began), strict=True):
                observer.http_ended(state, request, route, status)

    return observe
