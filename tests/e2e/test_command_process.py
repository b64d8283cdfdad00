"""`taskservice serve --commands FILE`: command tasks over gRPC against a real server process, and the latency
from a Stop RPC to REVOKED (printed; run with -s to see it)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from taskservice.client import InvalidArgument, TaskClient, TaskState
from tests.support.server import ServerProcess
from tests.support.waiting import wait_until

SCRIPTS = Path(__file__).parents[1] / "support" / "commands"
STOP_GRACE = 1.0


def _serve_has_commands_flag() -> bool:
    shown = subprocess.run(
        [sys.executable, "-m", "taskservice", "serve", "--help"], capture_output=True, text=True, timeout=60
    )
    return "--commands" in shown.stdout


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not _serve_has_commands_flag(), reason="`taskservice serve` has no --commands flag"),
]


def argv(script: str, *args: str) -> str:
    return json.dumps([sys.executable, str(SCRIPTS / script), *args])


COMMANDS = f"""
[commands.act]
argv = {argv("act.py", "{program}")}
[commands.act.args]
program = {{ type = "string" }}

[commands.stubborn]
argv = {argv("stubborn.py", "{pid_file}")}
[commands.stubborn.args]
pid_file = {{ type = "string" }}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    """One server for the module: data root, commands file, a 1 s stop grace."""
    folder = tmp_path_factory.mktemp("command-server")
    (folder / "commands.toml").write_text(COMMANDS)
    extra = ["--data-root", str(folder / "data"), "--commands", str(folder / "commands.toml")]
    with ServerProcess(folder / "tasks.db", extra_args=[*extra, "--stop-grace", f"{STOP_GRACE}s"]) as process:
        process.start()
        yield process, folder


def test_a_command_task_runs_reports_progress_and_logs_over_grpc(server: tuple[ServerProcess, Path]) -> None:
    process, _ = server
    with TaskClient(process.address) as client:
        program = "out=PROGRESS 40 reading;err=a warning;out=PROGRESS 100 done"
        task_id = client.submit("command", {"name": "act", "program": program}).task.task_id
        final = client.wait(task_id, timeout=15)
        assert final.state is TaskState.SUCCESS, f"{final.error}\n{process.log_tail()}"
        assert final.result["exit_code"] == 0
        assert final.progress.percent == 100 and final.progress.message == "done"
        log = log_text(client, task_id)
        assert "PROGRESS 40 reading\n" in log and "a warning\n" in log

        failed = client.wait(client.submit("command", {"name": "act", "program": "err=boom;exit=4"}).task.task_id, 15)
        assert failed.state is TaskState.FAILURE and failed.error is not None
        assert failed.error.type == "CommandFailed" and "exited with code 4" in failed.error.message
        assert "boom" in failed.error.message

        with pytest.raises(InvalidArgument) as caught:
            client.submit("command", {"name": "rm", "program": "x"})
        assert [field for field, _ in caught.value.field_violations] == ["args.name"]


def log_text(client: TaskClient, task_id: str) -> str:
    return b"".join(chunk.data for chunk in client.logs(task_id)).decode()


def stop_latency(client: TaskClient, task_id: str, ready: Callable[[], bool]) -> tuple[float, TaskState, str]:
    """Seconds from the Stop RPC to the terminal event on an open watch, stopping once `ready()` holds."""
    ended: list[tuple[float, TaskState, str]] = []

    def watch() -> None:
        for event in client.watch(task_id, timeout=20):
            if event.state.is_terminal:
                error = event.task.error.message if event.task and event.task.error else ""
                ended.append((time.monotonic(), event.state, error))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    wait_until(ready, timeout=15, what="the command to run")
    asked = time.monotonic()
    client.stop(task_id, "latency probe")
    watcher.join(timeout=15)
    assert ended, f"task {task_id} did not end after the stop"
    at, state, error = ended[0]
    return at - asked, state, error


def test_stop_latency_from_the_rpc_to_revoked(server: tuple[ServerProcess, Path]) -> None:
    process, folder = server
    with TaskClient(process.address) as client:
        # A child that exits on SIGTERM (the usual case).
        program = f"out=running;wait={folder / 'never'}"
        task_id = client.submit("command", {"name": "act", "program": program}).task.task_id
        polite, polite_state, _ = stop_latency(client, task_id, lambda: "running" in log_text(client, task_id))

        # A child that ignores SIGTERM: SIGKILL shortly before the stop grace ends.
        pid_file = folder / "stubborn.pid"
        task_id = client.submit("command", {"name": "stubborn", "pid_file": str(pid_file)}).task.task_id
        stubborn, stubborn_state, stubborn_error = stop_latency(client, task_id, pid_file.exists)

    print(
        f"\nStop RPC -> REVOKED: {polite * 1000:.0f} ms for a child that exits on SIGTERM; "
        f"{stubborn * 1000:.0f} ms for a child that ignores it (--stop-grace {STOP_GRACE:g}s)"
    )
    assert polite_state is TaskState.REVOKED and polite < 1.0
    assert stubborn_state is TaskState.REVOKED and "abandoned" not in stubborn_error
    assert STOP_GRACE - 0.3 <= stubborn < STOP_GRACE + 1.0


def test_a_bad_commands_file_stops_the_server_at_start(tmp_path: Path) -> None:
    bad = tmp_path / "commands.toml"
    bad.write_text('[commands.list]\nargv = ["ls", "{folder}"]\n')
    command = [sys.executable, "-m", "taskservice", "serve", "--listen", "127.0.0.1:0", "--db", str(tmp_path / "t.db")]
    command += ["--data-root", str(tmp_path / "data"), "--commands", str(bad)]
    try:
        ended = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the server started (ran 10 s) with a commands file whose argv uses an undeclared placeholder")
    assert ended.returncode == 2, ended.stderr
    assert f"{bad}: commands.list.argv[1]: placeholder {{folder}} is not a declared arg" in ended.stderr
