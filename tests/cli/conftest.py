from __future__ import annotations

import pytest

from tests.cli.runner import Taskctl
from tests.support.fixtures import server_process
from tests.support.server import ServerProcess

__all__ = ["server_process", "taskctl"]


@pytest.fixture
def taskctl(server_process: ServerProcess) -> Taskctl:
    """Runs `python -m taskctl --server <the test server> ...` as a subprocess."""
    return Taskctl(server_process.address)
