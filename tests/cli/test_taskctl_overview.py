"""`taskctl stats` and `taskctl nodes` as subprocesses against a real server: what they print is what GetStats and
ListNodes answer, and `--json` is the HTTP API's JSON of the same answers."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.cli.runner import Taskctl
from tests.support.server import ServerProcess

pytestmark = pytest.mark.slow


def test_stats_counts_by_state_and_type_and_says_the_last_hour(taskctl: Taskctl) -> None:
    done = [taskctl.submit_id("demo", "--arg", "steps=1", "--arg", "step_seconds=0") for _ in range(2)]
    failed = taskctl.submit_id("demo", "--arg", "steps=1", "--arg", "step_seconds=0", "--arg", "fail_rate=1")
    waiting = taskctl.submit_id("sleep", "--arg", "seconds=1", "--delay", "1h")
    assert taskctl("wait", *done).code == 0 and taskctl("wait", failed).code == 3
    run = taskctl("stats")
    assert run.code == 0, run
    lines = run.out.splitlines()
    by_state = dict(zip(lines[0].split()[::2], lines[0].split()[1::2], strict=True))
    assert (by_state["SUCCESS"], by_state["FAILURE"], by_state["PENDING"], by_state["LOST"]) == ("2", "1", "1", "0")
    assert lines[1] == "last hour: 3 started, 2 succeeded, 1 failed"
    assert lines[2] == "no task waits to run", "the pending task waits for its time, so it could not run yet"
    table = {line.split()[0]: line.split()[1:] for line in lines[4:]}
    assert table["TYPE"] == ["PENDING", "SUCCESS", "FAILURE"]
    assert table["demo"] == ["0", "2", "1"] and table["sleep"] == ["1", "0", "0"]
    assert taskctl("stop", waiting).code == 0


def test_nodes_says_this_server_its_workers_and_what_it_claims(taskctl: Taskctl) -> None:
    run = taskctl("nodes")
    assert run.code == 0, run
    header, row = run.out.splitlines()
    assert header.split() == ["SERVER", "BUSY", "ABANDONED", "CLAIMS", "LAST", "SEEN"]
    server, busy, abandoned, *claims = row.split()
    assert ":" in server and busy == "0/2" and abandoned == "0"
    assert {"demo", "sleep"} <= {name.rstrip(",") for name in claims}


def test_stats_and_nodes_json_is_what_the_http_api_answers(taskctl: Taskctl, server_process: ServerProcess) -> None:
    (node,) = taskctl("--json", "nodes").json_lines()
    with urllib.request.urlopen(f"{server_process.http_url}/v1/nodes", timeout=10) as response:
        assert json.load(response)["nodes"] == [node]
    assert node["workers"] == 2 and node["abandoned"] == 0
    (stats,) = taskctl("--json", "stats").json_lines()
    assert len(stats["minutes"]) == 60 and stats["counts"] == []
