"""`command`: run one of the commands the operator allows in a TOML file (`taskservice serve --commands FILE`).

    [commands.compress]
    argv = ["gzip", "-{level}", "--no-name", "--stdout", "--", "{input_fpath}"]
    description = "gzip a file"
    cwd = "work"                      # optional: a folder under the data root (default: the data root)
    env = { LC_ALL = "C" }            # optional: added to a minimal environment (PATH, HOME, LANG)
    progress = 'frame=\\s*(?P<current>\\d+)'   # optional regex: groups percent, or current[/total], message
    [commands.compress.args]
    level = { type = "integer", min = 1, max = 9, default = 6 }

A task names one: `{"name": "compress", "input_fpath": "in/a.txt", "output_fpath": "out/a.gz", "level": 9}`.
Args are checked at Submit against `[commands.NAME.args]` (type string/integer/number/boolean; choices, min,
max, pattern, default, allow_dash). `{input_fpath}` and `{output_fpath}` become absolute paths under the data
root; the output is a temporary file renamed into place only when the command exits 0. No shell is involved:
a placeholder fills part of one argv element and can never add one; a string placed as a whole element may
not start with '-' unless its arg says `allow_dash = true`.

Progress comes from the command's output lines (split on \\n and \\r): the `progress` regex, else
`PROGRESS <percent> [message]` lines and tqdm-style `NN%`. Everything the command prints goes to the task log.
Exit 0 is SUCCESS with `{"exit_code": 0, "duration_seconds": ...}`; anything else is FAILURE (CommandFailed)
with the exit code or signal and the last lines of stderr. A stop sends SIGTERM to the command's process
group, then SIGKILL shortly before the server's --stop-grace ends.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
from collections.abc import Iterator
from typing import Any

from taskservice.core.handlers.context import TaskContext
from taskservice.core.handlers.paths import InputFile, OpenedFolder, OutputFile
from taskservice.core.handlers.registry import TaskRegistry, TaskType
from taskservice.core.model.errors import InvalidRequest
from taskservice.tasks.command_config import load_commands
from taskservice.tasks.command_run import MAX_STDERR_TAIL_CHARS, CommandFailed, run_process
from taskservice.tasks.command_spec import RESERVED_ARGS, CommandCatalog, CommandConfigError, CommandSpec

__all__ = [
    "COMMAND_TASK_TYPE",
    "CommandCatalog",
    "CommandConfigError",
    "CommandFailed",
    "load_commands",
    "register_command_task",
]

COMMAND_TASK_TYPE = "command"
# The W3C trace context headers a command gets as variables (TRACEPARENT, TRACESTATE) when tracing is on.
TRACE_VARIABLES = ("traceparent", "tracestate")
# The child's environment: these from the server's (or the default), then the command's `env`.
BASE_ENVIRONMENT = {"PATH": os.defpath, "HOME": "/", "LANG": "C.UTF-8"}


def register_command_task(registry: TaskRegistry, catalog: CommandCatalog) -> TaskType:
    """Register the `command` task type running the commands in `catalog` (never re-run after a crash)."""

    def command(
        ctx: TaskContext,
        *,
        name: str,
        input_fpath: InputFile | None = None,
        output_fpath: OutputFile | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        """Run one of the operator's commands.

        Args:
            name: The command's name in the operator's commands file.
            input_fpath: The file the command reads, under the data root (for commands that take one).
            output_fpath: Where the command writes, under the data root (for commands that write one).
        """
        # Checked again at run time: the server may have restarted with another commands file since Submit.
        spec = catalog.require(name)
        argv = spec.build_argv(params, input_fpath=input_fpath, output_fpath=output_fpath)
        return run_command(ctx, spec, argv)

    def validate(args: dict[str, Any]) -> None:
        spec = catalog.require(args["name"])
        params = {key: value for key, value in args.items() if key not in RESERVED_ARGS}
        spec.build_argv(params, input_fpath=args.get("input_fpath"), output_fpath=args.get("output_fpath"))

    def time_limit(args: dict[str, Any], asked: float | None) -> float | None:
        """A command's time_limit is its tasks' default limit, and the most a Submit may ask for."""
        spec = catalog.require(args["name"])
        most = spec.time_limit
        if most is None or asked is None:
            return asked if most is None else most
        if asked > most:
            raise InvalidRequest(
                f"a time limit of {asked:g} s is more than command {spec.name!r} allows",
                [("time_limit", f"at most {most:g} s for this command (its time_limit in the commands file)")],
            )
        return asked

    allowed = ", ".join(sorted(catalog)) or "none configured"
    return registry.register(
        COMMAND_TASK_TYPE,
        command,
        rerun_on_restart=False,
        description=f"run one of the operator's commands ({allowed})",
        validator=validate,
        time_limit_for=time_limit,
    )


def run_command(ctx: TaskContext, spec: CommandSpec, argv: list[str]) -> dict[str, Any]:
    """Run a built argv for a task; the result on exit 0, CommandFailed otherwise, StopTask after a stop."""
    env = {key: os.environ.get(key, default) for key, default in BASE_ENVIRONMENT.items()}
    env.update(spec.env or {})
    # The run's trace context, as the OpenTelemetry SDKs and otel-cli read it: the command's spans join the task's.
    env.update({name.upper(): value for name, value in ctx.trace_context.items() if name in TRACE_VARIABLES})
    ctx.log(f"[taskservice] running command {spec.name!r}: {shlex.join(argv)}")
    for name in ("input_fpath", "output_fpath"):
        if ctx.given_path(name):
            ctx.log(f"[taskservice] {name} {ctx.given_path(name)!r} is {ctx.args[name]}")
    with _working_directory(ctx, spec) as cwd:
        # The child opens the task's files by their descriptor paths: it must hold those descriptors too.
        pass_fds = (*ctx.path_fds, *((cwd.fd,) if cwd is not None else ()))
        try:
            finished = run_process(
                ctx, argv, cwd=cwd.path if cwd is not None else None, env=env, pattern=spec.progress, pass_fds=pass_fds
            )
        except OSError as exc:
            raise CommandFailed(f"command {spec.name!r} could not start {argv[0]!r}: {exc.strerror or exc}") from None
    code = finished.returncode
    ctx.log(f"[taskservice] command {spec.name!r} ended with code {code} after {finished.duration_seconds:.3f} s")
    if code == 0:
        return {"exit_code": 0, "duration_seconds": round(finished.duration_seconds, 3)}
    if code < 0:
        signal_name = _signal_name(-code)
        why, exit_code = f"command {spec.name!r} was killed by signal {signal_name}", None
    else:
        signal_name, why, exit_code = None, f"command {spec.name!r} exited with code {code}", code
    tail = "\n".join(finished.stderr_tail)
    if len(tail) > MAX_STDERR_TAIL_CHARS:
        tail = "..." + tail[-MAX_STDERR_TAIL_CHARS:]
    detail = f"; last lines of stderr:\n{tail}" if tail else " (nothing on stderr)"
    raise CommandFailed(why + detail, exit_code=exit_code, signal_name=signal_name)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


@contextlib.contextmanager
def _working_directory(ctx: TaskContext, spec: CommandSpec) -> Iterator[OpenedFolder | None]:
    """The data root, or the command's `cwd` under it (made when missing), opened without following links out."""
    if ctx.data_root is None:
        if spec.cwd is not None:
            raise CommandFailed(f"command {spec.name!r} runs in {spec.cwd!r} under the data root; this server has none")
        yield None
        return
    try:
        held = ctx.open_folder(spec.cwd or ".")
    except InvalidRequest as exc:
        raise CommandFailed(f"command {spec.name!r}: cwd {spec.cwd!r} {exc.message}") from None
    try:
        yield held
    finally:
        held.close()
