"""taskservice.testing's pytest fixtures in a user's own suite: a real server runs their task module."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "typed"
pytestmark = pytest.mark.slow

USER_TEST = """
from photo_tasks import Thumbnail, thumbnail

from taskservice.testing import TaskServer


def test_a_thumbnail(taskservice_client):
    assert thumbnail.submit(taskservice_client, name="a.jpg", width=30).result(timeout=30) == Thumbnail("a.jpg", 30, 20)


def test_the_session_shares_one_server(taskservice_server, taskservice_client):
    assert isinstance(taskservice_server, TaskServer)
    assert len(taskservice_client.list().tasks) == 1
"""


def test_a_users_suite_gets_a_server_running_its_tasks(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\ntaskservice_tasks = photo_tasks\n")
    (tmp_path / "test_photos.py").write_text(USER_TEST)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "TASKSERVICE_"))}
    env["PYTHONPATH"] = str(EXAMPLE)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "test_photos.py"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


def test_a_server_that_cannot_start_says_why(tmp_path: Path) -> None:
    from taskservice.testing import TaskServer, TaskServerError

    with pytest.raises(TaskServerError, match="no_such_module"):
        TaskServer(tasks=["no_such_module"]).start()
