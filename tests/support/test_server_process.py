"""The ServerProcess helper itself: start, failure reports, restart on the same address and db, cleanup."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from taskservice.client import TaskClient, TaskState
from tests.support.server import ServerProcess, ServerStartError

pytestmark = pytest.mark.slow


def test_restart_keeps_the_address_and_the_tasks(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "tasks.db") as server:
        address = server.start().address
        assert server.running
        with TaskClient(address) as client:
            task_id = client.submit("sleep", {"seconds": 0.01}).task.task_id
            assert client.wait(task_id, timeout=30).state is TaskState.SUCCESS
        server.kill()
        assert not server.running
        server.restart()
        assert server.address == address
        with TaskClient(server.address) as client:
            assert client.get(task_id).state is TaskState.SUCCESS
        assert server.terminate(timeout=30) == 0
        assert "serving on" in server.log()
    assert server.proc is not None and server.proc.poll() is not None


def test_leaving_the_block_kills_the_server(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "tasks.db") as server:
        server.start()
        proc = server.proc
    assert proc is not None and proc.poll() is not None


def test_a_server_that_cannot_start_is_reported_with_its_log(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "tasks.db", extra_args=["--tasks", "no_such_module_for_this_test"])
    started = time.monotonic()
    with server, pytest.raises(ServerStartError) as info:
        server.start(timeout=30)
    message = str(info.value)
    assert "exited with code" in message
    assert "no_such_module_for_this_test" in message  # from the log tail
    assert time.monotonic() - started < 25, "an exit is noticed at once, not at the deadline"
