"""A task type for server processes under test (`taskservice serve --tasks tests.faults_input.file_gate`).

`faults.wait_for_file` runs until a file exists: a gate the test opens from outside the server process.
"""

from __future__ import annotations

import os

from taskservice import TaskContext, task


@task("faults.wait_for_file")
def wait_for_file(ctx: TaskContext, *, path: str) -> str:
    """Runs until `path` exists; wakes at once on a stop."""
    while not os.path.exists(path):
        ctx.sleep(0.01)
    return path
