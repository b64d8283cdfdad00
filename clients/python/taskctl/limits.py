"""`taskctl limit ...`: create, list, show, update and delete limits."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from taskctl.commands import UsageError
from taskctl.exitcodes import ExitCode
from taskctl.output import Output, aligned, format_duration, wire_json
from taskctl.parsing import build_labels
from taskservice.client import Limit, TaskClient, parse_rate

AddCommand = Callable[[str, Callable[..., ExitCode], str], argparse.ArgumentParser]


def add_commands(command: AddCommand, key_value: Callable[[str], str]) -> None:
    """The `limit` commands, made with the parser's `command(name, func, help)`."""
    for name, func, text in (
        ("create", create, "cap how many tasks of a kind run at once, or how often they start, per group"),
        ("update", update, "replace a limit's whole definition (in force from the next claim)"),
    ):
        p = command(name, func, text)
        p.add_argument("limit_id", metavar="ID", help="1-100 of [A-Za-z0-9._:-]")
        p.add_argument("--type", dest="task_type", default="", metavar="TYPE", help="only tasks of this type")
        p.add_argument("--label", action="append", default=[], type=key_value, metavar="KEY=VALUE",
                       help="only tasks carrying this label (repeat for several)")  # fmt: skip
        p.add_argument("--key", dest="key_label", default="", metavar="LABEL",
                       help="the label whose value makes the groups, e.g. customer (default: one group)")  # fmt: skip
        p.add_argument("--max-running", type=int, default=0, metavar="N", help="at most N running per group")
        p.add_argument("--rate", default=None, metavar="COUNT/PERIOD", help="at most COUNT starts per PERIOD per "
                       "group, e.g. 10/s, 100/m, 5/30s")  # fmt: skip
        p.add_argument("--burst", type=int, default=0, metavar="N", help="starts at once after a quiet spell "
                       "(default: 1, evenly spaced)")  # fmt: skip
        p.add_argument("--on-full", choices=("queue", "refuse-newest", "stop-oldest"), default="queue",
                       help="when a group is full: queue (default), refuse Submits past --max-waiting, or stop "
                       "the group's oldest")  # fmt: skip
        p.add_argument("--max-waiting", type=int, default=0, metavar="N", help="with refuse-newest: how many may "
                       "wait beyond --max-running")  # fmt: skip
        p.add_argument("--weight", action="append", default=[], type=key_value, metavar="VALUE=W",
                       help="a group's share of turns (default 1)")  # fmt: skip
    for name, func, text in (
        ("get", get, "show a limit"),
        ("delete", delete, "delete a limit (what it held back may start)"),
    ):
        command(name, func, text).add_argument("limit_id", metavar="ID")
    command("list", list_limits, "list limits in id order")


def _definition(ns: argparse.Namespace) -> dict[str, Any]:
    try:
        labels = build_labels(ns.label)
        weights = {group: float(weight) for group, weight in build_labels(ns.weight).items()}
        if ns.rate is not None:
            parse_rate(ns.rate)
    except ValueError as err:
        raise UsageError(str(err)) from None
    return {"task_type": ns.task_type, "labels": labels, "key_label": ns.key_label, "max_running": ns.max_running,
            "rate": ns.rate, "burst": ns.burst, "on_full": ns.on_full.replace("-", "_"),
            "max_waiting": ns.max_waiting, "weights": weights}  # fmt: skip


def create(client: TaskClient, ns: argparse.Namespace, output: Output) -> ExitCode:
    result = client.create_limit(ns.limit_id, **_definition(ns))
    return _show(result.limit, output, format_limit(result.limit) + ("" if result.created else " (already created)"))


def update(client: TaskClient, ns: argparse.Namespace, output: Output) -> ExitCode:
    limit = client.update_limit(ns.limit_id, **_definition(ns))
    return _show(limit, output, format_limit(limit))


def get(client: TaskClient, ns: argparse.Namespace, output: Output) -> ExitCode:
    limit = client.get_limit(ns.limit_id)
    return _show(limit, output, format_limit(limit))


def delete(client: TaskClient, ns: argparse.Namespace, output: Output) -> ExitCode:
    limit = client.delete_limit(ns.limit_id)
    return _show(limit, output, f"{limit.limit_id} deleted")


def list_limits(client: TaskClient, ns: argparse.Namespace, output: Output) -> ExitCode:
    limits = list(client.iter_limits())
    if output.json:
        for limit in limits:
            output.json_line(limit_to_json(limit))
        return ExitCode.OK
    header = ("LIMIT ID", "COVERS", "GROUPS BY", "MAX RUNNING", "RATE", "ON FULL")
    rows = [
        (lim.limit_id, _covers(lim), lim.key_label or "-", str(lim.max_running or "-"), _rate(lim),
         lim.on_full.lower().replace("_", "-"))
        for lim in limits
    ]  # fmt: skip
    output.text(aligned(header, rows))
    return ExitCode.OK


def format_limit(limit: Limit) -> str:
    """`<id>: <what it covers>, per <key>: at most N running, R; on full: ...`."""
    parts = [f"at most {limit.max_running} running"] if limit.max_running else []
    if limit.rate is not None:
        parts.append(f"at most {_rate(limit)} starts")
    per = f" per {limit.key_label}" if limit.key_label else ""
    on_full = f"; when full: {limit.on_full.lower().replace('_', '-')}" if limit.on_full != "QUEUE" else ""
    return f"{limit.limit_id}: {_covers(limit)}{per}: {', '.join(parts)}{on_full}"


def _covers(limit: Limit) -> str:
    scope = [f"type {limit.task_type}"] if limit.task_type else []
    scope += [f"{key}={value}" for key, value in sorted(limit.labels.items())]
    return " ".join(scope) or "every task"


def _rate(limit: Limit) -> str:
    if limit.rate is None:
        return "-"
    count, period, burst = limit.rate
    unit = {1.0: "s", 60.0: "m", 3600.0: "h", 86400.0: "d"}.get(period) or format_duration(period)
    return f"{count}/{unit}" + (f" (burst {burst})" if burst > 1 else "")


def _show(limit: Limit, output: Output, text: str) -> ExitCode:
    """The limit as a JSON line with --json, else `text`."""
    if output.json:
        output.json_line(limit_to_json(limit))
    else:
        output.text(text)
    return ExitCode.OK


def limit_to_json(limit: Limit) -> dict[str, Any]:
    """A limit, as the HTTP API gives it."""
    return wire_json(limit)
