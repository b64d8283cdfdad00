"""The legacy POST /API/tasks call, posted with requests as the old clients did, against a real server process."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests

from taskservice.client import TaskClient
from tests.support.server import ServerProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

BODY = {"task_no": 9326, "args": {"input_fpath": "~/input", "output_fpath": "~/output", "time_limit": 1200,
                                  "clear_nodes": True}}  # fmt: skip
START_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$")


def test_the_old_body_runs_the_operators_task_type_and_answers_the_old_shape(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "input").write_bytes(b"legacy bytes" * 1000)
    args = ["--data-root", str(data), "--legacy-task-type", "file.copy"]
    with ServerProcess(tmp_path / "t.db", extra_args=args) as server:
        server.start()
        answer = requests.post(f"{server.http_url}/API/tasks", json=BODY, timeout=10)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert list(body) == ["message", "result", "state"] and body["message"] == "" and body["state"] == "success"
        assert list(body["result"]) == ["message", "start_time", "task_no"]
        assert body["result"]["task_no"] == 9326 and body["result"]["message"] == "task is running"
        assert START_TIME.match(body["result"]["start_time"]), body
        with TaskClient(server.address) as client:
            task = client.wait("9326", timeout=30)
        assert task.state.value == "SUCCESS" and task.task_type == "file.copy" and task.time_limit == 1200
        assert (data / "output").read_bytes() == (data / "input").read_bytes(), "~/ is the top of the data root"
        again = requests.post(f"{server.http_url}/API/tasks", json=BODY, timeout=10).json()
        assert again["result"]["start_time"] == body["result"]["start_time"], "posting it again is the same task"
        assert again["result"]["message"] == "task ended SUCCESS"
        status = requests.get(f"{server.http_url}/API/tasks/9326", timeout=10).json()
        assert status["state"] == "success" and status["result"]["state"] == "SUCCESS"
        assert START_TIME.match(status["result"]["end_time"]), status
        stopped = requests.post(f"{server.http_url}/API/tasks/9326/stop", timeout=10).json()
        assert stopped["result"]["state"] == "SUCCESS", "an ended task stays as it ended"

        for bad, field_text, code in (
            ({"args": {}}, "task_no", 400),
            ({"task_no": "x"}, "task_no", 400),
            ({"task_no": 1, "args": {"input_fpath": "~/missing", "output_fpath": "~/o"}}, "input_fpath", 400),
            ({"task_no": 9326, "args": {"input_fpath": "~/input", "output_fpath": "~/other"}}, "9326", 409),
        ):
            refused = requests.post(f"{server.http_url}/API/tasks", json=bad, timeout=10)
            assert refused.status_code == code, refused.text
            envelope = refused.json()
            assert envelope["state"] == "failure" and envelope["result"] is None and field_text in envelope["message"]
        missing = requests.get(f"{server.http_url}/API/tasks/1", timeout=10)
        assert missing.status_code == 404 and missing.json()["state"] == "failure"


def test_without_a_legacy_task_type_the_call_says_how_to_turn_it_on(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "t.db") as server:
        server.start()
        answer = requests.post(f"{server.http_url}/API/tasks", json=BODY, timeout=10)
        assert answer.status_code == 404
        assert answer.json()["state"] == "failure" and "--legacy-task-type" in answer.json()["message"]
        wait_until(lambda: requests.get(f"{server.http_url}/v1/tasks", timeout=10).status_code == 200)


def test_a_command_as_the_legacy_type_and_clear_nodes_false_keeping_a_failed_tasks_partial_output(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "input").write_text("half done\n")
    commands = tmp_path / "commands.toml"
    commands.write_text('[commands.convert]\nargv = ["sh", "-c", "cat {input_fpath} > {output_fpath}; exit 3"]\n')
    args = ["--data-root", str(data), "--commands", str(commands), "--legacy-task-type", "command:convert"]
    with ServerProcess(tmp_path / "t.db", extra_args=args) as server:
        server.start()
        body = {"task_no": 7, "args": {"input_fpath": "~/input", "output_fpath": "~/out", "clear_nodes": False}}
        assert requests.post(f"{server.http_url}/API/tasks", json=body, timeout=10).json()["state"] == "success"
        with TaskClient(server.address) as client:
            assert client.wait("7", timeout=30).state.value == "FAILURE"
        status = requests.get(f"{server.http_url}/API/tasks/7", timeout=10).json()["result"]
        assert status["state"] == "FAILURE" and "end_time" in status
        assert [p.read_text() for p in data.glob(".out.*.part")] == ["half done\n"], "the partial output is kept"
        assert not (data / "out").exists()
