"""The shared database away: unreachable at start (a clear message, exit code 7), restarted under load (Submits
answer UNAVAILABLE meanwhile, running handlers go on, their ends are written once it is back, the server recovers
by itself, health says NOT_SERVING then SERVING, and nothing acknowledged is lost)."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from taskservice.client import TaskClient, TaskServiceError, TaskState
from tests.support.postgres import pg_database, pg_dsn
from tests.support.server import ServerProcess, ServerStartError
from tests.support.waiting import wait_until

__all__ = ["pg_database", "pg_dsn"]

pytestmark = pytest.mark.slow

EXIT_DATABASE_UNREACHABLE = 7


def test_a_database_that_cannot_be_reached_at_start_exits_7_saying_so(tmp_path: Path) -> None:
    with ServerProcess("postgresql://postgres@127.0.0.1:1/nowhere", extra_args=["--state-dir", str(tmp_path)]) as s:
        with pytest.raises(ServerStartError):
            s.start(timeout=20)
        assert s.proc is not None and s.proc.wait(timeout=10) == EXIT_DATABASE_UNREACHABLE
        assert "cannot reach postgresql://postgres@127.0.0.1/nowhere" in s.log()
        assert "is the database running" in s.log()


def _restart_postgres() -> None:
    clusters = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if os.geteuid() != 0 or not clusters or shutil.which("pg_ctlcluster") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("restarting PostgreSQL needs root and pg_ctlcluster, which CI has")
        pytest.skip("restarting PostgreSQL needs root and pg_ctlcluster (a local Debian cluster)")
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", clusters[-1], "main", "restart", "--", "-m", "fast"],
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_the_database_restarted_under_load_loses_nothing_and_the_server_recovers_by_itself(
    pg_dsn: str, tmp_path: Path
) -> None:
    with ServerProcess(pg_dsn, workers=4, extra_args=["--state-dir", str(tmp_path)]) as server:
        server.start()
        acknowledged: list[str] = []
        refused: list[str] = []
        stop = threading.Event()

        def submit_forever() -> None:
            with TaskClient(server.address, timeout=5) as client:
                while not stop.is_set():
                    try:
                        acknowledged.append(client.submit("sleep", {"seconds": 0.3}).task.task_id)
                    except TaskServiceError as err:
                        refused.append(f"{err.code.name}: {err.message}")
                    time.sleep(0.01)

        with TaskClient(server.address, timeout=5) as client:
            long_ones = [client.submit("sleep", {"seconds": 3}).task.task_id for _ in range(3)]
            wait_until(lambda: all(client.get(t).state is TaskState.RUNNING for t in long_ones), what="long ones run")
        submitter = threading.Thread(target=submit_forever, daemon=True)
        submitter.start()
        wait_until(lambda: len(acknowledged) > 20, what="Submits flowing")
        _restart_postgres()
        with grpc.insecure_channel(server.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)

            def serving() -> bool:
                return (
                    health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
                    == health_pb2.HealthCheckResponse.SERVING
                )

            wait_until(lambda: len(acknowledged) > len(refused) + 40 and serving(), timeout=60,
                       what="Submits accepted again and health SERVING")  # fmt: skip
        stop.set()
        submitter.join(timeout=10)
        assert refused, "a restart of the database should have refused some Submits meanwhile"
        assert all(r.startswith("UNAVAILABLE") for r in refused), refused[:3]
        with TaskClient(server.address, timeout=10) as client:
            for task_id in [*long_ones, *acknowledged]:
                final = client.wait(task_id, timeout=60)
                assert final.state is TaskState.SUCCESS, f"{task_id}: {final.state} {final.error}"
        assert server.running
        print(f"{len(acknowledged)} Submits acknowledged, {len(refused)} refused while the database restarted")
