"""The engine's tunables (each a server flag and a TASKSERVICE_* variable) and the numbers it reports."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ManagerConfig:
    """Tunables; each is a server flag and a TASKSERVICE_* environment variable."""

    workers: int = 4
    # Seconds; None means tasks without their own limit run unbounded.
    default_time_limit: float | None = None
    # Seconds a handler gets to return after a stop or its time limit before it is abandoned.
    stop_grace: float = 5.0
    # A claim's lease, how often this node renews its leases, and how often it reaps expired ones.
    lease_seconds: float = 30.0
    renew_seconds: float = 10.0
    reap_seconds: float = 10.0
    # The task types this node claims; empty: every type it has loaded (on a shared board), or any (alone).
    only_types: frozenset[str] = frozenset()
    # Labels (key, value) a task must carry for this node to claim it; none: any task.
    only_labels: tuple[tuple[str, str], ...] = ()
    # How long an idle worker waits before it looks for work without being told of any.
    poll_seconds: float = 1.0
    # How often the latest progress of running tasks is handed to the board.
    progress_seconds: float = 0.25
    # How long ended tasks are kept (seconds) unless they say otherwise; 0 keeps them for ever.
    retention: float = 7 * 86400.0
    # "process": every Python handler runs in a worker process (types declaring isolation="process" always do).
    isolation: str = "thread"
    # Worker processes (0: the number of cores), and when one is replaced by a fresh one (0: never).
    process_workers: int = 0
    process_max_tasks: int = 0
    process_max_rss: int = 0


@dataclass(frozen=True, slots=True)
class ManagerStats:
    workers: int
    busy_workers: int
    abandoned_handlers: int
    queued: int
    live: int
    watchers: int
    store_commits: int
    # The worker processes for handlers run in processes (none without a pool), and how many were replaced so far
    # (killed after a stop, died, or recycled).
    worker_pids: tuple[int, ...] = ()
    processes_replaced: int = 0

    @property
    def worker_processes(self) -> int:
        return len(self.worker_pids)
