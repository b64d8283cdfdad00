"""The HTTP face of the server: the API over HTTP/JSON beside gRPC, in the same process and event loop (aiohttp).

Every route calls the gRPC servicer (gateway.py), so both faces share one implementation and one error table.
With bearer tokens on, every /v1/ and /API/ route needs `Authorization: Bearer <token>` (never a cookie); CORS
answers only the origin --http-cors-origin names. What is refused before any route runs (foreign Hosts, writes
from other sites' pages, bodies that are not JSON) is guard.py's.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import grpc
from aiohttp import web
from aiohttp.typedefs import Middleware

from taskservice.server.auth import SCHEME, TokenFile
from taskservice.server.http.connections import HEADER_SECONDS, cap_connections, connection_cap
from taskservice.server.http.errors import error_response
from taskservice.server.http.gateway import Gateway, RpcAbort
from taskservice.server.http.guard import HostRule, add_security_headers, guard, host_rule
from taskservice.server.http.legacy import add_legacy_routes
from taskservice.server.http.openapi import openapi_document
from taskservice.server.http.routes import MAX_LINE_BYTES, ROUTES, Route, unary
from taskservice.server.http.streams import events, logs, many_events
from taskservice.server.observing import HttpObserver, observing_middleware
from taskservice.server.servicer import TaskServiceServicer
from taskservice.server.settings import Settings

log = logging.getLogger("taskservice.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_BY_TEMPLATE = {(route.http_method, route.path): route for route in ROUTES}
# The routes of one member of a collection, /v1/{collection}/{its id}[:verb], by (method, collection, verb).
_MEMBERS = {
    (route.http_method, route.path.split("/")[2], route.path.rsplit("}", 1)[1].removeprefix(":")): route
    for route in ROUTES
    if route.path.count("/") == 3 and "{" in route.path
}
_PROTECTED = ("/v1/", "/API/")
# The dashboard: static files that need no build step; the page itself holds no data, so it is open.
STATIC = Path(__file__).parent / "static"
LOOPBACK_ONLY = host_rule("127.0.0.1")


@dataclass
class HttpServer:
    runner: web.AppRunner
    port: int

    async def close(self) -> None:
        await self.runner.cleanup()


def build_app(
    servicer: TaskServiceServicer,
    *,
    tokens: TokenFile | None = None,
    cors_origin: str = "",
    max_body_bytes: int = 16 * 2**20,
    legacy_task_type: str = "",
    hosts: HostRule = LOOPBACK_ONLY,
    observers: Sequence[HttpObserver] = (),
) -> web.Application:
    """`hosts`: the Host names answered (host_rule() of the listen address and --http-allowed-hosts); `observers`:
    what hears every call (metrics, tracing)."""
    gateway = Gateway(servicer)
    middlewares: list[Middleware] = [_errors, guard(hosts, cors_origin), _preflight(cors_origin), _auth(tokens)]
    if observers:
        middlewares.insert(0, observing_middleware(observers))
    app = web.Application(client_max_size=max_body_bytes, middlewares=middlewares)
    app.on_response_prepare.append(add_security_headers)
    if cors_origin:
        app.on_response_prepare.append(_cors_headers(cors_origin))
    for collection in ("tasks", "schedules", "limits"):
        app.router.add_route("*", f"/v1/{collection}", _collection(gateway, collection))
        app.router.add_route("*", f"/v1/{collection}:{{verb}}", _collection(gateway, collection))
        app.router.add_route("*", f"/v1/{collection}/{{name}}", _member(gateway, collection))
    for single in ("taskTypes", "stats", "nodes"):
        app.router.add_get(f"/v1/{single}", _collection(gateway, single))

    async def followed(request: web.Request) -> web.StreamResponse:
        return await many_events(gateway, _BY_TEMPLATE[("GET", "/v1/events")], request)

    app.router.add_get("/v1/events", followed)
    app.router.add_get("/v1/tasks/{name}/events", _under_member(gateway, events, "/v1/tasks/{task_id}/events"))
    app.router.add_get("/v1/tasks/{name}/logs", _under_member(gateway, logs, "/v1/tasks/{task_id}/logs"))
    app.router.add_get("/v1/tasks/{name}/history", _under_member(gateway, unary, "/v1/tasks/{task_id}/history"))
    document = openapi_document()

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_get("/openapi.json", openapi)

    async def alive(request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def ready(request: web.Request) -> web.Response:
        why = servicer.unready_reason()
        if why:
            return web.json_response({"status": "not ready", "reason": why}, status=503)
        return web.json_response({"status": "ready"})

    # For load balancers and Kubernetes probes (no token: they carry none), beside gRPC's health service.
    app.router.add_get("/healthz", alive)
    app.router.add_get("/readyz", ready)
    add_legacy_routes(app, gateway, legacy_task_type)

    async def dashboard(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    app.router.add_get("/", dashboard)
    app.router.add_static("/static/", STATIC)
    return app


def under_prefix(app: web.Application, prefix: str) -> web.Application:
    """`app` served under `prefix` ("/tasks": the dashboard at /tasks/, the API at /tasks/v1/...), for a proxy that
    forwards that path unchanged; the bare prefix redirects to the dashboard. The dashboard's links and calls are
    relative, so it works under any prefix, and behind a proxy that strips one too."""
    if not prefix:
        return app
    root = web.Application()

    async def to_dashboard(request: web.Request) -> web.StreamResponse:
        raise web.HTTPPermanentRedirect(f"{prefix}/")

    root.router.add_get(prefix, to_dashboard)
    root.add_subapp(f"{prefix}/", app)
    return root


async def start_http(app: web.Application, settings: Settings, *, header_seconds: float = HEADER_SECONDS) -> HttpServer:
    """Serve `app` on settings.http_listen (port 0: any), with TLS when the gRPC side has it; at most
    settings.http_max_connections at once, each sending its headers within `header_seconds` (connections.py)."""
    host, _, port = settings.http_listen.rpartition(":")
    context = None
    if settings.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
        if settings.tls_client_ca:
            context.load_verify_locations(settings.tls_client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
    # handler_cancellation: a client that goes away ends its handler, so an event stream lets go of its watcher
    # at once rather than at its next write.
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0, handler_cancellation=True,
                           keepalive_timeout=header_seconds, max_line_size=MAX_LINE_BYTES)  # fmt: skip
    await runner.setup()
    assert runner.server is not None
    cap_connections(runner.server, connection_cap(settings.http_max_connections))
    # Every engine process of a server (--procs) listens on the same port.
    site = web.TCPSite(runner, host.strip("[]") or "127.0.0.1", int(port), ssl_context=context,
                       reuse_port=bool(settings.supervised))  # fmt: skip
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return HttpServer(runner, int(bound))


def _not_found(request: web.Request, allowed: list[str]) -> web.Response:
    """No route for this method: 405 with Allow when the path takes other methods, else 404."""
    if not allowed:
        return error_response(RpcAbort(grpc.StatusCode.NOT_FOUND, f"no route {request.method} {request.path}"))
    return _not_allowed(request, allowed)


def _not_allowed(request: web.Request, allowed: list[str]) -> web.Response:
    message = f"{request.path} takes {', '.join(allowed)}, not {request.method}"
    response = error_response(RpcAbort(grpc.StatusCode.UNIMPLEMENTED, message))
    response.set_status(405)
    response.headers["Allow"] = ", ".join(allowed)
    return response


def _route(method: str, template: str) -> Route | None:
    return _BY_TEMPLATE.get((method, template))


def _collection(gateway: Gateway, collection: str) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        verb = request.match_info.get("verb")
        template = f"/v1/{collection}" + (f":{verb}" if verb else "")
        route = _route(request.method, template)
        if route is None:
            return _not_found(request, sorted({method for method, path in _BY_TEMPLATE if path == template}))
        return await unary(gateway, route, request)

    return handle


def _member(gateway: Gateway, collection: str) -> Handler:
    """/v1/tasks/{id}, and its custom methods /v1/tasks/{id}:stop. Ids may hold ':' (a schedule's firings do): a
    colon sent as %3A is always part of the id, and of the literal colons the last one before a known verb starts
    the verb, so `report%3Await` is the task `report:wait` and `report:wait` waits for the task `report`."""

    async def handle(request: web.Request) -> web.StreamResponse:
        raw = request.rel_url.raw_path.rsplit("/", 1)[1]  # as sent: %3A still tells an id's colon from a verb's
        head, colon, verb = raw.rpartition(":")
        route = _MEMBERS.get((request.method, collection, unquote(verb))) if colon else None
        if route is not None:
            return await unary(gateway, route, request, unquote(head))
        route = _MEMBERS.get((request.method, collection, ""))
        if route is not None:
            return await unary(gateway, route, request, unquote(raw))
        # The methods of the verb it names (when it names one of the collection's), else of the member itself.
        named = unquote(verb) if colon and any(c == collection and v == unquote(verb) for _, c, v in _MEMBERS) else ""
        return _not_found(request, sorted({m for m, c, v in _MEMBERS if c == collection and v == named}))

    return handle


def _under_member(
    gateway: Gateway, serve: Callable[[Gateway, Route, web.Request, str], Awaitable[web.StreamResponse]], path: str
) -> Handler:
    """A route under a task (its events, log or history), served by `serve` with the task's id."""
    route = _BY_TEMPLATE[("GET", path)]

    async def handle(request: web.Request) -> web.StreamResponse:
        return await serve(gateway, route, request, request.match_info["name"])

    return handle


# aiohttp's own refusals (no route, a method a route lacks, a body over the limit), as the gRPC code they mean.
_HTTP_REFUSALS = {
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error answer has a google.rpc.Status body: aiohttp's own refusals too; an unexpected failure is a
    500, logged."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if isinstance(exc, web.HTTPMethodNotAllowed):
            return _not_allowed(request, sorted(exc.allowed_methods))
        code = _HTTP_REFUSALS.get(exc.status, grpc.StatusCode.INVALID_ARGUMENT)
        response = error_response(RpcAbort(code, f"{exc.reason}: {request.method} {request.path}"))
        response.set_status(exc.status)
        return response
    except Exception:
        log.exception("unexpected error serving %s %s", request.method, request.path)
        return error_response(RpcAbort(grpc.StatusCode.INTERNAL, "internal error; see the server log"))


def _auth(tokens: TokenFile | None) -> Middleware:
    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if tokens is None or request.method == "OPTIONS" or not request.path.startswith(_PROTECTED):
            return await handler(request)
        presented = request.headers.get("Authorization", "")
        if not presented:
            message = "this server requires a bearer token: send the header 'Authorization: Bearer <token>'"
        elif not presented.lower().startswith(SCHEME) or not tokens.accepts(presented[len(SCHEME) :].strip()):
            message = "the bearer token is not valid"
        else:
            return await handler(request)
        response = error_response(RpcAbort(grpc.StatusCode.UNAUTHENTICATED, message))
        response.headers["WWW-Authenticate"] = "Bearer"
        return response

    return check


def _preflight(origin: str) -> Middleware:
    """A CORS preflight from the allowed origin is answered here (its headers come from _cors_headers)."""

    @web.middleware
    async def preflight(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS" and origin and request.headers.get("Origin") == origin:
            return web.Response(status=204)
        return await handler(request)

    return preflight


def _cors_headers(origin: str) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """Before any response (streams too) goes out: the CORS headers, for the one allowed origin only."""

    async def add(request: web.Request, response: web.StreamResponse) -> None:
        if request.headers.get("Origin") == origin:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type, Last-Event-ID"
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, DELETE"
            response.headers["Vary"] = "Origin"

    return add


__all__ = ["HttpServer", "build_app", "host_rule", "start_http"]
