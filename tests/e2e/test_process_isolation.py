"""--isolation process on a real server process: the built-in Python task types run in worker processes (files
included), stop as in thread mode, and a worker process killed from outside fails only its own task."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from taskservice.client import TaskClient, TaskState
from tests.support.server import ServerProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_built_in_types_run_in_worker_processes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "big.bin").write_bytes(os.urandom(2 * 2**20))
    args = ["--isolation", "process", "--process-workers", "2", "--data-root", str(data), "--stop-grace", "1"]
    with ServerProcess(tmp_path / "t.db", extra_args=args) as server:
        server.start()
        with TaskClient(server.address) as client:
            demo = client.submit("demo", {"steps": 5, "step_seconds": 0.01}).task.task_id
            events = list(client.watch(demo))
            assert events[-1].state is TaskState.SUCCESS and events[-1].task.result == {"steps": 5}
            assert any(e.task is None and e.progress.percent > 0 for e in events), "progress came through"
            checksum = client.submit("file.checksum", {"input_fpath": "big.bin"}).task.task_id
            done = client.wait(checksum, timeout=30)
            assert done.state is TaskState.SUCCESS and done.result["bytes"] == 2 * 2**20
            copied = client.submit("file.copy", {"input_fpath": "big.bin", "output_fpath": "copy.bin"}).task.task_id
            assert client.wait(copied, timeout=30).state is TaskState.SUCCESS
            assert (data / "copy.bin").read_bytes() == (data / "big.bin").read_bytes()
            sleeper = client.submit("sleep", {"seconds": 60}).task.task_id
            wait_until(lambda: client.get(sleeper).state is TaskState.RUNNING)
            client.stop(sleeper)
            assert client.wait(sleeper, timeout=30).state is TaskState.REVOKED

            assert server.proc is not None
            victim = client.submit("sleep", {"seconds": 60}).task.task_id
            wait_until(lambda: client.get(victim).state is TaskState.RUNNING)
            # The workers are the forkserver's children (the server's grandchildren): kill every one, from outside.
            workers = [worker for child in children(server.proc.pid) for worker in children(child)]
            assert len(workers) == 2, workers
            for pid in workers:
                os.kill(pid, signal.SIGKILL)
            lost = client.wait(victim, timeout=30)
            assert lost.state is TaskState.FAILURE and lost.error is not None
            assert lost.error.type == "WorkerProcessDied", lost.error
            after = client.submit("demo", {"steps": 1, "step_seconds": 0.01}).task.task_id
            assert client.wait(after, timeout=30).state is TaskState.SUCCESS, "the pool replaced its processes"


def test_a_server_killed_with_sigkill_leaves_no_worker_process_behind(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "t.db", extra_args=["--isolation", "process", "--process-workers", "2"]) as server:
        server.start()
        with TaskClient(server.address) as client:
            busy = client.submit("sleep", {"seconds": 60}).task.task_id
            wait_until(lambda: client.get(busy).state is TaskState.RUNNING)
        assert server.proc is not None
        left = [pid for child in children(server.proc.pid) for pid in [child, *children(child)]]
        assert left, "the forkserver and its workers run"
        server.kill()
        wait_until(lambda: not [pid for pid in left if Path(f"/proc/{pid}").exists()], timeout=10,
                   what="the worker processes end with the server")  # fmt: skip
