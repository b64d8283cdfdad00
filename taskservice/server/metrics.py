"""Prometheus metrics: task transitions (a core TaskListener), engine gauges read at scrape time, RPC counts.

    metrics = Metrics()
    manager = WorkerManager(store, registry, config=..., listeners=[metrics])
    metrics.bind(manager.stats)
    running = await build_server(manager, settings, interceptors=[metrics.interceptor()])
    port = metrics.start_http("127.0.0.1:9464")   # GET /metrics
    ...
    metrics.stop()

Every Metrics has its own CollectorRegistry, so several servers in one process (tests) never clash.

Task metrics (labels task_type, state):
    taskservice_tasks_total                 counter: tasks that entered each state
    taskservice_unfinished_tasks            gauge: tasks now in each non-terminal state (PENDING, RUNNING, STOPPING),
                                            as seen by this process (not named taskservice_tasks: that name is
                                            the counter's family name in OpenMetrics, and the two would clash)
    taskservice_task_duration_seconds       histogram, terminal states only: started_at (submitted_at if it never
                                            started) to ended_at
    taskservice_task_wait_seconds{task_type}  histogram: Submit to the first start
Engine gauges (no labels), read from the manager on each scrape (metrics_collectors.py):
    taskservice_queue_depth, taskservice_workers, taskservice_busy_workers, taskservice_worker_utilisation (0-1),
    taskservice_abandoned_handlers, taskservice_live_tasks, taskservice_watchers,
    taskservice_store_commits_total (counter)
Board gauges, read from the board on each scrape:
    taskservice_oldest_runnable_task_age_seconds   the longest wait of a task that could start now
    taskservice_limit_waiting_tasks{limit_id}      PENDING tasks of the groups a limit holds back
Processes: process_* (this process, prometheus_client's), taskservice_worker_process_cpu_seconds_total,
    taskservice_worker_process_resident_memory_bytes, taskservice_worker_process_open_fds (worker processes, summed)
Schedules:
    taskservice_schedule_firings_total{schedule_id,outcome}  due times fired, missed (catch-up policy) or refused
RPCs (method is the full gRPC path, e.g. "/taskservice.v1.TaskService/Submit"; code a grpc.StatusCode name):
    taskservice_rpc_total{method,code}      counter, counted when the RPC ends (a stream: when it ends)
    taskservice_rpc_duration_seconds{method}  histogram of the whole call (a stream: its whole life)
HTTP calls (route is the pattern, e.g. "/v1/tasks/{name}"; "unmatched" for paths no route serves):
    taskservice_http_requests_total{method,route,status}, taskservice_http_request_duration_seconds{method,route}
Build:
    taskservice_build_info{version}         always 1
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, start_http_server

import taskservice
from taskservice.core.board import Board
from taskservice.core.engine.manager import ManagerStats
from taskservice.core.model.models import Task, TaskState
from taskservice.server.metrics_collectors import BoardCollector, EngineCollector, WorkerProcessCollector
from taskservice.server.observing import ObservingInterceptor
from taskservice.telemetry.metrics_export import export_registry

log = logging.getLogger(__name__)

# Task run times range from milliseconds to hours.
TASK_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)
# Waits range from a few milliseconds on an idle server to hours behind a backlog.
WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200, 21600)
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Unary RPCs take milliseconds; WatchProgress streams last as long as their task.
RPC_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600)


class Metrics:
    """Prometheus metrics of one server, in a registry of its own. See the module docstring for the names."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._tasks_total = Counter(
            "taskservice_tasks_total",
            "Tasks that entered a state (PENDING counts submissions).",
            ["task_type", "state"],
            registry=self.registry,
        )
        self._tasks = Gauge(
            "taskservice_unfinished_tasks",
            "Tasks now in a non-terminal state, as seen by this process.",
            ["task_type", "state"],
            registry=self.registry,
        )
        self._task_duration = Histogram(
            "taskservice_task_duration_seconds",
            "Run time of finished tasks: from start (or submission, if it never started) to end.",
            ["task_type", "state"],
            buckets=TASK_DURATION_BUCKETS,
            registry=self.registry,
        )
        self._rpc_total = Counter(
            "taskservice_rpc_total",
            "RPCs handled, by full method path and final status code.",
            ["method", "code"],
            registry=self.registry,
        )
        self._rpc_duration = Histogram(
            "taskservice_rpc_duration_seconds",
            "Time from the start of an RPC to its end (a stream: its whole life).",
            ["method"],
            buckets=RPC_DURATION_BUCKETS,
            registry=self.registry,
        )
        build_info = Gauge(
            "taskservice_build_info", "The running taskservice version (always 1).", ["version"], registry=self.registry
        )
        build_info.labels(version=taskservice.__version__).set(1)
        self._task_wait = Histogram(
            "taskservice_task_wait_seconds",
            "Time from Submit to the first start of a task (a delayed task's delay included).",
            ["task_type"],
            buckets=WAIT_BUCKETS,
            registry=self.registry,
        )
        self._schedule_firings = Counter(
            "taskservice_schedule_firings_total",
            "Due times of schedules: fired (a task created), missed (skipped by the catch-up policy), refused.",
            ["schedule_id", "outcome"],
            registry=self.registry,
        )
        self._http_total = Counter(
            "taskservice_http_requests_total",
            "HTTP requests handled, by method, route (its pattern) and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self._http_duration = Histogram(
            "taskservice_http_request_duration_seconds",
            "Time from an HTTP request to the end of its answer (a stream: its whole life).",
            ["method", "route"],
            buckets=RPC_DURATION_BUCKETS,
            registry=self.registry,
        )
        self._engine = EngineCollector()
        self._board = BoardCollector()
        self._worker_processes = WorkerProcessCollector()
        for collector in (self._engine, self._board, self._worker_processes):
            self.registry.register(collector)
        ProcessCollector(registry=self.registry)  # this process's CPU, memory and descriptors (process_*)
        # task_id -> (task_type, state) of tasks counted in taskservice_tasks, so a decrement always matches
        # an increment (tasks recovered from a previous run were never counted here).
        self._current: dict[str, tuple[str, str]] = {}
        self._http: Any = None
        self._http_thread: threading.Thread | None = None
        self._otel_stop: Callable[[], None] | None = None

    # ----------------------------------------------------------------- core TaskListener

    def task_changed(self, task: Task, previous: TaskState | None) -> None:
        """Count a transition. Runs under the manager's lock: quick, and never raises."""
        try:
            state = task.state.value
            self._tasks_total.labels(task.task_type, state).inc()
            counted = self._current.pop(task.task_id, None)
            if counted is not None:
                self._tasks.labels(*counted).dec()
            if task.state is TaskState.RUNNING and previous is TaskState.PENDING and task.attempt == 1:
                began = task.started_at if task.started_at is not None else time.time()
                self._task_wait.labels(task.task_type).observe(max(0.0, began - task.submitted_at))
            if task.state.is_terminal:
                if task.ended_at is not None:
                    began = task.started_at if task.started_at is not None else task.submitted_at
                    self._task_duration.labels(task.task_type, state).observe(max(0.0, task.ended_at - began))
            else:
                self._count_unfinished(task)
        except Exception:
            log.exception("metrics: cannot count the transition of task %s", getattr(task, "task_id", "?"))

    def tasks_recovered(self, tasks: Sequence[Task]) -> None:
        """Count the tasks a restart found queued in the unfinished gauge (not as transitions: they made none)."""
        try:
            for task in tasks:
                self._count_unfinished(task)
        except Exception:
            log.exception("metrics: cannot count the %d tasks recovered at start", len(tasks))

    def _count_unfinished(self, task: Task) -> None:
        self._tasks.labels(task.task_type, task.state.value).inc()
        self._current[task.task_id] = (task.task_type, task.state.value)

    # ----------------------------------------------------------------- engine gauges

    def bind(self, stats: Callable[[], ManagerStats], board: Board | None = None) -> None:
        """Read the engine gauges from `stats` (WorkerManager.stats), and the board's from `board`, on every
        scrape."""
        self._engine.stats = stats
        self._board.board = board
        self._worker_processes.pids = lambda: stats().worker_pids

    # ----------------------------------------------------------------- schedules (a ScheduleListener)

    def schedule_fired(self, schedule_id: str, fired: int, missed: int, refused: bool) -> None:
        try:
            for outcome, count in (("fired", fired), ("missed", missed), ("refused", int(refused))):
                if count:
                    self._schedule_firings.labels(schedule_id, outcome).inc(count)
        except Exception:
            log.exception("metrics: cannot count a firing of schedule %s", schedule_id)

    # ----------------------------------------------------------------- RPCs

    def interceptor(self) -> grpc.aio.ServerInterceptor:
        """A server interceptor counting every RPC and its latency (taskservice_rpc_total, _duration_seconds)."""
        return ObservingInterceptor([self])

    def call_began(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> float:
        return time.perf_counter()

    def call_ended(self, began: float, method: str, code: str) -> None:
        try:
            self._rpc_total.labels(method, code).inc()
            self._rpc_duration.labels(method).observe(time.perf_counter() - began)
        except Exception:
            log.exception("metrics: cannot count an RPC of %s", method)

    # ----------------------------------------------------------------- HTTP calls

    def http_began(self, request: web.Request, route: str) -> float:
        return time.perf_counter()

    def http_ended(self, began: float, request: web.Request, route: str, status: int) -> None:
        try:
            method = request.method if request.method in HTTP_METHODS else "other"
            self._http_total.labels(method, route, str(status)).inc()
            self._http_duration.labels(method, route).observe(time.perf_counter() - began)
        except Exception:
            log.exception("metrics: cannot count an HTTP call of %s", route)

    # ----------------------------------------------------------------- the /metrics endpoint

    def start_http(self, listen: str) -> int:
        """Serve /metrics on host:port ("[::1]:0" and port 0 work) in a daemon thread; returns the bound port."""
        if self._http is not None:
            raise RuntimeError("the metrics endpoint is already running")
        host, sep, port = listen.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"metrics listen address {listen!r} is not host:port")
        host = host.strip("[]") or "0.0.0.0"
        self._http, self._http_thread = start_http_server(int(port), addr=host, registry=self.registry)
        return int(self._http.server_port)

    def export_through_otel(self) -> bool:
        """Also export these metrics through OpenTelemetry when OTEL_METRICS_EXPORTER asks (see
        telemetry/metrics_export.py); True when it does. stop() flushes and ends it."""
        self._otel_stop = export_registry(self.registry)
        return self._otel_stop is not None

    def stop(self) -> None:
        """Stop the HTTP endpoint and the OpenTelemetry export; safe to call twice or when neither started."""
        otel_stop, self._otel_stop = self._otel_stop, None
        if otel_stop is not None:
            otel_stop()
        http, thread = self._http, self._http_thread
        self._http = self._http_thread = None
        if http is not None:
            http.shutdown()
            http.server_close()
        if thread is not None:
            thread.join(timeout=5)
