"""`taskservice serve --procs 2`: two engine processes on one port and one SQLite file, under a supervisor that
restarts a process that dies (its tasks reaped at once), drains all on SIGTERM, sums their metrics and holds the
file against a second server."""

from __future__ import annotations

import contextlib
import os
import signal
import urllib.request
from pathlib import Path

from taskservice.client import Task, TaskClient, TaskState, Unavailable
from tests.support.postgres import pg_database, pg_dsn
from tests.support.server import ServerProcess, ServerStartError
from tests.support.waiting import wait_until

__all__ = ["pg_database", "pg_dsn"]

PROCS_MODULE = '''
import os
import pathlib
from taskservice import TaskContext, task


@task("test.pid")
def pid(ctx: TaskContext) -> int:
    """Which process ran it, after a moment of work (so that no one process takes the whole queue)."""
    ctx.sleep(0.02)
    return os.getpid()


@task("test.hold")
def hold(ctx: TaskContext, *, folder: str) -> int:
    """Says which process runs it (a file named by its pid), then waits for a stop."""
    (pathlib.Path(folder) / str(os.getpid())).touch()
    ctx.sleep(3600)
    return os.getpid()
'''


def _server(tmp_path: Path, *extra: str, db: str = "") -> ServerProcess:
    (tmp_path / "procs_tasks.py").write_text(PROCS_MODULE)
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    return ServerProcess(db or tmp_path / "t.db", workers=2, env=env,
                         extra_args=["--procs", "2", "--tasks", "procs_tasks", *extra])  # fmt: skip


def _ended(client: TaskClient, task_id: str) -> Task | None:
    """The task once it ended; None before, or while the client's connection was to the process that died (the
    next call connects again, to a live one)."""
    try:
        task = client.get(task_id)
    except Unavailable:
        return None
    return task if task.state.is_terminal else None


def test_every_engine_process_runs_tasks_of_one_queue_on_one_port(tmp_path: Path) -> None:
    with _server(tmp_path) as server:
        server.start(timeout=30)
        with TaskClient(server.address) as client:
            ids = [client.submit("test.pid", {}).task.task_id for _ in range(100)]
            pids = {client.wait(task_id, timeout=60).result for task_id in ids}
        assert server.proc is not None and server.proc.pid not in pids
        assert len(pids) == 2, f"ran on {pids}: every engine process takes tasks from the one queue"


def test_a_killed_engine_process_is_replaced_and_its_task_ends_without_waiting_for_its_lease(tmp_path: Path) -> None:
    folder = tmp_path / "running"
    folder.mkdir()
    with _server(tmp_path, "--lease", "5m", "--renew", "1m") as server:
        server.start(timeout=30)
        with TaskClient(server.address) as client:
            task_id = client.submit("test.hold", {"folder": str(folder)}).task.task_id
            owner = int(wait_until(lambda: next(iter(os.listdir(folder)), None), what="the task runs"))
            os.kill(owner, signal.SIGKILL)
            # A lease of five minutes: only the supervisor ending the dead process's leases ends it this soon.
            final = wait_until(lambda: _ended(client, task_id), timeout=30, what="the dead process's task ended")
            assert final.state is TaskState.LOST, final
            again = client.submit("test.pid", {}).task.task_id
            assert client.wait(again, timeout=30).state is TaskState.SUCCESS
        assert server.running and "engine process" in server.log() and "starting it again" in server.log()


def test_sigterm_drains_every_engine_process(tmp_path: Path) -> None:
    with _server(tmp_path) as server:
        server.start(timeout=30)
        with TaskClient(server.address) as client:
            ids = [client.submit("sleep", {"seconds": 1}).task.task_id for _ in range(2)]
            wait_until(lambda: all(client.get(i).state is TaskState.RUNNING for i in ids), what="both run")
        assert server.terminate(timeout=30) == 0
        assert [server.committed(i) for i in ids] == [("SUCCESS", 1)] * 2


def test_metrics_are_those_of_all_engine_processes(tmp_path: Path) -> None:
    port_file = tmp_path / "metrics-port"
    with _server(tmp_path, "--metrics-listen", "127.0.0.1:0", "--metrics-port-file", str(port_file)) as server:
        server.start(timeout=30)
        with urllib.request.urlopen(f"http://127.0.0.1:{port_file.read_text().strip()}/metrics", timeout=10) as got:
            text = got.read().decode()
        assert "taskservice_workers 4.0" in text.splitlines(), text  # 2 processes x 2 workers


def test_a_second_server_on_the_file_is_refused_while_the_supervisor_holds_it(tmp_path: Path) -> None:
    with _server(tmp_path) as server:
        server.start(timeout=30)
        with ServerProcess(tmp_path / "t.db") as second:
            with contextlib.suppress(ServerStartError):
                second.start()
            assert second.proc is not None and second.proc.wait(timeout=30) == 6, second.log_tail()


def test_handlers_in_worker_processes_run_under_every_engine_process(tmp_path: Path) -> None:
    with _server(tmp_path, "--isolation", "process", "--process-workers", "1") as server:
        server.start(timeout=60)
        with TaskClient(server.address) as client:
            ids = [client.submit("test.pid", {}).task.task_id for _ in range(20)]
            finals = [client.wait(task_id, timeout=60) for task_id in ids]
        assert all(final.state is TaskState.SUCCESS for final in finals), finals
        supervisor = server.proc.pid if server.proc is not None else None
        assert all(isinstance(final.result, int) and final.result != supervisor for final in finals)
        assert "Traceback" not in server.log(), server.log_tail()


def test_engine_processes_share_a_postgresql_database_and_a_dead_ones_task_ends_at_once(
    pg_dsn: str, tmp_path: Path
) -> None:
    folder = tmp_path / "running"
    folder.mkdir()
    with _server(tmp_path, "--state-dir", str(tmp_path / "state"), "--lease", "5m", db=pg_dsn) as server:
        server.start(timeout=30)
        with TaskClient(server.address) as client:
            ids = [client.submit("test.pid", {}).task.task_id for _ in range(60)]
            pids = {client.wait(task_id, timeout=60).result for task_id in ids}
            assert len(pids) == 2, f"ran on {pids}"
            held = client.submit("test.hold", {"folder": str(folder)}).task.task_id
            owner = int(wait_until(lambda: next(iter(os.listdir(folder)), None), what="the task runs"))
            os.kill(owner, signal.SIGKILL)
            final = wait_until(lambda: _ended(client, held), timeout=30, what="the dead process's task ended")
            assert final.state is TaskState.LOST, final
