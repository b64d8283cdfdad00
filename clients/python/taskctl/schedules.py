"""`taskctl schedule ...`: create, list, show, pause, resume and delete schedules."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from taskctl.commands import UsageError
from taskctl.exitcodes import ExitCode
from taskctl.output import Output, aligned, compact_json, format_duration, format_time, wire_json
from taskctl.parsing import build_args, build_labels
from taskservice.client import Schedule, TaskClient

AddCommand = Callable[[str, Callable[..., ExitCode], str], argparse.ArgumentParser]


def add_commands(command: AddCommand, duration: Callable[[str], float], key_value: Callable[[str], str]) -> None:
    """The `schedule` commands, made with the parser's `command(name, func, help)`."""
    p = command("create", create, "submit a task on a cron expression or at an interval, under ids ID:<due time>")
    p.add_argument("schedule_id", metavar="ID", help="1-100 of [A-Za-z0-9._:-]")
    p.add_argument("task_type", metavar="TYPE", help="registered task type, e.g. demo")
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", metavar="EXPR", help="'30 2 * * *': five fields, or six with seconds last")
    when.add_argument("--every", type=duration, metavar="DURATION", help="a fixed interval, e.g. 15m (at least 1s)")
    p.add_argument("--time-zone", default="", metavar="ZONE", help="of --cron, e.g. Europe/Paris (default: UTC)")
    p.add_argument(
        "--catch-up",
        choices=("skip", "once", "all"),
        default="once",
        help="after downtime: submit none of the missed due times, the latest once (default), or each",
    )
    p.add_argument("--paused", action="store_true", help="create it paused (resume it to start)")
    p.add_argument("--arg", action="append", default=[], type=key_value, metavar="KEY=VALUE", help="a task argument")
    p.add_argument("--args-json", metavar="JSON", help="task arguments as a JSON object; --arg values win")
    p.add_argument("--time-limit", type=duration, metavar="DURATION", help="of each task, e.g. 30m")
    p.add_argument("--priority", type=int, default=0, help="of each task (default: 0)")
    p.add_argument("--label", action="append", default=[], type=key_value, metavar="KEY=VALUE", help="a label")
    p.add_argument("--retention", type=duration, metavar="DURATION", help="keep each task this long once ended")
    for name, func, text in (
        ("get", get, "show a schedule: when it fires, its next and last firing"),
        ("pause", pause, "stop firing until resumed"),
        ("resume", resume, "fire again from the next due time after now"),
        ("delete", delete, "delete a schedule (the tasks it submitted stay)"),
    ):
        command(name, func, text).add_argument("schedule_id", metavar="ID")
    command("list", list_schedules, "list schedules in id order")


def create(client: TaskClient, ns: argparse.Namespace, output: Output) -> ExitCode:
    try:
        args = build_args(ns.args_json, ns.arg)
        labels = build_labels(ns.label)
    except ValueError as err:
        raise UsageError(str(err)) from None
    result = client.create_schedule(
        ns.schedule_id, ns.task_type, args, cron=ns.cron or "", time_zone=ns.time_zone, interval=ns.every,
        catch_up=ns.catch_up, paused=ns.paused, time_limit=ns.time_limit, priority=ns.priority, labels=labels,
        retention=ns.retention,
    )  # fmt: skip
    return _show(result.schedule, output, _state_line(result.schedule, "" if result.created else " (already created)"))


def get(client: TaskClient, ns: argparse.Namespace, output: Output) -> ExitCode:
    schedule = client.get_schedule(ns.schedule_id)
    return _show(schedule, output, format_schedule(schedule))


def pause(client: TaskClient, ns: argparse.Namespace, output: Output) -> ExitCode:
    schedule = client.pause_schedule(ns.schedule_id)
    return _show(schedule, output, _state_line(schedule))


def resume(client: TaskClient, ns: argparse.Namespace, output: Output) -> ExitCode:
    schedule = client.resume_schedule(ns.schedule_id)
    return _show(schedule, output, _state_line(schedule))


def delete(client: TaskClient, ns: argparse.Namespace, output: Output) -> ExitCode:
    schedule = client.delete_schedule(ns.schedule_id)
    return _show(schedule, output, f"{schedule.schedule_id} deleted")


def list_schedules(client: TaskClient, ns: argparse.Namespace, output: Output) -> ExitCode:
    schedules = list(client.iter_schedules())
    if output.json:
        for schedule in schedules:
            output.json_line(schedule_to_json(schedule))
        return ExitCode.OK
    header = ("SCHEDULE ID", "WHEN", "TYPE", "STATE", "NEXT DUE", "LAST TASK")
    rows = [
        (s.schedule_id, _when(s), s.task_type, "paused" if s.paused else "active", format_time(s.next_due),
         s.last_task_id or "-")
        for s in schedules
    ]  # fmt: skip
    output.text(aligned(header, rows))
    return ExitCode.OK


def _show(schedule: Schedule, output: Output, text: str) -> ExitCode:
    """The schedule as a JSON line with --json, else `text`."""
    if output.json:
        output.json_line(schedule_to_json(schedule))
    else:
        output.text(text)
    return ExitCode.OK


def _state_line(schedule: Schedule, note: str = "") -> str:
    """`<id> <active|paused> next <due time>`."""
    state = "paused" if schedule.paused else "active"
    return f"{schedule.schedule_id} {state} next {format_time(schedule.next_due)}{note}"


def _when(schedule: Schedule) -> str:
    if schedule.interval is not None:
        return f"every {format_duration(schedule.interval)}"
    return f"{schedule.cron} ({schedule.time_zone or 'UTC'})"


def schedule_to_json(schedule: Schedule) -> dict[str, Any]:
    """A schedule, as the HTTP API gives it."""
    return wire_json(schedule)


def format_schedule(schedule: Schedule) -> str:
    """The multi-line view of `taskctl schedule get`."""
    rows = [
        ("schedule", schedule.schedule_id),
        ("when", _when(schedule)),
        ("catch up", schedule.catch_up),
        ("state", "paused" if schedule.paused else "active"),
        ("task", f"{schedule.task_type} {compact_json(schedule.args)}"),
        *([("labels", ", ".join(f"{k}={v}" for k, v in sorted(schedule.labels.items())))] if schedule.labels else []),
        ("next due", format_time(schedule.next_due)),
        ("last due", format_time(schedule.last_due)),
        ("last task", schedule.last_task_id or "-"),
        *([("last error", schedule.last_error)] if schedule.last_error else []),
        ("created", format_time(schedule.created_at)),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
