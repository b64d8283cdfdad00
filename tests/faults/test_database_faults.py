"""The shared database away: unreachable at start (a clear message, exit code 7), gone under load (Submits and
reads answer UNAVAILABLE at once meanwhile, running handlers go on, their ends are written once it is back, the
server recovers by itself, health says NOT_SERVING then SERVING, and nothing acknowledged is lost). The outage is
a proxy of the test's own between the server and the database: the machine's PostgreSQL is never touched."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from taskservice.client import TaskClient, TaskServiceError, TaskState
from tests.support.postgres import pg_database, pg_dsn
from tests.support.server import ServerProcess, ServerStartError
from tests.support.tcp_proxy import TcpProxy
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


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    """The database reached through a proxy of the test's own, which can take it away."""
    with TcpProxy("127.0.0.1", 5432) as made:
        yield made


def _away_for_a_while(proxy: TcpProxy, seconds: float = 3.0) -> None:
    """The database goes away (its connections reset, new ones refused), then comes back, as in a restart."""
    proxy.cut()
    deadline = time.monotonic() + seconds
    wait_until(lambda: time.monotonic() >= deadline, timeout=seconds + 5, what="the outage to last")
    proxy.restore()


def test_the_database_away_under_load_loses_nothing_and_the_server_recovers_by_itself(
    pg_dsn: str, proxy: TcpProxy, tmp_path: Path
) -> None:
    with ServerProcess(proxy.dsn_for(pg_dsn), workers=4, extra_args=["--state-dir", str(tmp_path)]) as server:
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
        _away_for_a_while(proxy)
        back_at = len(acknowledged)
        with grpc.insecure_channel(server.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)

            def serving() -> bool:
                return (
                    health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
                    == health_pb2.HealthCheckResponse.SERVING
                )

            wait_until(lambda: len(acknowledged) > back_at + 40 and serving(), timeout=60,
                       what="Submits accepted again and health SERVING")  # fmt: skip
        stop.set()
        submitter.join(timeout=10)
        assert refused, "the database away should have refused some Submits meanwhile"
        assert all(r.startswith("UNAVAILABLE") for r in refused), refused[:3]
        with TaskClient(server.address, timeout=10) as client:
            for task_id in [*long_ones, *acknowledged]:
                final = client.wait(task_id, timeout=60)
                assert final.state is TaskState.SUCCESS, f"{task_id}: {final.state} {final.error}"
        assert server.running
        print(f"{len(acknowledged)} Submits acknowledged, {len(refused)} refused while the database was away")


def test_while_the_database_is_away_calls_answer_unavailable_within_two_seconds(
    pg_dsn: str, proxy: TcpProxy, tmp_path: Path
) -> None:
    with ServerProcess(proxy.dsn_for(pg_dsn), workers=2, extra_args=["--state-dir", str(tmp_path)]) as server:
        server.start()
        with TaskClient(server.address, timeout=30) as client:
            known = client.submit("sleep", {"seconds": 0}).task.task_id
            client.wait(known, timeout=30)
            proxy.cut()
            slowest = 0.0
            calls = itertools.cycle([lambda: client.submit("sleep", {"seconds": 0}), lambda: client.get(known)])
            outage = time.monotonic()
            while time.monotonic() - outage < 8:  # past the first failures: while the pool reconnects, and after
                started = time.monotonic()
                with pytest.raises(TaskServiceError) as refused:
                    next(calls)()
                slowest = max(slowest, time.monotonic() - started)
                assert refused.value.code.name == "UNAVAILABLE", refused.value
            print(f"the slowest answer while the database was away took {slowest:.2f} s")
            assert slowest < 2.0, f"an answer took {slowest:.1f} s while the database was away"
            proxy.restore()
            task_id = wait_until(lambda: _submitted(client), timeout=30, what="Submits accepted again")
            assert client.wait(task_id, timeout=30).state is TaskState.SUCCESS
            assert client.get(known).state is TaskState.SUCCESS


def _submitted(client: TaskClient) -> str | None:
    try:
        return client.submit("sleep", {"seconds": 0}).task.task_id
    except TaskServiceError:
        return None
