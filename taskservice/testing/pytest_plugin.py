"""The pytest fixtures of taskservice.testing (a pytest11 entry point: loaded wherever taskservice is installed).

    # pytest.ini / pyproject [tool.pytest.ini_options]
    taskservice_tasks = myapp.tasks

    def test_resize(taskservice_client):
        assert resize.submit(taskservice_client, width=640).result(timeout=30).width == 640

One server per test session (a fresh SQLite file), started on first use; a client per test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from taskservice.client import TaskClient
from taskservice.testing.server import TaskServer


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("taskservice_tasks", "modules of task types the taskservice_server fixture runs", type="args")
    parser.addini("taskservice_workers", "worker threads of the taskservice_server fixture", default="4")


@pytest.fixture(scope="session")
def taskservice_server(pytestconfig: pytest.Config) -> Iterator[TaskServer]:
    """A real server for the session, running the modules of the `taskservice_tasks` ini option."""
    tasks = pytestconfig.getini("taskservice_tasks")
    with TaskServer(tasks, workers=int(pytestconfig.getini("taskservice_workers"))) as server:
        yield server


@pytest.fixture
def taskservice_client(taskservice_server: TaskServer) -> Iterator[TaskClient]:
    """A client of the session's server."""
    with taskservice_server.client() as client:
        yield client
