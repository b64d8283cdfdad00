"""Building and running the gRPC server: TaskService, health, reflection, signals, drain."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.metadata
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from taskservice.core.board import Board, DatabaseUnreachable, StoreInUse, open_board
from taskservice.core.engine.manager import ManagerConfig, WorkerManager
from taskservice.core.handlers.logs import Logs, TaskLogs
from taskservice.core.handlers.paths import DataRoot
from taskservice.core.handlers.registry import TaskRegistry, default_registry
from taskservice.core.model.errors import RegistryError, StoreDamaged, StoreOpenError, StoreUnavailable
from taskservice.server import runtime
from taskservice.server.auth import BearerTokenInterceptor, TokenFile, TokenFileError
from taskservice.server.engine_process import die_with_supervisor, siblings_of
from taskservice.server.http import build_app, host_rule, start_http, under_prefix
from taskservice.server.http.connections import raise_descriptor_limit
from taskservice.server.metrics import Metrics
from taskservice.server.observing import CallObserver, HttpObserver, ObservingInterceptor
from taskservice.server.servicer import TaskServiceServicer, task_service_handler
from taskservice.server.settings import Settings
from taskservice.server.tls import TLSConfigError, server_credentials
from taskservice.server.tracing import HttpTracing, RpcTracing
from taskservice.server.waker import LoopWaker
from taskservice.tasks.command import CommandCatalog, CommandConfigError, load_commands, register_command_task
from taskservice.telemetry import configure_tracing, shutdown_tracing, tracing_on
from taskservice.telemetry.metrics_export import metrics_wanted
from taskservice.v1 import task_service_pb2 as pb

log = logging.getLogger("taskservice")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["TaskService"].full_name

# Threads that read the board for RPCs (GetState, ListTasks, the snapshot of a watch), off the event loop.
READ_THREADS = 8

# Exit codes of `taskservice serve`.
EXIT_OK = 0
EXIT_SECOND_SIGNAL = 1
EXIT_BAD_TASKS = 2
EXIT_BAD_DATABASE = 3
EXIT_CANNOT_LISTEN = 4
EXIT_BAD_SECURITY_FILES = 5
EXIT_DATABASE_IN_USE = 6
EXIT_DATABASE_UNREACHABLE = 7


def server_options(settings: Settings) -> list[tuple[str, int]]:
    """Explicit keepalive and message sizes, so idle WatchProgress streams survive proxies."""
    keepalive_ms = int(settings.keepalive_seconds * 1000)
    return [
        ("grpc.keepalive_time_ms", keepalive_ms),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        # Clients may ping every 10 s; a tighter client is told GOAWAY (too_many_pings).
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        # Calls not yet taken by the server wait here; the default (1,000) cancels a burst of new watch
        # streams beyond it, e.g. thousands of watchers reconnecting after a restart.
        ("grpc.server.max_pending_requests", 20_000),
        ("grpc.server.max_pending_requests_hard_limit", 40_000),
    ]


@dataclass
class RunningServer:
    """A started server and the parts its shutdown needs."""

    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    servicer: TaskServiceServicer
    manager: WorkerManager
    reads: ThreadPoolExecutor
    # SERVING needs both: not draining, and a task database that takes writes.
    serving: bool = True
    store_writable: bool = True

    async def set_serving(self, serving: bool) -> None:
        self.serving = serving
        await self._publish_health()

    async def set_store_writable(self, writable: bool) -> None:
        self.store_writable = writable
        await self._publish_health()

    async def _publish_health(self) -> None:
        up = self.serving and self.store_writable
        status = health_pb2.HealthCheckResponse.SERVING if up else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)

    async def shutdown(self, drain_seconds: float, before_stop: Callable[[], Awaitable[None]] | None = None) -> None:
        """NOT_SERVING, refuse Submits, let running tasks finish for drain_seconds, stop what is left, then stop.

        A task still running when the drain ends is stopped as Stop would stop it (REVOKED, error type
        ServerShutdown; PENDING again for types safe to re-run), so its watchers see it end before their
        streams close. Only a crash leaves a task LOST.
        """
        await self.set_serving(False)
        self.manager.begin_shutdown()
        loop = asyncio.get_running_loop()
        if drain_seconds > 0:
            await loop.run_in_executor(None, self.manager.drain, drain_seconds)
        why = f"the server shut down while this task ran (its drain of {drain_seconds:g} s ended first)"
        await loop.run_in_executor(None, self.manager.stop_running, why)
        self.servicer.close_streams()
        if before_stop is not None:  # the HTTP face: its event streams end with the gRPC ones
            await before_stop()
        await self.server.stop(grace=1.0)
        await asyncio.get_running_loop().run_in_executor(None, self.manager.close)
        self.reads.shutdown(wait=False)


async def build_server(
    manager: WorkerManager, settings: Settings, *, interceptors: Sequence[grpc.aio.ServerInterceptor] = ()
) -> RunningServer:
    """A started grpc.aio server on settings.listen (port 0 picks a free port) over a started manager.

    Interceptors run in order, the first outermost.
    """
    options = server_options(settings)
    if settings.supervised:  # every engine process of this server listens on the same port
        options.append(("grpc.so_reuseport", 1))
    server = grpc.aio.server(options=options, interceptors=list(interceptors))
    reads = ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="taskservice-read")
    servicer = TaskServiceServicer(manager, LoopWaker(asyncio.get_running_loop()), manager.logs, reads)
    server.add_generic_rpc_handlers((task_service_handler(servicer),))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    credentials = server_credentials(settings)
    if credentials is not None:
        port = server.add_secure_port(settings.listen, credentials)
    else:
        port = server.add_insecure_port(settings.listen)
    if port == 0:
        raise OSError(f"cannot listen on {settings.listen}")
    await server.start()
    running = RunningServer(server, port, health_servicer, servicer, manager, reads)
    await running.set_serving(True)
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[None]] = set()

    def publish(writable: bool) -> None:
        task = loop.create_task(running.set_store_writable(writable))
        pending.add(task)  # held until done: the loop keeps only weak references to tasks
        task.add_done_callback(pending.discard)

    def store_health(writable: bool) -> None:  # on the board writer's thread
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server is gone
            loop.call_soon_threadsafe(publish, writable)

    manager.on_store_health(store_health)
    if not manager.store_writable:
        await running.set_store_writable(False)
    return running


ENTRY_POINT_GROUP = "taskservice.tasks"


def load_task_modules(modules: tuple[str, ...], registry: TaskRegistry = default_registry) -> TaskRegistry:
    """Import the built-in task types, every installed `taskservice.tasks` entry point and every --tasks
    module; their decorators fill the registry. `pip install mycompany-tasks` is enough to add types."""
    importlib.import_module("taskservice.tasks")
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        log.info("loading task types from %s (%s)", entry_point.name, entry_point.value)
        entry_point.load()
    for module in modules:
        importlib.import_module(module)
    if not len(registry):
        raise RegistryError("no task types are registered")
    return registry


def write_port_file(path: str, port: int) -> None:
    # Written then renamed, so a reader never sees half a number.
    target = Path(path)
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text(f"{port}\n")
    temporary.replace(target)


async def serve(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT, then drain. A second signal exits at once."""
    if settings.supervised:
        die_with_supervisor()
    raise_descriptor_limit()  # clients, tasks' files and the database share them: as many as the system allows
    try:
        registry = load_task_modules(settings.tasks)
        catalog = load_commands(settings.commands) if settings.commands else CommandCatalog.empty()
        register_command_task(registry, catalog)
        unknown = sorted(set(settings.only_types) - set(registry.names()))
        if unknown:
            loaded = ", ".join(registry.names())
            raise RegistryError(f"--only-types names {', '.join(unknown)}, not task types here; choose from {loaded}")
        if settings.legacy_task_type and settings.legacy_task_type.partition(":")[0] not in registry.names():
            raise RegistryError(
                f"--legacy-task-type {settings.legacy_task_type!r} is not a task type here; "
                f"choose from {', '.join(registry.names())}"
            )
    except (ImportError, RegistryError, CommandConfigError) as exc:
        log.error("cannot load task types: %s", exc)
        return EXIT_BAD_TASKS
    try:
        # Read the security files before touching the database, so a typo costs nothing.
        tokens = TokenFile(settings.auth_token_file) if settings.auth_token_file else None
        server_credentials(settings)
    except (TokenFileError, TLSConfigError) as exc:
        log.error("%s", exc)
        return EXIT_BAD_SECURITY_FILES
    with contextlib.ExitStack() as resources:
        if configure_tracing():
            resources.callback(shutdown_tracing)  # the last spans go out once the server has stopped
            log.info("tracing on: spans of calls and tasks go to OTEL_TRACES_EXPORTER")
        try:
            board = resources.enter_context(
                contextlib.closing(
                    open_board(
                        settings.db,
                        siblings=siblings_of(settings),
                        max_queue=settings.max_queue,
                        max_queue_bytes=settings.max_queue_bytes,
                        pool_size=settings.workers + READ_THREADS + 4,
                        fairness=settings.fairness,
                    )
                )
            )
        except StoreInUse as exc:
            log.error("%s", exc)
            return EXIT_DATABASE_IN_USE
        except DatabaseUnreachable as exc:
            log.error("%s; is the database running, and does --db name it?", exc)
            return EXIT_DATABASE_UNREACHABLE
        except (StoreOpenError, StoreDamaged) as exc:
            log.error("%s", exc)
            return EXIT_BAD_DATABASE
        data_root = DataRoot(settings.data_root, min_free_bytes=settings.min_free_space)
        resources.callback(data_root.close)
        return await _serve_on(board, registry, data_root, tokens, settings)
    raise AssertionError("unreachable")  # pragma: no cover - mypy cannot see that the with block returns


async def _serve_on(
    board: Board, registry: TaskRegistry, data_root: DataRoot, tokens: TokenFile | None, settings: Settings
) -> int:
    # Prometheus on --metrics-listen, OpenTelemetry when OTEL_METRICS_EXPORTER asks: one registry for both.
    metrics = Metrics() if settings.metrics_listen or metrics_wanted() else None
    # Logs live where every server that answers WatchLogs can read them: local files for the embedded file, the
    # database when servers share one.
    logs: Logs = board.task_logs() or TaskLogs(
        Path(settings.state_dir) / "logs",
        min_free_bytes=settings.min_free_space,
        max_total_bytes=settings.max_logs_size,
    )
    manager = WorkerManager(
        board,
        registry,
        listeners=[metrics] if metrics else [],
        data_root=data_root,
        logs=logs,
        config=ManagerConfig(
            workers=settings.workers,
            default_time_limit=settings.default_time_limit or None,
            only_types=frozenset(settings.only_types),
            only_labels=settings.only_labels,
            stop_grace=settings.stop_grace,
            lease_seconds=settings.lease,
            renew_seconds=settings.renew,
            reap_seconds=settings.renew,
            poll_seconds=settings.poll,
            retention=settings.retention,
            isolation=settings.isolation,
            process_workers=settings.process_workers,
            process_max_tasks=settings.process_max_tasks,
            process_max_rss=settings.process_max_rss,
            # Watchers on other servers read progress from the database: often enough for 20 updates a second; on
            # an SQLite file shared by engine processes, the write also wakes the watcher's process at once.
            progress_seconds=0.25 if board.exclusive else 0.02 if board.writes_wake_siblings else 0.05,
        ),
    )
    # Metrics and tracing outermost, so that calls the token check refuses are counted and traced too.
    interceptors: list[grpc.aio.ServerInterceptor] = []
    observers: list[CallObserver] = []
    if metrics is not None:
        metrics.bind(manager.stats, manager.board)
        observers.append(metrics)
        if metrics.export_through_otel():
            log.info("metrics also go to OTEL_METRICS_EXPORTER")
    if tracing_on():
        observers.append(RpcTracing())
    if observers:
        interceptors.append(ObservingInterceptor(observers))
    if tokens is not None:
        interceptors.append(BearerTokenInterceptor(tokens))
    try:
        manager.start()
    except (StoreDamaged, StoreUnavailable) as exc:
        # Damage beyond the first pages shows when recovery reads the unfinished tasks.
        log.error("%s cannot be used (%s); restore it from a backup or point --db at another file", settings.db, exc)
        manager.close()
        return EXIT_BAD_DATABASE
    try:
        running = await build_server(manager, settings, interceptors=interceptors)
    except (OSError, RuntimeError) as exc:
        log.error("cannot listen on %s: %s", settings.listen, exc)
        manager.close()
        return EXIT_CANNOT_LISTEN
    if metrics is not None and settings.metrics_listen:
        try:
            metrics_port = metrics.start_http(settings.metrics_listen)
        except OSError as exc:
            log.error("cannot serve metrics on %s: %s", settings.metrics_listen, exc)
            await running.shutdown(0)
            return EXIT_CANNOT_LISTEN
        log.info("metrics on http://%s:%d/metrics", settings.metrics_listen.rsplit(":", 1)[0], metrics_port)
        if settings.metrics_port_file:
            write_port_file(settings.metrics_port_file, metrics_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            log.warning(
                "second %s: exiting now; unfinished tasks are handled as after a crash", signal.Signals(signum).name
            )
            os._exit(EXIT_SECOND_SIGNAL)
        log.info(
            "%s: draining (up to %g s); a second signal exits at once", signal.Signals(signum).name, settings.drain
        )
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    if tokens is not None:
        # Rotating a token: edit the file, then `kill -HUP <pid>`; no restart, no dropped streams.
        loop.add_signal_handler(signal.SIGHUP, tokens.reload)
        if not settings.tls_cert:
            log.warning("bearer tokens are on but TLS is off: tokens cross the network in clear text")
    host = settings.listen.rsplit(":", 1)[0]
    log.info(
        "serving on %s:%d (db %s, data root %s, %d workers, task types: %s)",
        host,
        running.port,
        settings.db,
        settings.data_root,
        settings.workers,
        ", ".join(registry.names()),
    )
    http = None
    http_observers: list[HttpObserver] = [metrics] if metrics is not None else []
    if tracing_on():
        http_observers.append(HttpTracing())
    if settings.http_listen != "off":
        try:
            app = build_app(running.servicer, tokens=tokens, cors_origin=settings.http_cors_origin,
                            max_body_bytes=settings.max_message_bytes,
                            legacy_task_type=settings.legacy_task_type,
                            observers=http_observers,
                            hosts=host_rule(settings.http_listen.rpartition(":")[0],
                                            settings.http_allowed_hosts))  # fmt: skip
            http = await start_http(under_prefix(app, settings.http_path_prefix), settings)
        except OSError as exc:
            log.error("cannot serve HTTP on %s: %s (--http-listen off turns it off)", settings.http_listen, exc)
            await running.shutdown(0)
            return EXIT_CANNOT_LISTEN
        scheme = "https" if settings.tls_cert else "http"
        log.info("HTTP/JSON API and dashboard on %s://%s:%d/", scheme, settings.http_listen.rsplit(":", 1)[0],
                 http.port)  # fmt: skip
    runtime.settle_after_start()
    if settings.http_port_file and http is not None:  # first: whoever reads the gRPC port finds this one there
        write_port_file(settings.http_port_file, http.port)
    if settings.port_file:
        write_port_file(settings.port_file, running.port)
    await stop.wait()
    await running.shutdown(settings.drain, before_stop=http.close if http is not None else None)
    if metrics is not None:
        metrics.stop()
    log.info("stopped")
    return EXIT_OK
