"""/openapi.json tells the truth: schemathesis runs against a real server with every check on, and the server's own
answers to real calls fit the schemas the document gives them.

Four runs, as the document can say more about some operations than others:
- every check, on the operations whose acceptance the document fully states (reads, stops, deletes, pauses);
- every check but "schema-valid requests are accepted" on those whose acceptance depends on what the server holds
  or its clock (a task type's args, a not_before in the past, a limit with neither cap nor rate): they are refused
  with 400 naming the field, which the document cannot foresee;
- every check but "invalid requests are refused" on ListTasks: a query cannot carry a null, and schemathesis's
  null label filter arrives as the string "null", a label value like any other;
- neither of those two on SubmitBatch, which answers 200 with each request's own refusal in its results, and on
  WatchTasks, whose task ids and filters exclude each other (across query parameters, which no schema relates)
  and whose label filter is a query's.
Page tokens are fixed to "" (a token is one the server gave out, which no schema can generate).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from tests.support.server import ServerProcess

pytestmark = pytest.mark.slow

STATEFUL = ["Submit", "CreateSchedule", "CreateLimit", "UpdateLimit"]
NEITHER = ["SubmitBatch", "WatchTasks"]
RUNS = {
    "fully stated": ["--checks", "all",
                     *(f"--exclude-operation-id={op}" for op in [*STATEFUL, *NEITHER, "ListTasks"])],
    "stateful": ["--checks", "all", "--exclude-checks", "positive_data_acceptance",
                 *(f"--include-operation-id={op}" for op in STATEFUL)],
    "list query": ["--checks", "all", "--exclude-checks", "negative_data_rejection",
                   "--include-operation-id=ListTasks"],
    "neither": ["--checks", "all", "--exclude-checks", "positive_data_acceptance,negative_data_rejection",
                *(f"--include-operation-id={op}" for op in NEITHER)],
}  # fmt: skip


def _schemathesis() -> str:
    found = shutil.which("st", path=str(Path(sys.executable).parent))
    if found is None:
        if os.environ.get("CI") == "true":
            raise AssertionError("schemathesis is missing on CI (the test extra installs it)")
        pytest.skip("schemathesis is not installed (pip install -e '.[test]')")
    return found


@pytest.mark.parametrize("run", list(RUNS))
def test_schemathesis_finds_the_server_as_the_document_says(tmp_path: Path, run: str) -> None:
    st = _schemathesis()
    config = tmp_path / "schemathesis.toml"
    config.write_text('[parameters]\n"query.pageToken" = ""\n')
    with ServerProcess(tmp_path / "t.db", extra_args=["--data-root", str(tmp_path / "data")]) as server:
        server.start()
        ran = subprocess.run(
            [st, "--config-file", str(config), "run", f"{server.http_url}/openapi.json", *RUNS[run],
             "--max-examples", "40", "--workers", "1", "--seed", "20261207", "--phases", "examples,coverage,fuzzing"],
            capture_output=True, text=True, timeout=400, cwd=tmp_path, check=False,
        )  # fmt: skip
        assert server.running, server.log_tail()
    report = ran.stdout[-12000:]
    assert ran.returncode == 0, f"schemathesis found the document untrue ({run}):\n{report}\n{ran.stderr[-2000:]}"
    assert " passed" in report, report


def _validator(document: dict[str, Any], name: str) -> Any:
    """A validator of the document's schema `name`, its references resolved within the document."""
    return jsonschema_rs.validator_for({"$ref": f"#/components/schemas/{name}", "components": document["components"]})


def test_the_servers_own_answers_fit_the_document(server_process: ServerProcess) -> None:
    base = server_process.http_url

    def call(method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.load(answer)

    document = call("GET", "/openapi.json")
    submitted = call("POST", "/v1/tasks", {"taskType": "demo", "args": {"steps": 2, "step_seconds": 0.01},
                                            "labels": {"team": "docs"}, "timeLimit": "30s"})  # fmt: skip
    task_id = submitted["task"]["taskId"]
    answers = {
        "taskservice.v1.SubmitResponse": submitted,
        "taskservice.v1.WaitTaskResponse": call("GET", f"/v1/tasks/{task_id}:wait?timeout=20s"),
        "taskservice.v1.GetStateResponse": call("GET", f"/v1/tasks/{task_id}"),
        "taskservice.v1.ListTasksResponse": call("GET", "/v1/tasks?labels[team]=docs"),
        "taskservice.v1.ListTaskTypesResponse": call("GET", "/v1/taskTypes"),
        "taskservice.v1.CreateScheduleResponse": call("POST", "/v1/schedules", {
            "scheduleId": "docs", "task": {"taskType": "sleep", "args": {"seconds": 0}}, "interval": "3600s"}),
        "taskservice.v1.ListSchedulesResponse": call("GET", "/v1/schedules"),
        "taskservice.v1.CreateLimitResponse": call("POST", "/v1/limits", {"limitId": "docs", "maxRunning": 2,
                                                                         "rate": {"count": 5, "period": "1s"}}),
        "taskservice.v1.ListLimitsResponse": call("GET", "/v1/limits"),
        "taskservice.v1.StopTasksResponse": call("POST", "/v1/tasks:stop", {"labels": {"team": "nobody"}}),
    }  # fmt: skip
    assert answers["taskservice.v1.WaitTaskResponse"]["task"]["state"] == "TASK_STATE_SUCCESS"
    for name, answer in answers.items():
        errors = [str(error) for error in _validator(document, name).iter_errors(answer)]
        assert errors == [], f"{name} does not fit the document: {errors}\n{answer}"
    # And it is no rubber stamp: an answer with a field the document lacks, or a bad id, does not fit.
    task = dict(answers["taskservice.v1.GetStateResponse"]["task"])
    assert not _validator(document, "taskservice.v1.Task").is_valid({**task, "colour": "red"})
    assert not _validator(document, "taskservice.v1.Task").is_valid({**task, "taskId": "a b"})
