"""Test aids for people who write task types and call a server from their own test suites.

- `TaskServer`: a real server in a child process, on a temporary SQLite file and a free port, running your task
  modules; `server.client()` talks to it. The pytest fixtures `taskservice_server` and `taskservice_client` (this
  package's pytest plugin, loaded when taskservice is installed) give one per test session.
- `run_eagerly(handle, **args)`, or `EagerContext().run(handle, **args)`: the handler run inline, in the test's
  thread, its args checked as Submit checks them and its result decoded as the typed client decodes it; the
  context records progress and log lines and can be stopped. For unit tests of handlers, as Celery's
  task_always_eager is.
"""

from __future__ import annotations

from taskservice.testing.eager import EagerContext, run_eagerly
from taskservice.testing.server import TaskServer, TaskServerError

__all__ = ["EagerContext", "TaskServer", "TaskServerError", "run_eagerly"]
