"""taskctl as a subprocess against the real server: output, JSON and every exit code."""

from __future__ import annotations

import json
import socket
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.cli.runner import Run, Taskctl
from tests.support.server import ServerProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

FAST_DEMO = ("--arg", "steps=3", "--arg", "step_seconds=0.02")


def _one_error_line(run: Run, prefix: str) -> str:
    """stderr must be exactly one line `taskctl: <prefix>...`, and stdout empty."""
    lines = run.err.splitlines()
    assert len(lines) == 1, run
    assert lines[0].startswith(f"taskctl: {prefix}"), run
    assert run.out == "", run
    return lines[0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_submit_then_get(taskctl: Taskctl) -> None:
    run = taskctl("submit", "demo", *FAST_DEMO, "--label", "team=cli", "--priority", "3", "--time-limit", "1m")
    assert run.code == 0, run
    task_id, state = run.out.split()
    assert state in {"PENDING", "RUNNING", "SUCCESS"}
    got = taskctl("get", task_id)
    assert got.code == 0, got
    fields = dict(line.split(None, 1) for line in got.out.splitlines() if line[:1].isalpha() and " " in line)
    assert fields["task"] == task_id
    assert fields["type"] == "demo"
    assert fields["labels"] == "team=cli"
    assert fields["priority"] == "3"
    assert "time limit" in got.out and "1m" in got.out
    assert json.loads(fields["args"]) == {"steps": 3, "step_seconds": 0.02}


def test_arg_values_are_json_when_they_parse_and_merge_over_args_json(taskctl: Taskctl) -> None:
    args_json = '{"steps": 1, "seed": 5, "step_seconds": 0.5}'
    task_id = taskctl.submit_id("demo", "--args-json", args_json, "--arg", "steps=2", "--arg", "step_seconds=0.01")
    args = taskctl("--json", "get", task_id).json_lines()[0]["args"]
    assert args == {"steps": 2, "seed": 5, "step_seconds": 0.01}
    # A value that is no JSON stays a string, which the server rejects for an int parameter.
    run = taskctl("submit", "demo", "--arg", "steps=abc")
    assert run.code == 8, run
    assert "args.steps" in _one_error_line(run, "INVALID_ARGUMENT: ")


def test_submit_watch_to_success_exits_0(taskctl: Taskctl) -> None:
    run = taskctl("submit", "demo", *FAST_DEMO, "--watch")
    assert run.code == 0, run
    lines = run.out.splitlines()
    task_id = lines[0].split()[0]
    # Not a terminal: one line per event, then the final state with the result.
    assert any(" RUNNING " in line for line in lines[1:-1]), run
    assert lines[-1].startswith(f"task {task_id} SUCCESS"), run
    assert "result=" in lines[-1]


def test_failing_demo_exits_3(taskctl: Taskctl) -> None:
    run = taskctl("submit", "demo", "--arg", "fail_rate=1", "--watch")
    assert run.code == 3, run
    assert " FAILURE: " in run.out.splitlines()[-1]
    # get reports the failure but exits 0: the task exists.
    task_id = run.out.split()[0]
    got = taskctl("get", task_id)
    assert got.code == 0, got
    assert "FAILURE" in got.out and "Traceback" in got.out


def test_stop_then_watch_exits_4(taskctl: Taskctl) -> None:
    task_id = taskctl.submit_id("sleep", "--arg", "seconds=60")
    wait_until(lambda: taskctl.state(task_id) == "RUNNING", what="the sleep to run")
    stopped = taskctl("stop", task_id, "--reason", "no longer needed")
    assert stopped.code == 0, stopped
    assert stopped.out.split()[0] == task_id
    assert stopped.out.split()[1] in {"STOPPING", "REVOKED"}
    watched = taskctl("watch", task_id)
    assert watched.code == 4, watched
    assert watched.out.splitlines()[-1].startswith(f"task {task_id} REVOKED: Revoked"), watched
    assert "no longer needed" in taskctl("get", task_id).out


def test_wait_exits_with_the_final_state_or_10_when_its_timeout_passes_first(taskctl: Taskctl) -> None:
    task_id = taskctl.submit_id("sleep", "--arg", "seconds=60")
    early = taskctl("wait", task_id, "--timeout", "300ms")
    assert early.code == 10, early
    assert early.out.split() in ([task_id, "PENDING"], [task_id, "RUNNING"]), early
    taskctl("stop", task_id)
    stopped = taskctl("wait", task_id)
    assert stopped.code == 4, stopped
    assert stopped.out.split() == [task_id, "REVOKED"], stopped
    failed = taskctl.submit_id("demo", "--arg", "fail_rate=1", "--arg", "steps=2", "--arg", "step_seconds=0.01")
    waited = taskctl("wait", failed, "--json")
    assert waited.code == 3, waited
    assert json.loads(waited.out)["state"] == "TASK_STATE_FAILURE"


def test_wait_for_several_tasks_prints_each_as_it_ends_and_exits_with_the_first_that_did_not_succeed(
    taskctl: Taskctl,
) -> None:
    fine = [taskctl.submit_id("sleep", "--arg", "seconds=0") for _ in range(2)]
    failed = taskctl.submit_id("demo", "--arg", "fail_rate=1", "--arg", "steps=1", "--arg", "step_seconds=0.01")
    both = taskctl("wait", *fine, failed)
    assert both.code == 3, both
    assert sorted(line.split()[0] for line in both.out.splitlines()) == sorted([*fine, failed])
    assert taskctl("wait", *fine).code == 0
    long = taskctl.submit_id("sleep", "--arg", "seconds=60")
    early = taskctl("wait", fine[0], long, "--timeout", "300ms")
    assert early.code == 10, early
    taskctl("stop", long)


def test_run_later_with_delay_or_not_before_lists_as_scheduled_and_shows_when(taskctl: Taskctl) -> None:
    later = taskctl.submit_id("sleep", "--arg", "seconds=0", "--delay", "1h")
    in_two_hours = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    at = taskctl.submit_id("sleep", "--arg", "seconds=0", "--not-before", in_two_hours)
    listed = taskctl("list", "--scheduled", "--json")
    assert listed.code == 0, listed
    scheduled = {json.loads(line)["taskId"]: json.loads(line)["scheduledAt"] for line in listed.out.splitlines()}
    assert set(scheduled) >= {later, at} and scheduled[later] < scheduled[at]
    too_far = taskctl("submit", "sleep", "--arg", "seconds=0", "--not-before", "2099-01-01T00:00:00Z")
    assert too_far.code == 8 and "not_before" in too_far.err, too_far
    assert taskctl("submit", "sleep", "--not-before", "tomorrow").code == 2
    assert "scheduled" in taskctl("get", later).out
    assert taskctl("stop", later).out.split() == [later, "REVOKED"]
    assert later not in taskctl("list", "--scheduled").out


def test_list_searches_orders_and_follows_dependencies(taskctl: Taskctl) -> None:
    slow = taskctl.submit_id("sleep", "--arg", "seconds=0.4", "--id", "cli-sort-slow")
    quick = taskctl.submit_id("sleep", "--arg", "seconds=0", "--id", "cli-sort-quick", "--after", slow)
    assert taskctl("wait", quick).code == 0
    longest = taskctl("list", "--search", "cli-sort-", "--order-by", "duration desc", "--since", "1h", "--json")
    assert [json.loads(line)["taskId"] for line in longest.out.splitlines()] == [slow, quick], longest
    dependents = taskctl("list", "--depends-on", slow).out
    assert quick in dependents and slow not in dependents, dependents
    refused = taskctl("list", "--order-by", "size")
    assert refused.code == 8 and "order_by" in refused.err, refused


def test_retry_runs_a_failed_task_again_and_refuses_one_that_succeeded(taskctl: Taskctl) -> None:
    failed = taskctl.submit_id("demo", "--arg", "fail_rate=1", "--arg", "steps=1", "--arg", "step_seconds=0.01")
    assert taskctl("wait", failed).code == 3
    retried = taskctl("retry", failed, "--reason", "flaky disk")
    assert retried.code == 0 and retried.out.split() == [failed, "PENDING"], retried
    assert taskctl("wait", failed).code == 3
    assert json.loads(taskctl("get", failed, "--json").out)["attempt"] == 2
    assert "flaky disk" in taskctl("logs", failed).out
    fine = taskctl.submit_id("sleep", "--arg", "seconds=0")
    assert taskctl("wait", fine).code == 0
    refused = taskctl("retry", fine)
    assert refused.code == 8 and "FAILED_PRECONDITION" in refused.err, refused


def test_stop_tasks_stops_the_matches_and_wants_a_filter_or_all(taskctl: Taskctl) -> None:
    ids = [taskctl.submit_id("sleep", "--arg", "seconds=60", "--label", "run=cli-bulk") for _ in range(3)]
    stopped = taskctl("stop-tasks", "--label", "run=cli-bulk", "--reason", "bulk", "--json")
    assert stopped.code == 0, stopped
    counts = json.loads(stopped.out)
    assert int(counts["revoked"]) + int(counts["stopping"]) == 3, counts  # uint64: strings, as over HTTP
    for task_id in ids:
        assert taskctl("wait", task_id).code == 4
    refused = taskctl("stop-tasks")
    assert refused.code == 8 and "all=true" in refused.err, refused


def test_delete_and_delete_tasks_remove_ended_tasks_and_keep_unfinished_ones(taskctl: Taskctl) -> None:
    kept = taskctl.submit_id("sleep", "--arg", "seconds=0", "--retention", "0", "--label", "run=cli-del")
    assert taskctl("wait", kept).code == 0
    assert "for ever" in taskctl("get", kept).out
    assert taskctl("delete", kept).out.split() == [kept, "deleted"]
    assert taskctl("get", kept).code == 7
    done = [taskctl.submit_id("sleep", "--arg", "seconds=0", "--label", "run=cli-del") for _ in range(2)]
    for task_id in done:
        assert taskctl("wait", task_id).code == 0
    running = taskctl.submit_id("sleep", "--arg", "seconds=60", "--label", "run=cli-del")
    refused = taskctl("delete", running)
    assert refused.code == 8 and "stop it first" in refused.err, refused
    deleted = taskctl("delete-tasks", "--label", "run=cli-del", "--json")
    assert deleted.code == 0 and json.loads(deleted.out) == {"deleted": "2"}, deleted
    assert taskctl("get", running).code == 0, "an unfinished task is never deleted"
    taskctl("stop", running)
    assert taskctl("delete-tasks").code == 8, "no filter needs --all"


def test_submit_after_waits_for_a_task_and_is_revoked_when_it_is_stopped(taskctl: Taskctl) -> None:
    first = taskctl.submit_id("sleep", "--arg", "seconds=60")
    second = taskctl.submit_id("sleep", "--arg", "seconds=0", "--after", first)
    shown = taskctl("get", second)
    assert f"after      {first}" in shown.out or f"after {first}" in " ".join(shown.out.split()), shown
    assert "PENDING" in shown.out
    taskctl("stop", first)
    assert taskctl("wait", second).code == 4, "REVOKED"
    task = json.loads(taskctl("get", second, "--json").out)
    assert task["after"] == [first] and task["error"]["type"] == "DependencyFailed", task
    unknown = taskctl("submit", "sleep", "--arg", "seconds=0", "--after", "no-such-task")
    assert unknown.code == 8 and "after" in unknown.err, unknown


def test_schedule_commands_create_show_list_pause_resume_and_delete(taskctl: Taskctl) -> None:
    made = taskctl("schedule", "create", "cli-tick", "sleep", "--arg", "seconds=0", "--every", "1s", "--label", "a=b")
    assert made.code == 0 and made.out.startswith("cli-tick active next "), made
    again = taskctl("schedule", "create", "cli-tick", "sleep", "--arg", "seconds=0", "--every", "1s", "--label", "a=b")
    assert again.code == 0 and again.out.endswith("(already created)\n"), again
    other = taskctl("schedule", "create", "cli-tick", "sleep", "--arg", "seconds=0", "--every", "5s")
    assert other.code == 8 and "another definition" in other.err, other
    wait_until(lambda: "cli-tick:" in taskctl("list", "--label", "schedule=cli-tick").out, what="a firing")
    shown = taskctl("schedule", "get", "cli-tick")
    assert "every 1s" in shown.out and "last task  cli-tick:" in shown.out, shown
    assert taskctl("schedule", "pause", "cli-tick").out.startswith("cli-tick paused"), "paused"
    cron = taskctl("schedule", "create", "cli-cron", "sleep", "--arg", "seconds=0", "--cron", "0 9 * * 1-5",
                   "--time-zone", "Asia/Tokyo", "--catch-up", "skip", "--json")  # fmt: skip
    made = json.loads(cron.out)
    assert made["cron"]["timeZone"] == "Asia/Tokyo" and made["catchUp"] == "CATCH_UP_SKIP", cron
    listed = taskctl("schedule", "list").out.splitlines()
    assert listed[0].split()[:2] == ["SCHEDULE", "ID"] and [line.split()[0] for line in listed[1:]] == [
        "cli-cron",
        "cli-tick",
    ]
    assert "paused" in listed[2]
    assert taskctl("schedule", "resume", "cli-tick").out.startswith("cli-tick active"), "resumed"
    assert taskctl("schedule", "delete", "cli-tick").out.strip() == "cli-tick deleted"
    assert taskctl("schedule", "get", "cli-tick").code == 7, "NOT_FOUND"
    never = taskctl("schedule", "create", "never", "sleep", "--arg", "seconds=0", "--cron", "0 0 30 2 *")
    assert never.code == 8 and "never fires" in never.err, never
    assert taskctl("schedule", "create", "both", "sleep").code == 2, "--cron or --every is required"


def test_limit_commands_create_show_list_update_and_delete(taskctl: Taskctl) -> None:
    made = taskctl("limit", "create", "imports", "--type", "sleep", "--key", "customer", "--max-running", "3",
                   "--rate", "10/s")  # fmt: skip
    assert (
        made.code == 0
        and made.out.strip() == "imports: type sleep per customer: at most 3 running, at most 10/s starts"
    )
    again = taskctl("limit", "create", "imports", "--type", "sleep", "--key", "customer", "--max-running", "3",
                    "--rate", "10/s")  # fmt: skip
    assert again.code == 0 and again.out.endswith("(already created)\n"), again
    other = taskctl("limit", "create", "imports", "--max-running", "1")
    assert other.code == 8 and "another definition" in other.err, other
    updated = taskctl("limit", "update", "imports", "--label", "team=data", "--max-running", "5", "--json")
    assert json.loads(updated.out)["maxRunning"] == 5 and "rate" not in json.loads(updated.out), updated
    listed = taskctl("limit", "list").out.splitlines()
    assert listed[0].split()[:2] == ["LIMIT", "ID"] and listed[1].split()[:2] == ["imports", "team=data"], listed
    assert "at most 5 running" in taskctl("limit", "get", "imports").out
    assert taskctl("limit", "delete", "imports").out.strip() == "imports deleted"
    assert taskctl("limit", "get", "imports").code == 7, "NOT_FOUND"
    bad = taskctl("limit", "create", "bad", "--rate", "often")
    assert bad.code == 2 and "COUNT/PERIOD" in bad.err, bad
    refused = taskctl("limit", "create", "bad", "--max-running", "-1")
    assert "limit.max_running" in refused.err and refused.code != 0, refused


def test_types_lists_the_task_types_with_their_args(taskctl: Taskctl) -> None:
    shown = taskctl("types")
    assert shown.code == 0, shown
    lines = shown.out.splitlines()
    assert 'file.checksum  input_fpath*:input algorithm:string=sha256|md5|blake2b(="sha256")' in lines, shown.out
    assert "sleep  seconds*:number" in lines
    assert any(line.startswith("demo  steps:integer(=") for line in lines), "defaults are shown"
    assert "      level: 1 (fastest) to 9 (smallest)." in lines, "what the handler's docstring says of an arg"
    listed = [json.loads(line) for line in taskctl("types", "--json").out.splitlines()]
    compress = next(t for t in listed if t["name"] == "file.compress")
    assert {a["name"]: a["rule"] for a in compress["args"]}["level"] == "from 1 to 9"
    assert {a["name"]: a.get("description") for a in compress["args"]}["level"] == "1 (fastest) to 9 (smallest)."


def test_an_id_starting_with_a_dash_needs_no_double_dash(taskctl: Taskctl) -> None:
    # Server-made ids are URL-safe base64 and may start with '-' too.
    submitted = taskctl("submit", "sleep", "--arg", "seconds=0.01", "--id=-dash-first")
    assert submitted.code == 0, submitted
    for args in (["get", "-dash-first"], ["get", "-dash-first", "--json"], ["watch", "-dash-first"]):
        run = taskctl(*args)
        assert run.code == 0, run
        assert "-dash-first" in run.out


def test_time_limit_exits_5(taskctl: Taskctl) -> None:
    run = taskctl("submit", "sleep", "--arg", "seconds=60", "--time-limit", "300ms", "--watch")
    assert run.code == 5, run
    assert "TIMED_OUT: TimeLimitExceeded" in run.out.splitlines()[-1]


def test_lost_task_exits_6(server_process: ServerProcess, taskctl: Taskctl) -> None:
    task_id = taskctl.submit_id("sleep", "--arg", "seconds=60")
    wait_until(lambda: taskctl.state(task_id) == "RUNNING", what="the sleep to run")
    wait_until(lambda: server_process.committed(task_id) == ("RUNNING", 1), what="RUNNING on disk")
    server_process.kill()
    server_process.restart()
    run = taskctl("watch", task_id)
    assert run.code == 6, run
    assert run.out.splitlines()[-1].startswith(f"task {task_id} LOST: ServerRestarted"), run


@pytest.mark.parametrize("command", ["get", "stop", "retry", "delete", "watch", "wait"])
def test_unknown_id_exits_7(taskctl: Taskctl, command: str) -> None:
    run = taskctl(command, "no-such-task")
    assert run.code == 7, run
    _one_error_line(run, "NOT_FOUND: ")


def test_bad_args_exit_8_with_one_clear_line(taskctl: Taskctl) -> None:
    run = taskctl("submit", "demo", "--arg", "steps=10.5")
    assert run.code == 8, run
    line = _one_error_line(run, "INVALID_ARGUMENT: ")
    assert "args.steps" in line and "10.5" in line
    run = taskctl("submit", "no-such-type")
    assert run.code == 8, run
    assert "no-such-type" in _one_error_line(run, "INVALID_ARGUMENT: ")


def test_same_id_different_request_exits_8(taskctl: Taskctl) -> None:
    assert taskctl("submit", "sleep", "--arg", "seconds=0.01", "--id", "cli-fixed").code == 0
    again = taskctl("submit", "sleep", "--arg", "seconds=0.01", "--id", "cli-fixed")
    assert again.code == 0, again
    assert again.out.strip().endswith("(already submitted)")
    other = taskctl("submit", "sleep", "--arg", "seconds=5", "--id", "cli-fixed")
    assert other.code == 8, other
    _one_error_line(other, "ALREADY_EXISTS: ")


def test_unreachable_server_exits_9() -> None:
    address = f"127.0.0.1:{_closed_port()}"
    for args in (["get", "x"], ["submit", "demo"], ["list"], ["watch", "x"]):
        run = Taskctl(address)("--timeout", "5s", *args)
        assert run.code == 9, run
        assert address in _one_error_line(run, f"server {address} unavailable: UNAVAILABLE")


def test_server_from_the_environment(server_process: ServerProcess) -> None:
    run = Taskctl(None)("list", env={"TASKSERVICE_ADDR": server_process.address})
    assert run.code == 0, run
    unreachable = Taskctl(None)("list", env={"TASKSERVICE_ADDR": f"127.0.0.1:{_closed_port()}"})
    assert unreachable.code == 9, unreachable


def test_json_output(taskctl: Taskctl) -> None:
    submitted = taskctl("--json", "submit", "demo", *FAST_DEMO, "--watch")
    assert submitted.code == 0, submitted
    first, *events = submitted.json_lines()
    # As POST /v1/tasks answers, and each event as the data of GET /v1/tasks/{id}/events.
    assert first["created"] is True and first["task"]["taskType"] == "demo"
    task_id = first["task"]["taskId"]
    assert events, "one JSON object per event"
    assert all(e["taskId"] == task_id for e in events)
    assert [int(e["sequence"]) for e in events] == sorted(int(e["sequence"]) for e in events)
    assert events[-1]["state"] == "TASK_STATE_SUCCESS" and events[-1]["task"]["result"] is not None
    # Global options may also follow the command.
    got = taskctl("get", task_id, "--json")
    assert got.code == 0, got
    (task,) = got.json_lines()
    assert task["state"] == "TASK_STATE_SUCCESS"
    assert task["args"] == {"steps": 3, "step_seconds": 0.02}
    assert task["endedAt"].endswith("Z")
    assert task["progress"]["percent"] == 100.0
    (stopped,) = taskctl("--json", "stop", task_id).json_lines()
    assert stopped["state"] == "TASK_STATE_SUCCESS"


def test_json_is_what_the_http_api_answers(taskctl: Taskctl, server_process: ServerProcess) -> None:
    """Scripts move between taskctl --json and curl: the same objects, field for field."""

    def http(path: str) -> Any:
        with urllib.request.urlopen(server_process.http_url + path, timeout=10) as answer:
            return json.load(answer)

    task_id = taskctl.submit_id("demo", *FAST_DEMO, "--label", "team=json")
    assert taskctl("wait", task_id).code == 0
    assert taskctl("--json", "get", task_id).json_lines() == [http(f"/v1/tasks/{task_id}")["task"]]
    assert (
        taskctl("--json", "list", "--label", "team=json").json_lines() == http("/v1/tasks?labels[team]=json")["tasks"]
    )
    assert taskctl("--json", "types").json_lines() == http("/v1/taskTypes")["taskTypes"]
    made = taskctl("--json", "schedule", "create", "json-tick", "sleep", "--arg", "seconds=0", "--every", "1h")
    assert made.json_lines() == [http("/v1/schedules/json-tick")["schedule"]]
    taskctl("schedule", "delete", "json-tick")
    limit = taskctl("--json", "limit", "create", "json-limit", "--type", "sleep", "--max-running", "2")
    assert limit.json_lines() == [http("/v1/limits/json-limit")["limit"]]
    taskctl("limit", "delete", "json-limit")


def test_list_filters(taskctl: Taskctl) -> None:
    ok = taskctl.submit_id("demo", *FAST_DEMO, "--label", "kind=ok")
    failed = taskctl.submit_id("demo", "--arg", "fail_rate=1", "--label", "kind=bad")
    slept = taskctl.submit_id("sleep", "--arg", "seconds=0.01", "--label", "kind=ok")
    for task_id in (ok, failed, slept):
        wait_until(lambda t=task_id: taskctl.state(t) in {"SUCCESS", "FAILURE"}, what=f"{task_id} to end")

    def listed(*args: str) -> list[str]:
        run = taskctl("--json", "list", *args)
        assert run.code == 0, run
        return [t["taskId"] for t in run.json_lines()]

    assert listed() == [slept, failed, ok]  # newest first
    assert listed("--state", "FAILURE") == [failed]
    assert listed("--state", "success") == [slept, ok]
    assert listed("--state", "SUCCESS,FAILURE") == [slept, failed, ok]
    assert listed("--state", "RUNNING", "--state", "PENDING") == []
    assert listed("--type", "sleep") == [slept]
    assert listed("--label", "kind=ok") == [slept, ok]
    assert listed("--label", "kind=ok", "--type", "demo") == [ok]
    # The human table, with a hint on stderr when --limit cuts it.
    run = taskctl("list", "--limit", "2")
    assert run.code == 0, run
    header, *rows = run.out.splitlines()
    assert header.split()[:3] == ["TASK", "ID", "TYPE"]
    assert [row.split()[0] for row in rows] == [slept, failed]
    assert "--all" in run.err
    assert [row.split()[0] for row in taskctl("list", "--all").out.splitlines()[1:]] == [slept, failed, ok]
    assert taskctl("list", "--state", "REVOKED").out.strip() == "no tasks"


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["submit"],
        ["submit", "demo", "--arg", "no-equals-sign"],
        ["submit", "demo", "--time-limit", "5 parsecs"],
        ["list", "--state", "SLEEPING"],
        ["list", "--limit", "zero"],
    ],
)
def test_usage_errors_exit_2(taskctl: Taskctl, args: list[str]) -> None:
    run = taskctl(*args)
    assert run.code == 2, run
    assert run.err.strip(), run


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["submit", "demo", "--args-json", "[1, 2]"], "taskctl: --args-json must be a JSON object"),
        (["submit", "demo", "--args-json", "{nope"], "taskctl: --args-json is not valid JSON"),
        (["list", "--limit", "0"], "taskctl: --limit must be at least 1"),
    ],
)
def test_usage_errors_found_after_parsing_exit_2_with_one_line(taskctl: Taskctl, args: list[str], message: str) -> None:
    run = taskctl(*args)
    assert run.code == 2, run
    assert _one_error_line(run, "").startswith(message)
