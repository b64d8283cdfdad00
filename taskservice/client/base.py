"""What TaskClient and AsyncTaskClient share: their settings, the call metadata and the cursors they follow."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any

import grpc

from taskservice.client.cursors import ManyCursor, WaitCursor, WatchCursor
from taskservice.client.security import Security, resolve_address
from taskservice.client.wire import trace_headers
from taskservice.v1 import task_service_pb2_grpc as pb_grpc

# Per-RPC deadline of unary calls, seconds; streams (watch) have none, they last as long as the task.
DEFAULT_TIMEOUT = 30.0
# How long watch() keeps reconnecting to an unreachable server before it gives up, seconds.
DEFAULT_RECONNECT_TIMEOUT = 30.0
_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    # Ping so that a dead server is noticed during a long, quiet watch instead of hanging forever.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
    # gRPC's own reconnect backoff starts at 1 s and grows to 120 s; keep it short so that a watch
    # finds a restarted server within our reconnect budget.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
)


class ClientBase(abc.ABC):
    """What TaskClient and AsyncTaskClient share: settings, channel and stub, watch cursors."""

    def __init__(
        self,
        address: str | None = None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        reconnect_timeout: float = DEFAULT_RECONNECT_TIMEOUT,
        token: str | None = None,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        trace_context: Mapping[str, str] | None = None,
    ) -> None:
        self.address = resolve_address(address)
        # Sent with each call when no OpenTelemetry span is current (taskctl passes TRACEPARENT this way).
        self.trace_context = dict(trace_context or {})
        self.timeout = timeout
        self.reconnect_timeout = reconnect_timeout
        self.security = Security.resolve(token=token, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key)
        self._metadata = self.security.metadata()
        credentials = self.security.channel_credentials() if self.security.uses_tls else None
        self._channel = self._open_channel(self.address, credentials)
        self._stub = pb_grpc.TaskServiceStub(self._channel)

    def _call_metadata(self) -> tuple[tuple[str, str], ...] | None:
        """The token, and the caller's trace context: the server's spans and the task's join the caller's trace."""
        traced = trace_headers() or tuple(self.trace_context.items())
        if not traced:
            return self._metadata
        return (*(self._metadata or ()), *traced)

    @abc.abstractmethod
    def _open_channel(self, address: str, credentials: grpc.ChannelCredentials | None) -> Any:
        """A plaintext channel without credentials, a TLS one with them."""

    def _cursor(
        self, task_id: str, after_sequence: int, timeout: float | None, started: float | None = None
    ) -> WatchCursor:
        return WatchCursor(
            task_id,
            after_sequence,
            reconnect_timeout=self.reconnect_timeout,
            timeout=timeout,
            security=self.security,
            started=started,
        )

    def _many_cursor(self, task_ids: Sequence[str], timeout: float | None, ignore_missing: bool) -> ManyCursor:
        unique = list(dict.fromkeys(task_ids))
        return ManyCursor(unique, ignore_missing=ignore_missing, reconnect_timeout=self.reconnect_timeout,
                           timeout=timeout, security=self.security)  # fmt: skip

    def _wait_cursor(self, task_id: str, timeout: float | None) -> WaitCursor:
        return WaitCursor(task_id, reconnect_timeout=self.reconnect_timeout, timeout=timeout, security=self.security)
