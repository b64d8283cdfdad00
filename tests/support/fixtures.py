"""pytest fixtures around ServerProcess. Use them from a conftest.py:

from tests.support.fixtures import server_process  # noqa: F401  (a fixture)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import ServerProcess


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[ServerProcess]:
    """A started server (2 workers) with its own db in tmp_path; killed after the test."""
    with ServerProcess(tmp_path / "tasks.db") as server:
        server.start()
        yield server
