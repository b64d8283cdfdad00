"""What the HTTP face refuses before any route runs, and the headers every answer carries.

With tokens off (the default) a browser is the attacker's way in: a page of another site can send a simple POST
(a form, or `fetch` with `mode: 'no-cors'`) to the server on the user's machine, and a name the attacker rebinds
to 127.0.0.1 can read every answer. So:

- a listener on a loopback address answers only a Host that names loopback (`localhost`, `127.x.y.z`, `[::1]`,
  any port) or one `--http-allowed-hosts` lists: a rebound name is refused before it reads anything (403);
- a request that changes state (POST, DELETE) from a browser page of another origin is refused (403): its Origin
  (or, without one, its Sec-Fetch-Site) must be the server's own or `--http-cors-origin`;
- a POST's body, when it has one, must be JSON (`Content-Type: application/json`), the one type a page of another
  site cannot send without asking first (CORS preflight): 415 otherwise. The legacy `/API/tasks` also takes a
  body with no type, as its old clients send it;
- every answer forbids framing and sniffing, and the dashboard may run only its own script (CSP).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import grpc
from aiohttp import web
from aiohttp.typedefs import Middleware

from taskservice.server.http.errors import error_response
from taskservice.server.http.gateway import RpcAbort

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

LOOPBACK_NAMES = frozenset({"localhost", "::1"})
_STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_LEGACY_PREFIX = "/API/"
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
}


@dataclass(frozen=True, slots=True)
class HostRule:
    """The Host names a listener answers: loopback ones (when it listens on loopback) and the operator's own;
    `*` any, `*.example.com` that domain's names. `any_host` when nothing restricts them."""

    loopback: bool
    names: frozenset[str] = frozenset()

    @property
    def any_host(self) -> bool:
        return (not self.loopback and not self.names) or "*" in self.names

    def allows(self, name: str) -> bool:
        if self.any_host or name in self.names:
            return True
        if any(pattern.startswith("*.") and name.endswith(pattern[1:]) for pattern in self.names):
            return True
        return self.loopback and _names_loopback(name)


def host_rule(listen_host: str, allowed: Iterable[str] = ()) -> HostRule:
    """The rule for a listener on `listen_host` (as --http-listen names it), with --http-allowed-hosts."""
    names = frozenset(_host_name(name) for name in allowed if name.strip())
    return HostRule(loopback=_names_loopback(_host_name(listen_host)), names=names)


def _names_loopback(name: str) -> bool:
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_name(host: str) -> str:
    """'Example.com.:8080' -> 'example.com'; '[::1]:8080' -> '::1'."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit() and ":" not in name:
        host = name
    return host.rstrip(".")


def _netloc(origin: str) -> str:
    """'https://Ops.example.com:8443' -> 'ops.example.com:8443' ('' for 'null' or anything not an origin)."""
    scheme, sep, rest = origin.strip().lower().partition("://")
    return rest.rstrip("/") if sep and scheme in ("http", "https") else ""


def guard(rule: HostRule, cors_origin: str = "") -> Middleware:
    trusted = _netloc(cors_origin)

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host")
        if host is not None and not rule.allows(_host_name(host)):
            return _refused(
                grpc.StatusCode.PERMISSION_DENIED,
                f"this server does not answer for the host {host[:100]!r}: a server listening on loopback answers "
                "localhost, 127.0.0.1 and [::1]; start it with --http-allowed-hosts to name others",
            )
        if request.method in _STATE_CHANGING:
            refusal = _cross_site(request, host or "", trusted) or _not_json(request)
            if refusal is not None:
                return refusal
        return await handler(request)

    return check


def _cross_site(request: web.Request, host: str, trusted: str) -> web.Response | None:
    origin = request.headers.get("Origin")
    if origin is not None:
        netloc = _netloc(origin)
        if netloc and (netloc == host.strip().lower() or netloc == trusted):
            return None
        return _refused(
            grpc.StatusCode.PERMISSION_DENIED,
            f"a page of {origin[:100]!r} may not change anything here: requests that change state must come from "
            "this server's own pages, from --http-cors-origin, or from a client that is not a browser",
        )
    if request.headers.get("Sec-Fetch-Site", "").lower() in ("cross-site", "same-site"):
        return _refused(grpc.StatusCode.PERMISSION_DENIED, "a page of another site may not change anything here")
    return None


def _not_json(request: web.Request) -> web.Response | None:
    if not request.can_read_body:
        return None  # an empty body carries nothing, whatever it is called
    declared = "Content-Type" in request.headers
    kind = request.content_type.lower() if declared else ""
    if kind == "application/json" or kind.endswith("+json"):
        return None
    if not declared and request.path.startswith(_LEGACY_PREFIX):
        return None  # the legacy call's old clients send JSON without saying so
    response = error_response(
        RpcAbort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"the request body must be JSON sent as 'Content-Type: application/json', not {kind or 'untyped'!r}",
        )
    )
    response.set_status(415)
    return response


def _refused(code: grpc.StatusCode, message: str) -> web.Response:
    return error_response(RpcAbort(code, message))


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
