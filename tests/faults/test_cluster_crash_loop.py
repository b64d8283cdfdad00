"""Three servers on one PostgreSQL database, SIGKILLed one at a time at random moments while clients submit to all.

The ledger and its checks are the one-server crash loop's (test_crash_loop.py): every acknowledged task exists
once, ends and never leaves its end; nothing runs twice (demo and sleep are never re-run: attempt stays 1); a task
is LOST only if it was running on a server when that server was killed, and another server reaped it once its
lease expired. The time from each kill to the reaping of that server's tasks is reported.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from taskservice.client import TaskClient
from tests.faults.test_crash_loop import (
    MIN_KILLS,
    SEED,
    Ledger,
    SubmitterThread,
    check_final,
    check_history,
    sweep,
    sweep_once_all_ended,
)
from tests.support.postgres import pg_database, pg_dsn
from tests.support.server import ServerProcess

__all__ = ["pg_database", "pg_dsn"]

pytestmark = pytest.mark.slow

NODES = 3
LEASE_SECONDS = 2.0
RENEW_SECONDS = 0.5
ROUNDS_BUDGET_SECONDS = 75.0
# A killed server's tasks are reaped once its lease expired and another server's reap ran: allow for both.
REAP_WITHIN_SECONDS = LEASE_SECONDS + 2 * RENEW_SECONDS + 3.0


def test_sigkill_of_random_servers_under_load_loses_nothing_and_reaps_the_dead_servers_tasks(
    pg_dsn: str, tmp_path: Path
) -> None:
    print(f"cluster crash loop seed: {SEED} (FAULTS_SEED={SEED} replays its choices)")
    rng = random.Random(SEED)
    ledger = Ledger()
    began = time.monotonic()
    flags = ["--lease", f"{LEASE_SECONDS:g}", "--renew", f"{RENEW_SECONDS:g}", "--poll", "0.5"]
    kills: list[tuple[int, float]] = []  # (server, wall-clock time of its kill)
    with ExitStack() as stack:
        servers = [
            stack.enter_context(
                ServerProcess(pg_dsn, workers=2, extra_args=[*flags, "--state-dir", str(tmp_path / f"s{i}")])
            )
            for i in range(NODES)
        ]
        for server in servers:
            server.start()
        rounds = 0
        while len(kills) < MIN_KILLS and time.monotonic() - began < ROUNDS_BUDGET_SECONDS:
            rounds += 1
            round_over = threading.Event()
            threads = [
                SubmitterThread(
                    ledger,
                    rng.choice(servers).address,
                    random.Random(rng.getrandbits(64)),
                    f"r{rounds}c{i}",
                    round_over,
                )
                for i in range(rng.choice((2, 3)))
            ]
            for thread in threads:
                thread.start()
            time.sleep(rng.uniform(0.1, 0.6))
            victim = rng.randrange(NODES)
            servers[victim].kill()
            kills.append((victim, time.time()))
            round_over.set()
            for thread in threads:
                thread.join(timeout=15)
                if thread.is_alive():
                    ledger.anomaly(f"{thread.name} did not stop within 15 s of the kill")
            servers[victim].restart()
            alive = servers[(victim + 1) % NODES]
            with TaskClient(alive.address, timeout=10) as client:
                sweep(ledger, client, f"after kill {len(kills)}")

        with TaskClient(servers[0].address, timeout=10) as client:
            tasks = sweep_once_all_ended(ledger, client)
        log_tail = "\n".join(server.log_tail() for server in servers)

    kill_times = [killed for _, killed in kills]

    def reaped_after_a_kill(started: float, ended: float) -> bool:
        return any(started <= killed <= ended <= killed + REAP_WITHIN_SECONDS for killed in kill_times)

    census = check_final(ledger, tasks, reaped_after_a_kill)
    check_history(ledger, {t.task_id: t for t in tasks})
    # The first kill after a LOST task started is (at the latest) the one of its server.
    reap_delays = [
        task.ended_at.timestamp() - min(k for k in kill_times if k >= task.started_at.timestamp())
        for task in tasks
        if task.state.value == "LOST" and task.ended_at is not None and task.started_at is not None
    ]
    delays = (
        f"kill to reap: median {statistics.median(reap_delays):.1f} s, max {max(reap_delays):.1f} s "
        f"(lease {LEASE_SECONDS:g} s, renew {RENEW_SECONDS:g} s)"
        if reap_delays
        else "no task was running on a killed server"
    )
    print(
        f"seed {SEED}: {len(kills)} kills of {NODES} servers in {rounds} rounds, {time.monotonic() - began:.1f} s; "
        f"{ledger.submits} Submits ({ledger.crash_errors} unanswered); {len(ledger.acked)} acknowledged tasks "
        f"checked, {len(tasks)} stored; {dict(census)}; {delays}"
    )
    assert not ledger.anomalies, (
        f"seed {SEED}: {len(ledger.anomalies)} problems:\n"
        + "\n".join(ledger.anomalies[:30])
        + f"\n--- server logs (tail) ---\n{log_tail[-6000:]}"
    )
    assert len(kills) >= MIN_KILLS, f"seed {SEED}: only {len(kills)} kills within {ROUNDS_BUDGET_SECONDS:g} s"
    assert len(ledger.acked) >= 5 * len(kills), f"seed {SEED}: too few acknowledged tasks to mean anything"
