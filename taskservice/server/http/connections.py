"""How many connections the HTTP face holds, and how long a client may take to send a request's headers.

Both are checked before any request is read, so they hold before auth: a client that opens connections and never
finishes its headers (or sends nothing) is closed after HEADER_SECONDS, and past `--http-max-connections` a new
connection is answered 503 and closed at once. The cap stays well under the process's descriptor limit, so
clients can never take the descriptors that tasks, the database and gRPC need.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any

from aiohttp import web

from taskservice.core.engine.throttle import ThrottledLog

log = logging.getLogger("taskservice.http")

# A request's headers must have arrived this long after the connection opened (or the previous answer ended);
# an idle keep-alive connection is closed after as long.
HEADER_SECONDS = 10.0
# The HTTP face keeps at most this share of the process's descriptors.
DESCRIPTOR_SHARE = 4
_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 57\r\n\r\n"
    b"too many open HTTP connections to this server; try again"
)


def raise_descriptor_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit (commonly 1,024 of 524,288); the new one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open files limit from %d to %d: %s", soft, hard, exc)
    return soft


def connection_cap(wanted: int) -> int:
    """`wanted` (--http-max-connections), or less when the descriptor limit leaves room for fewer."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft // DESCRIPTOR_SHARE))


def cap_connections(server: web.Server, cap: int) -> None:
    """Past `cap` open connections, a new one is answered 503 and closed before anything of it is read."""
    admit = server.connection_made
    refused = ThrottledLog(log, logging.WARNING)

    # An instance attribute: aiohttp's RequestHandler calls its server's connection_made for each new connection.
    def connection_made(handler: Any, transport: asyncio.Transport) -> None:
        admit(handler, transport)
        if len(server.connections) > cap:
            refused.log("refusing HTTP connections: %d are open, --http-max-connections is %d", cap, cap)
            transport.write(_REFUSAL)
            transport.close()

    server.connection_made = connection_made  # type: ignore[method-assign]
