"""`taskservice serve` as a process: user task modules, start-up errors, signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from taskservice.client import TaskClient, TaskState
from tests.support.server import ServerProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

USER_MODULE = """
from taskservice import TaskContext, task


@task("acme.greet")
def greet(ctx: TaskContext, *, name: str, times: int = 1) -> str:
    ctx.progress(50, "thinking")
    return " ".join([f"hello {name}"] * times)
"""


def python_path_with(directory: Path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(directory), os.environ.get("PYTHONPATH", "")])}


def test_tasks_flag_imports_a_user_module_whose_types_run(tmp_path: Path) -> None:
    (tmp_path / "acme_tasks.py").write_text(USER_MODULE)
    with ServerProcess(
        tmp_path / "t.db", extra_args=["--tasks", "acme_tasks"], env=python_path_with(tmp_path)
    ) as server:
        server.start()
        with TaskClient(server.address) as client:
            task_id = client.submit("acme.greet", {"name": "ops", "times": 2}).task.task_id
            final = client.wait(task_id, timeout=30)
            assert final.state is TaskState.SUCCESS and final.result == "hello ops hello ops"


def run_serve(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskservice", "serve", "--listen", "127.0.0.1:0", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_a_duplicate_task_type_name_fails_at_start_up(tmp_path: Path) -> None:
    (tmp_path / "clash.py").write_text(
        textwrap.dedent(
            """
            from taskservice import task

            @task("demo")
            def my_demo(ctx) -> None: ...
            """
        )
    )
    result = run_serve(["--db", str(tmp_path / "t.db"), "--tasks", "clash"], python_path_with(tmp_path))
    assert result.returncode == 2
    assert "'demo' is registered twice" in result.stderr


def test_a_missing_task_module_fails_at_start_up(tmp_path: Path) -> None:
    result = run_serve(["--db", str(tmp_path / "t.db"), "--tasks", "no_such_module_here"])
    assert result.returncode == 2
    assert "no_such_module_here" in result.stderr


def test_only_types_naming_a_type_not_loaded_fails_at_start_up() -> None:
    # Refused before the database is opened: this one is never reached.
    result = run_serve(["--db", "postgresql://nobody@127.0.0.1:1/tasks", "--only-types", "noop,gpu.render"])
    assert result.returncode == 2
    assert "--only-types names gpu.render, not task types here" in result.stderr


def test_a_second_server_on_the_same_database_file_is_refused_and_the_first_serves_on(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "t.db") as first, ServerProcess(tmp_path / "t.db") as second:
        first.start()
        with pytest.raises(Exception, match="in use by another taskservice server"):
            second.start(timeout=15)
        assert second.proc is not None and second.proc.wait(timeout=10) == 6
        assert f"pid {first.proc.pid}" in second.log()  # type: ignore[union-attr]
        with TaskClient(first.address) as client:
            task_id = client.submit("demo", {"steps": 0}).task.task_id
            assert client.wait(task_id, timeout=30).state is TaskState.SUCCESS


def test_a_second_signal_exits_at_once_during_the_drain(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "t.db", extra_args=["--drain", "120"]) as server:
        server.start()
        with TaskClient(server.address) as client:
            task_id = client.submit("sleep", {"seconds": 300}).task.task_id
            wait_until(lambda: server.committed(task_id) == ("RUNNING", 1), what="the task runs, on disk too")
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "draining" in server.log(), what="the drain started")
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=10) == 1
        server.start()
        with TaskClient(server.address) as client:
            assert client.get(task_id).state is TaskState.LOST


def test_metrics_endpoint_and_json_logs_of_a_real_server(tmp_path: Path) -> None:
    import json
    import re
    import urllib.request

    args = ["--metrics-listen", "127.0.0.1:0", "--log-format", "json"]
    with ServerProcess(tmp_path / "t.db", extra_args=args) as server:
        server.start()
        port = int(
            wait_until(lambda: re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", server.log())).group(1)
        )
        with TaskClient(server.address) as client:
            task_id = client.submit("demo", {"steps": 1, "step_seconds": 0.01}).task.task_id
            client.wait(task_id, timeout=30)

        def scrape() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                return response.read().decode()

        # The counter and the log line follow the state change's publication, so a wait may see the state first.
        success = 'taskservice_tasks_total{state="SUCCESS",task_type="demo"} 1.0'
        wait_until(lambda: success in scrape(), what="the SUCCESS counter")
        assert 'method="/taskservice.v1.TaskService/Submit"' in scrape()

        def transitions() -> list[dict[str, str]]:
            records = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
            return [r for r in records if r.get("task_id") == task_id]

        wait_until(lambda: len(transitions()) >= 3, what="three logged transitions")
        logged = transitions()
        assert [r["state"] for r in logged] == ["PENDING", "RUNNING", "SUCCESS"]
        assert all(r["task_type"] == "demo" and r["level"] == "INFO" for r in logged)


def test_taskctl_submits_a_jsonl_file_in_batches(tmp_path: Path) -> None:
    import json

    lines = [json.dumps({"task_type": "demo", "args": {"steps": 0}, "task_id": f"bulk-{i}"}) for i in range(25)]
    lines.insert(3, json.dumps({"task_type": "demo", "args": {"steps": "many"}}))
    lines.append(json.dumps({"task_type": "sleep", "args": {"seconds": 0.01}, "time_limit": "30s", "priority": 5}))
    (tmp_path / "tasks.jsonl").write_text("\n".join(lines) + "\n")
    with ServerProcess(tmp_path / "t.db") as server:
        server.start()
        result = subprocess.run(
            [sys.executable, "-m", "taskctl", "--server", server.address, "submit", "--from-file",
             str(tmp_path / "tasks.jsonl")],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 8, result.stderr
        out = result.stdout.splitlines()
        assert len(out) == 27 and out[3].startswith("line 4: INVALID_ARGUMENT") and "args.steps" in out[3]
        assert out[0] == "bulk-0 PENDING"
        with TaskClient(server.address) as client:
            assert client.wait("bulk-24", timeout=30).state is TaskState.SUCCESS
            assert len(list(client.iter_tasks())) == 26
        again = subprocess.run(
            [sys.executable, "-m", "taskctl", "--server", server.address, "--json", "submit", "--from-file", "-"],
            input=lines[0] + "\n", capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert again.returncode == 0
        record = json.loads(again.stdout)
        # Each line as POST /v1/tasks answers (taskctl --json is the HTTP API's JSON), with its line number.
        assert record["line"] == 1 and record["task"]["taskId"] == "bulk-0" and record["created"] is False
