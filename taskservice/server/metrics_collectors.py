"""What /metrics reads when Prometheus scrapes (no polling thread): the engine's gauges, the board's (the oldest task
that could start, the tasks limits hold back), and the worker processes' CPU, memory and descriptors."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from taskservice.core.board import Board
from taskservice.core.engine.config import ManagerStats

log = logging.getLogger(__name__)

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
# The limits whose held-back tasks are counted at one scrape, at most (a COUNT each).
MAX_LIMITS_COUNTED = 50


class EngineCollector(Collector):
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


class BoardCollector(Collector):
    """Two reads of the board per scrape: the age of the longest-waiting task that could start now (due, its
    dependencies met, in no group a limit holds back), and per limit holding groups back, their PENDING tasks."""

    def __init__(self) -> None:
        self.board: Board | None = None

    def collect(self) -> Iterable[Metric]:
        board = self.board
        if board is None:
            return []
        try:
            now = time.time()
            oldest = board.oldest_ready(now)
            held = board.held_back_counts()
        except Exception:
            log.exception("cannot read the board's numbers for /metrics")
            return []
        age = GaugeMetricFamily(
            "taskservice_oldest_runnable_task_age_seconds",
            "Age of the longest-waiting PENDING task that could start now (0 when none): a stuck queue grows it.",
            value=max(0.0, now - oldest) if oldest is not None else 0.0,
        )
        waiting = GaugeMetricFamily(
            "taskservice_limit_waiting_tasks",
            "PENDING tasks of the groups each limit held back at this server's last claim.",
            labels=["limit_id"],
        )
        for limit_id, count in sorted(held.items())[:MAX_LIMITS_COUNTED]:
            waiting.add_metric([limit_id], count)
        return [age, waiting]


class WorkerProcessCollector(Collector):
    """The worker processes' CPU time (a counter that keeps what processes since replaced had used, as last read),
    resident memory and open descriptors, summed: the server's own are process_* (prometheus_client's)."""

    def __init__(self) -> None:
        self.pids: Callable[[], Iterable[int]] | None = None
        self._cpu_seen: dict[int, float] = {}
        self._cpu_retired = 0.0

    def collect(self) -> Iterable[Metric]:
        if self.pids is None:
            return []
        cpu = memory = descriptors = 0.0
        seen: dict[int, float] = {}
        for pid in self.pids():
            read = _process_numbers(pid)
            if read is None:
                continue
            seen[pid], rss, fds = read
            cpu += seen[pid]
            memory += rss
            descriptors += fds
        self._cpu_retired += sum(used for pid, used in self._cpu_seen.items() if pid not in seen)
        self._cpu_seen = seen
        return [
            CounterMetricFamily(
                "taskservice_worker_process_cpu_seconds",
                "CPU time (user and system) of the worker processes, those replaced included.",
                value=self._cpu_retired + cpu,
            ),
            GaugeMetricFamily(
                "taskservice_worker_process_resident_memory_bytes",
                "Resident memory of the worker processes, summed.",
                value=memory,
            ),
            GaugeMetricFamily(
                "taskservice_worker_process_open_fds",
                "Open descriptors of the worker processes, summed.",
                value=descriptors,
            ),
        ]


def _process_numbers(pid: int) -> tuple[float, float, int] | None:
    """(CPU seconds, resident bytes, open descriptors) of a process, from /proc; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/statm") as statm:
            resident = int(statm.read().split()[1]) * _PAGE
        descriptors = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, IndexError, ValueError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS, float(resident), descriptors
