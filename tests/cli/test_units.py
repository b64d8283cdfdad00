"""taskctl's pieces in-process: parsing, exit codes, rendering, the command line (no server)."""

from __future__ import annotations

import dataclasses
import io
import json
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from rich.console import Console
from taskctl import cli
from taskctl.exitcodes import ExitCode, describe_all, for_error, for_state
from taskctl.output import (
    BarWatchView,
    LineWatchView,
    Output,
    format_duration,
    format_final,
    format_progress,
    format_table,
    format_task,
    format_time,
    task_to_json,
    watch_view,
)
from taskctl.parsing import build_args, build_labels, parse_arg_value, parse_duration, split_key_value

from taskservice import client as c
from taskservice.client import Progress, Task, TaskError, TaskEvent, TaskState

# -- parsing -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        ("1.5", 1.5),
        ("250ms", 0.25),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("2d", 172800.0),
        ("1h30m", 5400.0),
        ("1m30s500ms", 90.5),
        (" 10S ", 10.0),
        (".5s", 0.5),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "5x", "-5s", "5 s", "1h-30m", "ms", "1.2.3s", "30s5", "inf"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("20", 20),
        ("1.5", 1.5),
        ("true", True),
        ("null", None),
        ("abc", "abc"),
        ('"20"', "20"),
        ("[1, 2]", [1, 2]),
        ('{"a": 1}', {"a": 1}),
        ("", ""),
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
    ],
)
def test_parse_arg_value(text: str, value: object) -> None:
    assert parse_arg_value(text) == value


def test_split_key_value() -> None:
    assert split_key_value("a=b=c") == ("a", "b=c")
    assert split_key_value("a=") == ("a", "")
    for bad in ("novalue", "=x", " =x"):
        with pytest.raises(ValueError, match="KEY=VALUE"):
            split_key_value(bad)


def test_build_args_merges_arg_over_args_json() -> None:
    args = build_args('{"steps": 1, "seed": 7, "name": "x"}', ["steps=20", "flag=true", "name=abc"])
    assert args == {"steps": 20, "seed": 7, "flag": True, "name": "abc"}
    assert build_args(None, []) == {}
    with pytest.raises(ValueError, match="JSON object"):
        build_args("[1]", [])
    with pytest.raises(ValueError, match="not valid JSON"):
        build_args("{", [])


def test_arg_str_keeps_its_value_a_string_and_args_apply_in_order() -> None:
    from taskctl.cli import build_parser

    ns = build_parser().parse_args(
        ["submit", "command", "--arg", "name=tag", "--arg-str", "tag=2024", "--arg", "level=9", "--arg-str", "n=1"]
    )
    assert build_args(None, ns.arg) == {"name": "tag", "tag": "2024", "level": 9, "n": "1"}
    ns = build_parser().parse_args(["submit", "demo", "--arg-str", "x=1", "--arg", "x=2"])
    assert build_args(None, ns.arg) == {"x": 2}, "the last one wins"


def test_build_labels_keeps_strings() -> None:
    assert build_labels(["team=a", "n=1"]) == {"team": "a", "n": "1"}


# -- exit codes --------------------------------------------------------------------------------------


def test_exit_code_table() -> None:
    assert {code.name: int(code) for code in ExitCode} == {
        "OK": 0,
        "USAGE": 2,
        "FAILURE": 3,
        "REVOKED": 4,
        "TIMED_OUT": 5,
        "LOST": 6,
        "NOT_FOUND": 7,
        "REJECTED": 8,
        "RPC_ERROR": 9,
        "NOT_DONE": 10,
        "INTERRUPTED": 130,
    }
    assert all(code.meaning for code in ExitCode)
    assert describe_all().count("\n") == len(ExitCode) - 1


@pytest.mark.parametrize(
    ("state", "code"),
    [
        (TaskState.SUCCESS, 0),
        (TaskState.FAILURE, 3),
        (TaskState.REVOKED, 4),
        (TaskState.TIMED_OUT, 5),
        (TaskState.LOST, 6),
        (TaskState.RUNNING, 9),
    ],
)
def test_exit_code_for_state(state: TaskState, code: int) -> None:
    assert for_state(state) == code


@pytest.mark.parametrize(
    ("err", "code"),
    [
        (c.TaskNotFound("x"), 7),
        (c.InvalidArgument("x"), 8),
        (c.AlreadyExists("x"), 8),
        (c.QueueFull("x"), 8),
        (c.OutOfRange("x"), 8),
        (c.TaskServiceError("x", code=grpc.StatusCode.FAILED_PRECONDITION), 8),
        (c.Unavailable("x"), 9),
        (c.DeadlineExceeded("x"), 9),
        (c.TaskServiceError("x", code=grpc.StatusCode.INTERNAL), 9),
        (c.TaskServiceError("x"), 9),
    ],
)
def test_exit_code_for_error(err: c.TaskServiceError, code: int) -> None:
    assert for_error(err) == code


# -- rendering ---------------------------------------------------------------------------------------

T0 = datetime(2026, 11, 25, 9, 49, 11, 123456, tzinfo=UTC)


def _task(**changes: object) -> Task:
    base: dict[str, object] = {
        "task_id": "abc",
        "task_type": "demo",
        "args": {"steps": 10},
        "state": TaskState.RUNNING,
        "progress": Progress(40.0, "step 4/10", 4, 10, T0),
        "submitted_at": T0,
        "started_at": T0,
        "time_limit": 30.0,
        "labels": {"team": "a"},
        "attempt": 1,
    }
    base.update(changes)
    return Task(**base)  # type: ignore[arg-type]


def test_format_time_and_duration() -> None:
    assert format_time(T0) == "2026-11-25T09:49:11.123Z"
    assert format_time(None) == "-"
    assert [format_duration(s) for s in (None, 0.25, 1.5, 30, 90, 3600, 5400, 3661)] == [
        "-",
        "250ms",
        "1.5s",
        "30s",
        "1m30s",
        "1h",
        "1h30m",
        "1h1m1s",
    ]


def test_format_progress() -> None:
    assert format_progress(Progress(40.0, "copying", 4096, 10240)) == "40% copying (4096/10240)"
    assert format_progress(Progress(40.0, "step 4/10", 4, 10)) == "40% step 4/10"
    assert format_progress(Progress(40.0, "", 4, 10)) == "40% (4/10)"
    assert format_progress(Progress()) == "0%"


def test_format_task_shows_the_fields_a_person_needs() -> None:
    text = format_task(_task())
    rows = dict(line.split(None, 1) for line in text.splitlines() if not line.startswith(("time limit", "ran for")))
    assert rows["task"] == "abc"
    assert rows["state"] == "RUNNING"
    assert rows["progress"] == "40% step 4/10"
    assert json.loads(rows["args"]) == {"steps": 10}
    assert rows["labels"] == "team=a"
    assert rows["ended"] == "-"
    assert "time limit  30s" in text
    assert "result" not in rows and "error" not in rows


def test_format_task_names_a_childs_parent_and_list_filters_by_it() -> None:
    from taskctl.cli import build_parser

    rows = format_task(dataclasses.replace(_task(), parent_id="p-1", detached=True)).splitlines()
    assert "parent      p-1 (detached)" in rows
    assert not any(line.startswith("parent") for line in format_task(_task()).splitlines())
    assert build_parser().parse_args(["list", "--parent", "p-1"]).parent == "p-1"


def test_format_task_with_error_and_traceback() -> None:
    error = TaskError("RuntimeError", "boom", "Traceback (most recent call last):\n  ...\nRuntimeError: boom\n")
    text = format_task(_task(state=TaskState.FAILURE, error=error, ended_at=T0))
    assert "error       RuntimeError: boom" in text
    assert text.endswith("RuntimeError: boom")
    assert "ran for     0ms" in text


def test_format_final() -> None:
    assert format_final(_task(state=TaskState.SUCCESS, result={"steps": 10})) == 'task abc SUCCESS result={"steps": 10}'
    revoked = _task(state=TaskState.REVOKED, error=TaskError("Revoked", "stopped: done"))
    assert format_final(revoked) == "task abc REVOKED: Revoked: stopped: done"
    assert format_final(_task(state=TaskState.SUCCESS)) == "task abc SUCCESS"


def test_format_table_never_truncates_ids() -> None:
    long_id = "x" * 100
    lines = format_table([_task(task_id=long_id), _task(task_id="short", labels={})]).splitlines()
    assert lines[0].split() == ["TASK", "ID", "TYPE", "STATE", "PROGRESS", "SUBMITTED", "LABELS"]
    assert lines[1].split()[0] == long_id
    assert lines[2].split() == ["short", "demo", "RUNNING", "40%", "2026-11-25T09:49:11.123Z"]


def test_format_table_shows_when_delayed_tasks_are_to_run() -> None:
    later = T0 + timedelta(minutes=10)
    lines = format_table([_task(state=TaskState.PENDING, scheduled_at=later), _task(task_id="now")]).splitlines()
    assert lines[0].split() == ["TASK", "ID", "TYPE", "STATE", "PROGRESS", "SUBMITTED", "SCHEDULED", "LABELS"]
    assert lines[1].split()[5] == "2026-11-25T09:59:11.123Z"
    assert lines[2].split()[5] == "team=a", "a task to run at once has no scheduled time"


def test_json_of_a_task_made_here_refuses_rather_than_inventing_a_form() -> None:
    with pytest.raises(ValueError, match="not read from a server"):
        task_to_json(_task())


def _events() -> list[TaskEvent]:
    return [
        TaskEvent("abc", 1, TaskState.RUNNING, Progress(0.0), T0, _task()),
        TaskEvent("abc", 2, TaskState.RUNNING, Progress(50.0, "half", 5, 10), T0),
        TaskEvent("abc", 3, TaskState.SUCCESS, Progress(100.0), T0, _task(state=TaskState.SUCCESS, result=1)),
    ]


def test_line_watch_view() -> None:
    out = io.StringIO()
    view = LineWatchView(Output(out=out))
    for event in _events():
        view.event(event)
    view.finish(_events()[-1].task)
    lines = out.getvalue().splitlines()
    assert lines[1] == "2026-11-25T09:49:11.123Z #2 RUNNING   50% half (5/10)"
    assert lines[0] == "2026-11-25T09:49:11.123Z #1 RUNNING   0%"
    assert lines[-1] == "task abc SUCCESS result=1"
    assert len(lines) == 4


def test_bar_watch_view_draws_a_progress_bar_on_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system=None)
    view = BarWatchView(Output(out=out), "abc", console=console)
    for event in _events():
        view.event(event)
    view.finish(_events()[-1].task)
    text = out.getvalue()
    assert "SUCCESS" in text and "100%" in text
    assert "━" in text, "a bar was drawn"
    assert text.rstrip().endswith("task abc SUCCESS result=1")


def test_watch_view_choice() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert type(watch_view(Output(json=True, out=Tty()), "t")).__name__ == "JsonWatchView"
    assert type(watch_view(Output(out=io.StringIO()), "t")) is LineWatchView
    bar = watch_view(Output(out=Tty()), "t")
    assert type(bar) is BarWatchView
    bar.finish(None)


# -- command line ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["get", "-abc"], ["get", "--", "-abc"]),
        (["get", "-abc", "--json"], ["get", "--json", "--", "-abc"]),
        (["--server", "h:1", "--json", "watch", "-x"], ["--server", "h:1", "--json", "watch", "--", "-x"]),
        (["stop", "--reason", "why", "-abc"], ["stop", "--reason", "why", "--", "-abc"]),
        (["stop", "--reason=why", "-abc"], ["stop", "--reason=why", "--", "-abc"]),
        (["get", "--timeout", "5s", "abc"], ["get", "--timeout", "5s", "abc"]),
        (["get", "--", "-abc"], ["get", "--", "-abc"]),
        (["list", "--state", "RUNNING"], ["list", "--state", "RUNNING"]),
        (["submit", "demo", "--arg", "x=-1"], ["submit", "demo", "--arg", "x=-1"]),
    ],
)
def test_ids_starting_with_a_dash(argv: list[str], expected: list[str]) -> None:
    assert cli._dash_id_last(argv) == expected


def test_global_options_before_or_after_the_command() -> None:
    parser = cli.build_parser()
    before = parser.parse_args(["--json", "--server", "h:1", "--timeout", "5s", "get", "x"])
    after = parser.parse_args(["get", "x", "--json", "--server", "h:1", "--timeout", "5s"])
    for ns in (before, after):
        assert (ns.json, ns.server, ns.timeout, ns.task_id) == (True, "h:1", 5.0, "x")
    plain = parser.parse_args(["get", "x"])
    assert (plain.json, plain.server, plain.timeout) == (False, None, None)  # None: 30 s, and wait until the end


def test_list_states_parse_in_any_case_and_comma_separated() -> None:
    ns = cli.build_parser().parse_args(["list", "--state", "running,pending", "--state", "LOST"])
    assert ns.state == [TaskState.RUNNING, TaskState.PENDING, TaskState.LOST]


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["submit", "demo", "--time-limit", "soon"])
    assert info.value.code == 2
    assert "invalid duration 'soon'" in capsys.readouterr().err


def test_help_lists_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "exit codes:" in out and "task not found" in out
