"""What the clients generated in other languages (tests/ecosystem/cpp, go) are checked by: each submits a demo task
and watches it to its end, then submits a long sleep, stops it and watches it end, printing one line each."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.server import ServerProcess


def protos_folder() -> str:
    """The protos as an installed taskservice names them (`taskservice protos`)."""
    shown = subprocess.run([sys.executable, "-m", "taskservice", "protos"], capture_output=True, text=True, check=True)
    return shown.stdout.strip()


def check_client_against_a_real_server(binary: Path, tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "t.db") as server:
        server.start()
        ran = subprocess.run([str(binary), server.address], capture_output=True, text=True, timeout=120, check=False)
    assert ran.returncode == 0, f"{ran.stdout}\n{ran.stderr}"
    demo, sleep = ran.stdout.strip().splitlines()
    assert demo.startswith("demo ") and " TASK_STATE_SUCCESS after " in demo, demo
    assert int(demo.rsplit(" ", 2)[1]) >= 3, "the watch saw the task's events to its end"
    assert sleep.startswith("sleep ") and sleep.endswith(" TASK_STATE_REVOKED"), sleep
