"""taskctl: submit tasks to a taskservice server, ask their state, stop them, watch their progress.

Exit codes: see taskctl.exitcodes.ExitCode (also printed by `taskctl --help`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime

try:
    import rich  # noqa: F401 - taskctl's progress bars and tables
except ImportError:  # the server and the client library install without the cli extra
    raise SystemExit("taskctl needs the cli extra: pip install 'taskservice[cli]'") from None

from taskctl import commands, limits, schedules, status
from taskctl.exitcodes import ExitCode, describe_all, for_error
from taskctl.output import Output
from taskctl.parsing import STRING_ARG_PREFIX, parse_duration, parse_time, split_key_value
from taskservice.client import (
    ADDRESS_ENV,
    DEFAULT_ADDRESS,
    DEFAULT_TIMEOUT,
    TaskClient,
    TaskServiceError,
    TaskState,
    Unavailable,
)

Command = Callable[[TaskClient, argparse.Namespace, Output], ExitCode]

_EPILOG = "exit codes:\n" + describe_all()


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _time(text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _key_value(text: str) -> str:
    try:
        split_key_value(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _string_arg(text: str) -> str:
    return STRING_ARG_PREFIX + _key_value(text)


def _states(text: str) -> list[TaskState]:
    """One or more comma-separated state names, any case."""
    names = [n.strip().upper() for n in text.split(",") if n.strip()]
    known = [s.value for s in TaskState if s is not TaskState.UNSPECIFIED]
    bad = [n for n in names if n not in known]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown state {text!r} (choose from {', '.join(known)})")
    return [TaskState(n) for n in names]


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    # Added to the main parser and again to each command, so that `taskctl get ID --json` works too;
    # on commands the defaults are suppressed so that they do not undo an option given earlier.
    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--server",
        metavar="HOST:PORT",
        default=default(None),
        help=f"server address (default: ${ADDRESS_ENV}, else {DEFAULT_ADDRESS})",
    )
    parser.add_argument(
        "--json", action="store_true", default=default(False), help="machine output: one JSON object per line"
    )
    parser.add_argument(
        "--token", default=default(None), metavar="TOKEN", help="bearer token (default: $TASKSERVICE_TOKEN)"
    )
    parser.add_argument(
        "--tls-ca",
        default=default(None),
        metavar="PEM",
        help="CA of the server's certificate; turns TLS on (default: $TASKSERVICE_TLS_CA)",
    )
    parser.add_argument(
        "--tls-cert",
        default=default(None),
        metavar="PEM",
        help="client certificate for mutual TLS (default: $TASKSERVICE_CLIENT_CERT)",
    )
    parser.add_argument(
        "--tls-key", default=default(None), metavar="PEM", help="key of --tls-cert (default: $TASKSERVICE_CLIENT_KEY)"
    )
    parser.add_argument(
        "--timeout",
        type=_duration,
        metavar="DURATION",
        default=default(None),
        help="deadline of each request, e.g. 10s (default: 30s; a watch runs until the task ends; "
        "wait waits this long at most, by default until the end)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskctl",
        allow_abbrev=False,
        description="Submit tasks to a taskservice server, ask their state, stop them, watch their progress.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _global_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    command = _command_adder(sub)
    p = command("submit", commands.submit, "queue a task; prints its id and state")
    p.add_argument("task_type", metavar="TYPE", nargs="?", help="registered task type, e.g. demo or sleep")
    p.add_argument(
        "--from-file",
        metavar="FILE",
        help="submit every task of a JSON Lines file ('-': stdin) in batches; one object per line with "
        "task_type, args, task_id, time_limit, priority, labels",
    )
    p.add_argument(
        "--arg",
        action="append",
        default=[],
        type=_key_value,
        metavar="KEY=VALUE",
        help="a task argument; the value is JSON when it parses (steps=20 -> 20), else a string",
    )
    p.add_argument(
        "--arg-str",
        action="append",
        dest="arg",
        type=_string_arg,
        metavar="KEY=VALUE",
        help='a task argument whose value stays a string (tag=2024 -> "2024"), e.g. for a command arg of type string',
    )
    p.add_argument("--args-json", metavar="JSON", help="task arguments as a JSON object; --arg values win")
    p.add_argument("--id", metavar="ID", help="choose the task id (1-128 of [A-Za-z0-9._:-]); makes submit idempotent")
    p.add_argument("--time-limit", type=_duration, metavar="DURATION", help="e.g. 30s, 5m, 1h, 250ms or 90")
    p.add_argument("--priority", type=int, default=0, help="higher runs first (default: 0)")
    p.add_argument("--label", action="append", default=[], type=_key_value, metavar="KEY=VALUE", help="a label")
    p.add_argument("--delay", type=_duration, metavar="DURATION", help="run it this long from now, e.g. 10m")
    p.add_argument("--retention", type=_duration, metavar="DURATION", help="keep it this long once ended (0: for ever)")
    p.add_argument(
        "--after",
        action="append",
        default=[],
        metavar="ID",
        help="run it once this task succeeded (repeat for several); it is REVOKED if one does not",
    )
    p.add_argument(
        "--not-before", type=_time, metavar="TIME", help="run it at this time (ISO 8601, e.g. 2026-12-01T02:00:00Z)"
    )
    p.add_argument("--watch", action="store_true", help="then watch the task to its end (exit code: its state)")

    p = command("get", commands.get, "show a task: state, progress, times, result or error")
    p.add_argument("task_id", metavar="ID")

    p = command("history", commands.history, "show a task's stored life: each state change and progress sample")
    p.add_argument("task_id", metavar="ID")

    p = command("stop", commands.stop, "revoke a pending task or ask a running one to stop")
    p.add_argument("task_id", metavar="ID")
    p.add_argument("--reason", default="", metavar="TEXT", help="recorded in the task's error message")

    p = command("stop-tasks", commands.stop_tasks, "stop every unfinished task that matches the filters")
    p.add_argument("--state", action="extend", type=_states, default=[], metavar="STATE", help="PENDING and/or RUNNING")
    p.add_argument("--type", default="", metavar="TYPE", help="only tasks of this type")
    p.add_argument(
        "--label", action="append", default=[], type=_key_value, metavar="KEY=VALUE", help="only tasks with this label"
    )
    p.add_argument("--scheduled", action="store_true", help="only tasks waiting for their time to run")
    p.add_argument("--reason", default="", metavar="TEXT", help="recorded in each task's error message")
    p.add_argument("--all", action="store_true", help="with no filter: stop every unfinished task")

    p = command("delete", commands.delete, "delete an ended task now, with its log")
    p.add_argument("task_id", metavar="ID")

    p = command("delete-tasks", commands.delete_tasks, "delete every ended task that matches the filters")
    p.add_argument(
        "--state", action="extend", type=_states, default=[], metavar="STATE", help="only tasks that ended so"
    )
    p.add_argument("--type", default="", metavar="TYPE", help="only tasks of this type")
    p.add_argument(
        "--label", action="append", default=[], type=_key_value, metavar="KEY=VALUE", help="only tasks with this label"
    )
    p.add_argument("--older-than", type=_duration, metavar="DURATION", help="only tasks that ended this long ago")
    p.add_argument("--all", action="store_true", help="with no filter: delete every ended task")

    p = command("retry", commands.retry, "run a task that ended FAILURE, TIMED_OUT, REVOKED or LOST again")
    p.add_argument("task_id", metavar="ID")
    p.add_argument("--reason", default="", metavar="TEXT", help="written to the task's log")

    p = command("watch", commands.watch, "follow a task's progress to its end (exit code: its final state)")
    p.add_argument("task_id", metavar="ID")

    p = command(
        "wait",
        commands.wait,
        "wait until tasks end, quietly, printing each as it ends (exit code: the final state of the first that did "
        "not succeed, in the order given; 10: --timeout)",
    )
    p.add_argument("task_ids", metavar="ID", nargs="+")

    p = command("logs", commands.logs, "print a task's log (a command's stdout/stderr, or its ctx.log lines)")
    p.add_argument("task_id", metavar="ID")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new output until the task ends")
    p.add_argument("--offset", type=int, default=0, metavar="BYTES", help="start at this byte offset (default: 0)")

    p = command("list", commands.list_tasks, "list tasks, newest first unless --order-by says otherwise")
    p.add_argument(
        "--state",
        action="extend",
        type=_states,
        default=[],
        metavar="STATE",
        help="only tasks in this state (repeat, or comma-separate, for several)",
    )
    p.add_argument("--type", default="", metavar="TYPE", help="only tasks of this type")
    p.add_argument("--scheduled", action="store_true", help="only tasks waiting for their time to run")
    p.add_argument("--waiting-for", default="", metavar="LIMIT", help="only tasks this limit holds back")
    p.add_argument("--parent", default="", metavar="TASK_ID", help="only the children of this task")
    p.add_argument("--depends-on", default="", metavar="TASK_ID", help="only the tasks that run after this task")
    p.add_argument("--search", default="", metavar="TEXT", help="only tasks whose id starts with TEXT, or whose args "
                   "or error contain it")  # fmt: skip
    p.add_argument("--since", type=_duration, default=None, metavar="DURATION",
                   help="only tasks submitted in the last DURATION (90s, 15m, 2h, 1d)")  # fmt: skip
    p.add_argument("--order-by", default="", metavar="FIELD",
                   help="submitted_at (the default), started_at, ended_at or duration, then asc or desc "
                        "(for example 'duration desc')")  # fmt: skip
    p.add_argument(
        "--label", action="append", default=[], type=_key_value, metavar="KEY=VALUE", help="only tasks with this label"
    )
    p.add_argument("--limit", type=int, default=50, metavar="N", help="show at most N tasks (default: 50)")
    p.add_argument("--all", action="store_true", help="show every matching task")

    command("types", commands.task_types, "list the task types the server runs, with their args")
    command("stats", status.stats, "tasks by state and type, the last hour's starts and ends, the oldest wait, limits")
    command("nodes", status.nodes, "the servers of the database: busy and total workers, abandoned handlers, types")

    about = "schedules: tasks submitted on a cron expression or at an interval"
    schedule = sub.add_parser("schedule", help=about, description=about)
    schedule_commands = schedule.add_subparsers(dest="schedule_command", required=True, metavar="SUBCOMMAND")
    schedules.add_commands(_command_adder(schedule_commands), _duration, _key_value)

    about = "limits: how many tasks of a kind run at once, and how often they start, per group"
    limit = sub.add_parser("limit", help=about, description=about)
    limit_commands = limit.add_subparsers(dest="limit_command", required=True, metavar="SUBCOMMAND")
    limits.add_commands(_command_adder(limit_commands), _key_value)
    return parser


def _command_adder(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> Callable[[str, Command, str], argparse.ArgumentParser]:
    """`command(name, func, help)`: a command of `sub` that runs `func`, with the global options."""

    def command(name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, allow_abbrev=False)
        _global_options(p, suppress=True)
        p.set_defaults(func=func)
        return p

    return command


# Options of taskctl that take a value, and those that do not; _dash_id_last must know both.
_VALUE_OPTIONS = frozenset(
    {
        "--server",
        "--timeout",
        "--reason",
        "--token",
        "--tls-ca",
        "--tls-cert",
        "--tls-key",
        "--offset",
        "--from-file",
        "--cron",
        "--every",
        "--time-zone",
        "--catch-up",
    }
)
_FLAG_OPTIONS = frozenset({"--json", "-h", "--help", "--follow", "-f"})
_ID_COMMANDS = frozenset({"get", "stop", "retry", "delete", "watch", "wait", "logs"})


def _dash_id_last(args: list[str]) -> list[str]:
    """Let `taskctl get -abc` work: server-made ids are URL-safe base64 and may start with '-', which
    argparse takes for an option. Such an ID (any unknown '-' token of get/stop/watch) is moved behind
    '--', where argparse reads it as the positional ID."""
    command: str | None = None
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            break
        if token in _VALUE_OPTIONS:
            i += 2
            continue
        if command is None and not token.startswith("-"):
            command = token
            if command not in _ID_COMMANDS:
                break
        elif command is not None and token.startswith("-") and token != "-":
            known = token in _FLAG_OPTIONS or token.split("=", 1)[0] in _VALUE_OPTIONS
            if not known:
                return [*args[:i], *args[i + 1 :], "--", token]
        i += 1
    return args


def _describe(err: TaskServiceError, address: str) -> str:
    if isinstance(err, Unavailable):
        return f"server {address} unavailable: {err}"
    return str(err)


def trace_context_from_environment() -> dict[str, str]:
    """TRACEPARENT and TRACESTATE, as a traced script (or a command task) hands its context to the tools it runs:
    the Submit, and the task, join that trace."""
    return {name: os.environ[name.upper()] for name in ("traceparent", "tracestate") if os.environ.get(name.upper())}


def main(argv: Sequence[str] | None = None) -> int:
    """Run taskctl; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    ns = build_parser().parse_args(_dash_id_last(args))  # exits 2 on usage errors
    output = Output(json=ns.json)
    try:
        client = TaskClient(
            ns.server,
            timeout=DEFAULT_TIMEOUT if ns.timeout is None else ns.timeout,
            token=ns.token,
            tls_ca=ns.tls_ca,
            tls_cert=ns.tls_cert,
            tls_key=ns.tls_key,
            trace_context=trace_context_from_environment(),
        )
    except ValueError as err:  # an unreadable TLS file
        print(f"taskctl: {err}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        return int(ns.func(client, ns, output))
    except commands.UsageError as err:
        print(f"taskctl: {err}", file=sys.stderr)
        return ExitCode.USAGE
    except TaskServiceError as err:
        print(f"taskctl: {_describe(err, client.address)}", file=sys.stderr)
        return for_error(err)
    except KeyboardInterrupt:
        print("taskctl: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        # `taskctl list | head`: the reader left. Point stdout at /dev/null so that the flush at exit
        # does not fail again with a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK
    finally:
        client.close()
