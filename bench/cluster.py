"""`make bench`'s PostgreSQL part: servers sharing one database, beside the SQLite single server and beside a
PostgreSQL task queue peer (PgQueuer), in the same run. Without a PostgreSQL server it says it skipped itself.

The database is the machine's (TASKSERVICE_TEST_POSTGRES, default 127.0.0.1:5432, trust authentication): each
scenario makes a database of its own and drops it. PgQueuer runs from an environment of its own (a venv in the
bench's temporary folder), never as a dependency of the project.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ADMIN_DSN = os.environ.get("TASKSERVICE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
SINGLE_TASKS = 5_000
BULK_TASKS = 20_000
BULK_BATCH = 1_000
CONCURRENCY = 64
STOP_SAMPLES = 30
FINISHED_STORED = 1_000_000
PGQUEUER = "pgqueuer[psycopg]==1.6.0"


def postgres_missing() -> str:
    """Why the PostgreSQL part cannot run, or "" when it can."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        with psycopg.connect(ADMIN_DSN, connect_timeout=3):
            return ""
    except psycopg.Error as exc:
        return f"no PostgreSQL at {ADMIN_DSN} ({str(exc).strip().splitlines()[0]})"


@contextlib.contextmanager
def database() -> Iterator[str]:
    """A fresh database's URL, dropped afterwards."""
    import psycopg

    name = f"taskservice_bench_{secrets.token_hex(4)}"
    info = psycopg.conninfo.conninfo_to_dict(ADMIN_DSN)
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    port = f":{info['port']}" if info.get("port") else ""
    user = f"{info['user']}@" if info.get("user") else ""
    try:
        yield f"postgresql://{user}{info.get('host', 'localhost')}{port}/{name}"
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cluster_scenarios(table: Any, tmp: Path, serve: Callable[..., Any], load: Callable[..., dict[str, Any]]) -> None:
    missing = postgres_missing()
    if missing:
        print(f"  skipped the PostgreSQL part: {missing}", file=sys.stderr)
        return
    sqlite = _throughput(serve, load, tmp, None, 1)
    pgqueuer = _pgqueuer(tmp)
    for nodes in (1, 2, 3):
        with database() as dsn:
            ours = _throughput(serve, load, tmp, dsn, nodes)
        for key, what in (("single", "single Submits"), ("default", "single Submits of sleep(0), a default type"),
                          ("bulk", f"SubmitBatch of {BULK_BATCH}")):  # fmt: skip
            table.row(f"no-op tasks end to end, {what}, {nodes} server(s) on PostgreSQL", "tasks/s", ours[key],
                      sqlite[key], "higher", "", "baseline: one server on SQLite, same run")  # fmt: skip
        if nodes == 1:
            for key, peer, what in (
                ("default", "one_by_one", "single Submits of a default type (sleep 0)"),
                ("bulk", "batched", f"SubmitBatch of {BULK_BATCH} (peer: 100 per enqueue)"),
            ):
                if pgqueuer:
                    table.row(f"{what}, 1 server on PostgreSQL, vs PgQueuer 1.6", "tasks/s", ours[key],
                              pgqueuer[peer], "higher", ">= 1.0", f"PgQueuer {pgqueuer['note']}")  # fmt: skip
    _across(table, tmp, serve, load)
    _finished_stored(table, tmp, serve, load)


@contextlib.contextmanager
def _servers(serve: Callable[..., Any], tmp: Path, dsn: str | None, nodes: int, label: str) -> Iterator[list[Any]]:
    """`nodes` started servers on the database `dsn` (None: each its own SQLite file)."""
    with contextlib.ExitStack() as stack:
        servers = []
        for index in range(nodes):
            db: Any = dsn if dsn is not None else tmp / f"{label}-{index}.db"
            extra = ["--max-queue", str(BULK_TASKS * 2), "--state-dir", str(tmp / f"{label}-state-{index}")]
            server = stack.enter_context(serve(db, workers=4, extra_args=extra))
            server.start(timeout=60)
            servers.append(server)
        yield servers


def _throughput(
    serve: Callable[..., Any], load: Callable[..., dict[str, Any]], tmp: Path, dsn: str | None, nodes: int
) -> dict[str, float]:
    label = f"pg{nodes}-{secrets.token_hex(2)}" if dsn else "sqlite-single"
    figures = {}
    for key, task_type, args in (("single", "noop", {}), ("default", "sleep", {"seconds": 0})):
        with _servers(serve, tmp, dsn, nodes, f"{label}-{key}") as servers:
            measured = load("single_tasks", address=[s.address for s in servers], count=SINGLE_TASKS,
                            concurrency=CONCURRENCY, timeout=300, task_type=task_type, args=args)  # fmt: skip
            figures[key] = measured["tasks_per_s"]
        if dsn:
            _empty(dsn)
    with _servers(serve, tmp, dsn, nodes, f"{label}-bulk") as servers:
        figures["bulk"] = load("bulk_tasks", address=[s.address for s in servers], count=BULK_TASKS,
                               batch=BULK_BATCH, in_flight=2, timeout=300)["tasks_per_s"]  # fmt: skip
    if dsn:
        _empty(dsn)
    return figures


def _empty(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE taskservice_tasks, taskservice_logs, taskservice_waits, taskservice_schedules RESTART IDENTITY"
        )


def _across(table: Any, tmp: Path, serve: Callable[..., Any], load: Callable[..., dict[str, Any]]) -> None:
    with database() as dsn, _servers(serve, tmp, dsn, 3, "across") as servers:
        a, b, c = (s.address for s in servers)
        ours = load("stop_across", submit_at=a, watch_at=b, stop_at=c, samples=STOP_SAMPLES)
    table.row("Stop sent to one server, REVOKED seen on another: p99", "ms", ours["stop_p99_ms"], None, "lower",
              "<= 100 ms", f"p50 {ours['stop_p50_ms']:.1f} ms; 3 servers, {ours['samples']} samples")  # fmt: skip
    table.row("progress reported on one server, seen by a watcher on another: p99", "ms", ours["progress_p99_ms"],
              None, "lower", "<= 100 ms", f"p50 {ours['progress_p50_ms']:.1f} ms")  # fmt: skip


def _finished_stored(table: Any, tmp: Path, serve: Callable[..., Any], load: Callable[..., dict[str, Any]]) -> None:
    """Claims read only unfinished tasks: the same no-op run beside a million finished tasks, and without them."""
    import psycopg

    rates = {}
    for stored in (0, FINISHED_STORED):
        with database() as dsn, _servers(serve, tmp, dsn, 1, f"stored-{stored}") as servers:
            server = servers[0]
            if stored:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(
                        """INSERT INTO taskservice_tasks (task_id, task_type, args, state, priority, labels,
                                   submitted_at, ended_at, attempt, event_sequence, request_digest)
                               SELECT 'done-' || i, 'noop', '{}', 'SUCCESS', 0, '{}', 0, 0, 1, 3, 'x'
                               FROM generate_series(1, %s) AS i""",
                        (stored,),
                    )
                    conn.execute("ANALYZE taskservice_tasks")
            rates[stored] = load("single_tasks", address=server.address, count=SINGLE_TASKS,
                                 concurrency=CONCURRENCY, timeout=300)["tasks_per_s"]  # fmt: skip
    table.row(f"no-op tasks end to end on PostgreSQL, {FINISHED_STORED:,} finished tasks stored (vs none)", "tasks/s",
              rates[FINISHED_STORED], rates[0], "higher", ">= 0.9")  # fmt: skip


def _pgqueuer(tmp: Path) -> dict[str, Any]:
    """PgQueuer's no-op jobs/s, enqueued one by one (64 in flight) and 100 at a time, medians of 3 alternating
    runs; {} when it cannot be installed here."""
    venv = tmp / "pgqueuer-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
        install = made.returncode == 0 and subprocess.run(
            [str(python), "-m", "pip", "install", "-q", PGQUEUER], capture_output=True, text=True, timeout=600
        )
        if not install or install.returncode != 0:
            print(f"  skipped PgQueuer: cannot install {PGQUEUER}", file=sys.stderr)
            return {}
    runs: dict[str, list[float]] = {"one_by_one": [], "batched": []}
    script = Path(__file__).with_name("pgqueuer_peer.py")
    for _ in range(3):
        for mode in ("one_by_one", "batched"):
            with database() as dsn:
                done = subprocess.run([str(python), str(script), dsn, mode, str(SINGLE_TASKS), str(CONCURRENCY)],
                                      capture_output=True, text=True, timeout=600)  # fmt: skip
            if done.returncode != 0:
                print(f"  PgQueuer {mode} failed: {done.stderr[-1500:]}", file=sys.stderr)
                return {}
            runs[mode].append(json.loads(done.stdout)["jobs_per_s"])
            time.sleep(0.5)
    result: dict[str, Any] = {mode: statistics.median(rates) for mode, rates in runs.items()}
    result["note"] = ", ".join(f"{mode} {min(r):.0f}-{max(r):.0f}" for mode, r in runs.items())
    return result
