"""The taskctl commands: each takes the client, the parsed options and the output, returns an exit code."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta

from taskctl.exitcodes import ExitCode, for_state
from taskctl.output import (
    Output,
    format_submit,
    format_table,
    format_task,
    format_time,
    status_json,
    submit_to_json,
    task_to_json,
    watch_view,
    wire_json,
)
from taskctl.parsing import batch_line, build_args, build_labels
from taskservice.client import DeadlineExceeded, Task, TaskArgInfo, TaskClient, TaskServiceError, submit_request


class UsageError(Exception):
    """A command line that parsed but makes no sense (exit 2)."""


def submit(client: TaskClient, ns: argparse.Namespace, output: Output) -> ExitCode:
    if ns.from_file is not None:
        return submit_file(client, ns, output)
    if ns.task_type is None:
        raise UsageError("submit needs a TYPE, or --from-file")
    try:
        args = build_args(ns.args_json, ns.arg)
        labels = build_labels(ns.label)
    except ValueError as err:
        raise UsageError(str(err)) from None
    result = client.submit(
        ns.task_type,
        args,
        task_id=ns.id,
        time_limit=ns.time_limit,
        priority=ns.priority,
        labels=labels,
        not_before=ns.not_before,
        delay=ns.delay,
        retention=ns.retention,
        after=ns.after,
    )
    if output.json:
        output.json_line(submit_to_json(result))
    else:
        output.text(format_submit(result))
    if ns.watch:
        return follow(client, result.task.task_id, output)
    return ExitCode.OK


def submit_file(client: TaskClient, ns: argparse.Namespace, output: Output) -> ExitCode:
    """Every task of a JSON Lines file through SubmitBatch; a line per task; exit 8 if any was refused."""
    if ns.task_type is not None or ns.arg or ns.args_json or ns.id or ns.watch:
        raise UsageError("--from-file takes its tasks from the file: no TYPE, --arg, --args-json, --id or --watch")
    try:
        with sys.stdin if ns.from_file == "-" else open(ns.from_file) as source:
            lines = [(n, line) for n, line in enumerate(source, start=1) if line.strip()]
        requests = [submit_request(**batch_line(line, n)) for n, line in lines]
    except (OSError, ValueError, TypeError) as err:
        raise UsageError(str(err)) from None
    refused = 0
    for (number, _), result in zip(lines, client.submit_batch(requests), strict=True):
        if isinstance(result, TaskServiceError):
            refused += 1
            if output.json:
                output.json_line({"line": number, "error": status_json(result)})
            else:
                output.text(f"line {number}: {result}")
        elif output.json:
            output.json_line({"line": number, **submit_to_json(result)})
        else:
            output.text(format_submit(result))
    return ExitCode.REJECTED if refused else ExitCode.OK


def get(client: TaskClient, ns: argparse.Namespace, output: Output) -> ExitCode:
    _print_task(client.get(ns.task_id), output, long=True)
    return ExitCode.OK


def history(client: TaskClient, ns: argparse.Namespace, output: Output) -> ExitCode:
    """One line a moment, oldest first: time, state, attempt, and a progress sample's percent and message."""
    for entry in client.history(ns.task_id):
        sample = entry.progress
        if output.json:
            line = {"time": format_time(entry.time), "state": entry.state.value, "attempt": entry.attempt}
            output.json_line(line | ({"percent": sample.percent, "message": sample.message} if sample else {}))
        else:
            shown = f"  {sample.percent:5.1f}% {sample.message}" if sample else ""
            output.text(f"{format_time(entry.time)}  {entry.state.value:<9} attempt {entry.attempt}{shown}")
    return ExitCode.OK


def stop(client: TaskClient, ns: argparse.Namespace, output: Output) -> ExitCode:
    _print_task(client.stop(ns.task_id, ns.reason), output, long=False)
    return ExitCode.OK


def watch(client: TaskClient, ns: argparse.Namespace, output: Output) -> ExitCode:
    return follow(client, ns.task_id, output)


def stop_tasks(client: TaskClient, ns: argparse.Namespace, output: Output) -> ExitCode:
    """Stop every match; prints how many were revoked and how many asked to stop."""
    count = client.stop_tasks(
        states=ns.state,
        task_type=ns.type,
        labels=build_labels(ns.label),
        scheduled=ns.scheduled,
        reason=ns.reason,
        everything=ns.all,
    )
    if output.json:
        # As POST /v1/tasks:stop answers: uint64 counts are strings in canonical JSON.
        output.json_line({"revoked": str(count.revoked), "stopping": str(count.stopping)})
    else:
        output.text(f"{count.revoked} revoked, {count.stopping} stopping")
    return ExitCode.OK


def delete(client: TaskClient, ns: argparse.Namespace, output: Output) -> ExitCode:
    task = client.delete(ns.task_id)
    if output.json:
        output.json_line(task_to_json(task))
    else:
        output.text(f"{task.task_id} deleted")
    return ExitCode.OK


def delete_tasks(client: TaskClient, ns: argparse.Namespace, output: Output) -> ExitCode:
    ended_before = None if ns.older_than is None else datetime.now(UTC) - timedelta(seconds=ns.older_than)
    deleted = client.delete_tasks(
        states=ns.state, task_type=ns.type, labels=build_labels(ns.label), ended_before=ended_before,
        everything=ns.all,
    )  # fmt: skip
    if output.json:
        output.json_line({"deleted": str(deleted)})  # as POST /v1/tasks:delete answers
    else:
        output.text(f"{deleted} deleted")
    return ExitCode.OK


def retry(client: TaskClient, ns: argparse.Namespace, output: Output) -> ExitCode:
    _print_task(client.retry(ns.task_id, ns.reason), output, long=False)
    return ExitCode.OK


def wait(client: TaskClient, ns: argparse.Namespace, output: Output) -> ExitCode:
    """Wait, without printing progress, until the tasks end (exit code: the state of the first, in the order
    given, that did not succeed) or --timeout passes. Several tasks are followed on one stream (WatchTasks)."""
    if len(ns.task_ids) > 1:
        return _wait_all(client, ns, output)
    try:
        task = client.wait(ns.task_ids[0], timeout=ns.timeout)
    except DeadlineExceeded as err:
        if err.task is None:  # the server did not answer in time: an RPC error like any other
            raise
        _print_task(err.task, output, long=False)
        return ExitCode.NOT_DONE
    _print_task(task, output, long=False)
    return for_state(task.state)


def _wait_all(client: TaskClient, ns: argparse.Namespace, output: Output) -> ExitCode:
    ended: dict[str, Task] = {}
    try:
        for task in client.as_completed(ns.task_ids, timeout=ns.timeout):
            _print_task(task, output, long=False)
            ended[task.task_id] = task
    except DeadlineExceeded:
        return ExitCode.NOT_DONE
    codes = [for_state(ended[task_id].state) for task_id in dict.fromkeys(ns.task_ids)]
    return next((code for code in codes if code is not ExitCode.OK), ExitCode.OK)


def logs(client: TaskClient, ns: argparse.Namespace, output: Output) -> ExitCode:
    """Raw log bytes to stdout; with --json, one object per chunk with its offset (to resume with --offset)."""
    if ns.offset < 0:
        raise UsageError("--offset must be 0 or more")
    for chunk in client.logs(ns.task_id, offset=ns.offset, follow=ns.follow):
        output.log_chunk(chunk)
    return ExitCode.OK


def list_tasks(client: TaskClient, ns: argparse.Namespace, output: Output) -> ExitCode:
    if ns.limit < 1:
        raise UsageError("--limit must be at least 1")
    labels = build_labels(ns.label)
    # One more than the limit tells whether to hint that there are more.
    wanted = None if ns.all else ns.limit + 1
    page_size = 1000 if ns.all else min(wanted or 1000, 1000)
    tasks: list[Task] = []
    tasks_found = client.iter_tasks(
        states=ns.state,
        task_type=ns.type,
        labels=labels,
        page_size=page_size,
        scheduled=ns.scheduled,
        waiting_for_limit=ns.waiting_for,
        parent_id=ns.parent,
        depends_on=ns.depends_on,
        search=ns.search,
        submitted_after=None if ns.since is None else datetime.now(UTC) - timedelta(seconds=ns.since),
        order_by=ns.order_by,
    )
    for task in tasks_found:
        tasks.append(task)
        if wanted is not None and len(tasks) >= wanted:
            break
    more = wanted is not None and len(tasks) > ns.limit
    tasks = tasks[: ns.limit] if more else tasks
    if output.json:
        for task in tasks:
            output.json_line(task_to_json(task))
    elif tasks:
        output.text(format_table(tasks))
    else:
        output.text("no tasks")
    if more:
        print(f"taskctl: showing the newest {ns.limit}; use --limit N or --all for more", file=sys.stderr)
    return ExitCode.OK


def follow(client: TaskClient, task_id: str, output: Output) -> ExitCode:
    """Watch a task to its end; the exit code tells its final state."""
    view = watch_view(output, task_id)
    final: Task | None = None
    try:
        for event in client.watch(task_id):
            view.event(event)
            if event.state.is_terminal:
                final = event.task or client.get(task_id)
    finally:
        view.finish(final)  # also stops a progress bar when the watch fails
    return for_state(final.state) if final is not None else ExitCode.RPC_ERROR


def _print_task(task: Task, output: Output, *, long: bool) -> None:
    if output.json:
        output.json_line(task_to_json(task))
    elif long:
        output.text(format_task(task))
    else:
        output.text(f"{task.task_id} {task.state.value}")


def task_types(client: TaskClient, ns: argparse.Namespace, output: Output) -> ExitCode:
    """Each task type: its args (`name:kind`, `*` for required, `=a|b` for choices, `(=default)`), what it does,
    and what its handler's docstring says of each arg."""
    found = client.task_types()
    if output.json:
        for kind in found:
            output.json_line(wire_json(kind))
        return ExitCode.OK
    for kind in found:
        args = " ".join(_arg_text(arg) for arg in kind.args) + (" ..." if kind.accepts_extra_args else "")
        summary = kind.description.splitlines()[0] if kind.description else ""
        output.text(f"{kind.name}  {args.strip() or '(no args)'}" + (f"\n    {summary}" if summary else ""))
        for arg in kind.args:
            if arg.description:
                output.text(f"      {arg.name}: {arg.description}")
    return ExitCode.OK


def _arg_text(arg: TaskArgInfo) -> str:
    text = f"{arg.name}{'*' if arg.required else ''}:{arg.path_role or arg.kind}"
    if arg.choices:
        text += "=" + "|".join(str(choice) for choice in arg.choices)
    if arg.has_default:
        text += f"(={json.dumps(arg.default)})"
    return text
