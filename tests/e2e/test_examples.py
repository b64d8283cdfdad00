"""The examples the README shows run as written against a real server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import ServerProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow
EXAMPLE = Path(__file__).parents[2] / "examples" / "watch_with_progress.py"


def run_example(address: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "TASKSERVICE_ADDR": address}
    return subprocess.Popen(
        [sys.executable, str(EXAMPLE), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


def test_the_progress_bar_example_runs_to_success(server_process: ServerProcess) -> None:
    example = run_example(server_process.address, "3")
    output, _ = example.communicate(timeout=60)
    assert example.returncode == 0, output
    assert output.strip().splitlines()[-1] == "SUCCESS {'steps': 3}"


def test_the_progress_bar_example_stops_its_task_on_ctrl_c(server_process: ServerProcess) -> None:
    example = run_example(server_process.address, "100000")
    from taskservice.client import TaskClient

    with TaskClient(server_process.address) as client:
        # Progress means the example has been watching for a while: its Ctrl-C handler is in place.
        wait_until(lambda: any(t.progress.current > 0 for t in client.list().tasks), what="the task reports progress")
    example.send_signal(signal.SIGINT)
    output, _ = example.communicate(timeout=60)
    assert example.returncode == 0, output
    assert "stopping: STOPPING" in output
    assert output.strip().splitlines()[-1].startswith("REVOKED stopped by a client: Ctrl-C")
