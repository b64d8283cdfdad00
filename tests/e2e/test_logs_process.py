"""Logs end to end: a handler's ctx.log lines through the Python client and `taskctl logs`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from taskservice.client import TaskClient, TaskState
from tests.support.server import ServerProcess

pytestmark = pytest.mark.slow

CHATTY_MODULE = """
from taskservice import TaskContext, task


@task("test.chatty")
def chatty(ctx: TaskContext, *, lines: int) -> int:
    for i in range(lines):
        ctx.log(f"line {i}")
    return lines
"""


def test_client_and_taskctl_read_a_task_log_and_resume_at_an_offset(tmp_path: Path) -> None:
    (tmp_path / "chatty_tasks.py").write_text(CHATTY_MODULE)
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    with ServerProcess(tmp_path / "t.db", extra_args=["--tasks", "chatty_tasks"], env=env) as server:
        server.start()
        with TaskClient(server.address) as client:
            task_id = client.submit("test.chatty", {"lines": 500}).task.task_id
            followed = b"".join(chunk.data for chunk in client.logs(task_id, follow=True))
            assert client.get(task_id).state is TaskState.SUCCESS
            expected = "".join(f"line {i}\n" for i in range(500)).encode()
            assert followed == expected
            assert b"".join(c.data for c in client.logs(task_id, offset=100)) == expected[100:]

        result = subprocess.run(
            [sys.executable, "-m", "taskctl", "--server", server.address, "logs", task_id, "--follow"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0 and result.stdout == expected
        missing = subprocess.run(
            [sys.executable, "-m", "taskctl", "--server", server.address, "logs", "nope"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert missing.returncode == 7 and "nope" in missing.stderr
