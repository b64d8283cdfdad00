"""Bearer-token authentication: tokens from a file, compared in constant time, re-read on SIGHUP."""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

log = logging.getLogger(__name__)

# Probes must work without a token; everything else (TaskService, reflection) needs one.
OPEN_SERVICES = ("/grpc.health.v1.Health/",)
METADATA_KEY = "authorization"
SCHEME = "bearer "


class TokenFileError(Exception):
    """The token file cannot be read or holds no token."""


class TokenFile:
    """Bearer tokens from a file, one per line ('#' starts a comment). Several may be valid at once,
    so a token is rotated by adding the new one, reloading, moving clients, then removing the old one."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._tokens: tuple[bytes, ...] = self._read()

    def _read(self) -> tuple[bytes, ...]:
        try:
            lines = self.path.read_text().splitlines()
        except OSError as exc:
            raise TokenFileError(f"cannot read token file {self.path}: {exc.strerror or exc}") from exc
        tokens = tuple(line.strip().encode() for line in lines if line.strip() and not line.lstrip().startswith("#"))
        if not tokens:
            raise TokenFileError(f"token file {self.path} holds no token; every client would be locked out")
        return tokens

    def reload(self) -> bool:
        """Re-read the file; on any problem keep the tokens in force and say why. True when reloaded."""
        try:
            tokens = self._read()
        except TokenFileError as exc:
            log.error("%s; keeping the %d tokens in force", exc, len(self._tokens))
            return False
        with self._lock:
            self._tokens = tokens
        log.info("reloaded %d bearer tokens from %s", len(tokens), self.path)
        return True

    def accepts(self, presented: str) -> bool:
        """True when `presented` equals one of the tokens; compares with every token, in constant time."""
        with self._lock:
            tokens = self._tokens
        candidate = presented.encode()
        matched = False
        for token in tokens:
            matched |= hmac.compare_digest(candidate, token)
        return matched


def _rejection(
    code: grpc.StatusCode, message: str, handler: grpc.RpcMethodHandler[Any, Any]
) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of the same kind as `handler` that answers `code` without running anything."""

    async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(code, message)

    async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(code, message)
        yield  # pragma: no cover - makes this an async generator, as a streaming handler must be

    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            stream, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            unary, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )
    # Client- and bidi-streaming methods (reflection): the request iterator is never read.
    return grpc.stream_stream_rpc_method_handler(
        stream, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
    )


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """Answers UNAUTHENTICATED, before any handler runs, to calls without a valid `authorization: Bearer` token."""

    def __init__(self, tokens: TokenFile) -> None:
        self._tokens = tokens

    async def intercept_service(  # type: ignore[override] # grpc's stub makes it generic; any handler passes
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method or ""
        if handler is None or method.startswith(OPEN_SERVICES):
            return handler
        presented = ""
        for key, value in handler_call_details.invocation_metadata or ():
            if key == METADATA_KEY and isinstance(value, str):
                presented = value
        if not presented:
            return _rejection(
                grpc.StatusCode.UNAUTHENTICATED,
                "this server requires a bearer token: send metadata 'authorization: Bearer <token>' "
                "(taskctl --token, or TASKSERVICE_TOKEN)",
                handler,
            )
        if not presented.lower().startswith(SCHEME) or not self._tokens.accepts(presented[len(SCHEME) :].strip()):
            return _rejection(grpc.StatusCode.UNAUTHENTICATED, "the bearer token is not valid", handler)
        return handler
