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
Engine gauges (no labels), read from the manager on each scrape:
    taskservice_queue_depth, taskservice_workers, taskservice_busy_workers, taskservice_worker_utilisation (0-1),
    taskservice_abandoned_handlers, taskservice_live_tasks, taskservice_watchers,
    taskservice_store_commits_total (counter)
RPCs (method is the full gRPC path, e.g. "/taskservice.v1.TaskService/Submit"; code a grpc.StatusCode name):
    taskservice_rpc_total{method,code}      counter, counted when the RPC ends (a stream: when it ends)
    taskservice_rpc_duration_seconds{method}  histogram of the whole call (a stream: its whole life)
Build:
    taskservice_build_info{version}         always 1
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

import taskservice
from taskservice.core.engine.manager import ManagerStats
from taskservice.core.model.models import Task, TaskState
from taskservice.server.observing import ObservingInterceptor

log = logging.getLogger(__name__)

# Task run times range from milliseconds to hours.
TASK_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)
# Unary RPCs take milliseconds; WatchProgress streams last as long as their task.
RPC_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600)


class _EngineCollector(Collector):
    """The manager's numbers, read when Prometheus scrapes (no polling thread)."""

    def __init__(self) -> None:
        self.stats: Callable[[], ManagerStats] | None = None

    def collect(self) -> Iterable[Metric]:
        if self.stats is None:
            return []
        try:
            stats = self.stats()
        except Exception:
            log.exception("cannot read the manager's stats for /metrics")
            return []
        utilisation = stats.busy_workers / stats.workers if stats.workers else 0.0
        gauges = [
            ("taskservice_queue_depth", "Tasks waiting in the queue for a worker.", stats.queued),
            ("taskservice_workers", "Worker threads that take tasks (abandoned ones excluded).", stats.workers),
            ("taskservice_busy_workers", "Tasks being run by a worker now.", stats.busy_workers),
            ("taskservice_worker_utilisation", "Busy workers divided by workers (0 to 1).", utilisation),
            (
                "taskservice_abandoned_handlers",
                "Handlers that ignored a stop past the grace and still run on a retired thread.",
                stats.abandoned_handlers,
            ),
            ("taskservice_live_tasks", "Tasks not finished yet (queued, running or stopping).", stats.live),
            ("taskservice_watchers", "Open WatchProgress subscriptions.", stats.watchers),
            ("taskservice_worker_processes", "Worker processes for handlers run in processes.", stats.worker_processes),
        ]
        metrics: list[Metric] = [GaugeMetricFamily(name, doc, value=value) for name, doc, value in gauges]
        metrics.append(
            CounterMetricFamily("taskservice_store_commits", "Store transactions committed.", value=stats.store_commits)
        )
        metrics.append(
            CounterMetricFamily(
                "taskservice_processes_replaced",
                "Worker processes replaced: killed after a stop, died, or recycled.",
                value=stats.processes_replaced,
            )
        )
        return metrics


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
        self._engine = _EngineCollector()
        self.registry.register(self._engine)
        # task_id -> (task_type, state) of tasks counted in taskservice_tasks, so a decrement always matches
        # an increment (tasks recovered from a previous run were never counted here).
        self._current: dict[str, tuple[str, str]] = {}
        self._http: Any = None
        self._http_thread: threading.Thread | None = None

    # ----------------------------------------------------------------- core TaskListener

    def task_changed(self, task: Task, previous: TaskState | None) -> None:
        """Count a transition. Runs under the manager's lock: quick, and never raises."""
        try:
            state = task.state.value
            self._tasks_total.labels(task.task_type, state).inc()
            counted = self._current.pop(task.task_id, None)
            if counted is not None:
                self._tasks.labels(*counted).dec()
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

    def bind(self, stats: Callable[[], ManagerStats]) -> None:
        """Read the engine gauges from `stats` (WorkerManager.stats) on every scrape."""
        self._engine.stats = stats

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

    # ----------------------------------------------------------------- HTTP

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

    def stop(self) -> None:
        """Stop the HTTP endpoint; safe to call twice or when it never started."""
        http, thread = self._http, self._http_thread
        self._http = self._http_thread = None
        if http is not None:
            http.shutdown()
            http.server_close()
        if thread is not None:
            thread.join(timeout=5)
