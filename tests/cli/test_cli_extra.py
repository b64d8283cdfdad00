"""taskctl and its rich are the `cli` extra: the server and the client library import nothing of them, and taskctl
without them says which extra it needs."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)


def test_the_server_and_the_client_need_no_rich() -> None:
    ran = _run(
        "import sys\n"
        "import taskservice.server.app, taskservice.client, taskservice.__main__\n"
        "assert not [m for m in sys.modules if m == 'rich' or m.startswith('rich.')], 'rich was imported'\n"
    )
    assert ran.returncode == 0, ran.stderr


def test_taskctl_without_rich_names_the_extra() -> None:
    # As if rich were not installed: an import of it fails.
    ran = _run("import sys\nsys.modules['rich'] = None\nfrom taskctl.cli import main\n")
    assert ran.returncode == 1 and "pip install 'taskservice[cli]'" in ran.stderr, (ran.returncode, ran.stderr)
