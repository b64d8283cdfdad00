"""Run taskctl as a subprocess, the way a user or a script does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Run:
    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def json_lines(self) -> list[dict[str, Any]]:
        """stdout as one JSON object per line (fails the test when a line is not one)."""
        objects = [json.loads(line) for line in self.out.splitlines() if line.strip()]
        assert all(isinstance(o, dict) for o in objects), self.out
        return objects

    def __str__(self) -> str:
        return f"taskctl {' '.join(self.args)} -> {self.code}\n--- stdout\n{self.out}--- stderr\n{self.err}"


@dataclass(frozen=True)
class Taskctl:
    """`taskctl --server ADDRESS ...`; None as address leaves --server out (env decides)."""

    address: str | None

    def __call__(self, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Run:
        argv = [sys.executable, "-m", "taskctl"]
        if self.address is not None:
            argv += ["--server", self.address]
        argv += list(args)
        full_env = {k: v for k, v in os.environ.items() if k != "TASKSERVICE_ADDR"}
        full_env.update(env or {})
        proc = subprocess.run(
            argv, capture_output=True, text=True, env=full_env, timeout=timeout, stdin=subprocess.DEVNULL
        )
        return Run(tuple(args), proc.returncode, proc.stdout, proc.stderr)

    def submit_id(self, *args: str) -> str:
        """Submit and return the new task's id."""
        run = self("--json", "submit", *args)
        assert run.code == 0, run
        task_id = run.json_lines()[0]["task"]["taskId"]
        assert isinstance(task_id, str)
        return task_id

    def state(self, task_id: str) -> str:
        run = self("--json", "get", task_id)
        assert run.code == 0, run
        state = run.json_lines()[0]["state"]
        assert isinstance(state, str) and state.startswith("TASK_STATE_"), state
        return state.removeprefix("TASK_STATE_")
