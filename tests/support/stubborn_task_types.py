"""A task type that ignores a stop, for a real server process (`--tasks tests.support.stubborn_task_types`): its
handler makes the file `began` names as it starts (a stop before that would end the task unrun), and returns only
once the file its `until` arg names exists (a test makes it to let the thread end)."""

from __future__ import annotations

import time
from pathlib import Path

from taskservice.core.handlers.context import TaskContext
from taskservice.core.handlers.registry import task

MAX_SECONDS = 60.0


@task("deaf")
def deaf(ctx: TaskContext, *, began: str, until: str) -> str:
    """Make the file `began`, then wait for the file `until`, whatever stop comes (at most a minute)."""
    Path(began).touch()
    deadline = time.monotonic() + MAX_SECONDS
    while not Path(until).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return "late"
