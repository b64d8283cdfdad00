"""Running one task: its paths opened, its handler called, its outputs settled, how it ended as an outcome.

Nothing here may raise into a worker: whatever goes wrong around a handler (a path swapped for a link loop,
an output folder gone, a log that cannot be written) ends that task with an error type saying what happened,
and the worker goes on with the next one.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from taskservice.core.handlers.children import Children
from taskservice.core.handlers.context import LogSink, ProgressSink, StopSignal, TaskContext
from taskservice.core.handlers.json_values import as_json
from taskservice.core.handlers.paths import CLEAR_NODES_ARG, DataRoot, OpenedPaths
from taskservice.core.handlers.process_pool import ProcessPool, Relay
from taskservice.core.handlers.registry import TaskType
from taskservice.core.model.errors import InvalidRequest, StopTask
from taskservice.core.model.models import ErrorType, Task, TaskError, TaskState

log = logging.getLogger(__name__)

# Tracebacks are for people; a recursion error's 3,000 frames are not.
MAX_TRACEBACK_CHARS = 16 * 1024
MAX_ERROR_MESSAGE_CHARS = 4 * 1024
# A result is stored with the task and sent on every GetState; big outputs belong in files.
MAX_RESULT_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a handler call ended. state is None when it ended because a stop was asked."""

    state: TaskState | None
    result: Any = None
    error: TaskError | None = None
    # What the handler raised, for the retry policy; never stored.
    exception: BaseException | None = None


# A JSON level becomes two protobuf levels (Value, then Struct or ListValue) and protobuf stops at 100.
MAX_RESULT_DEPTH = 32
# A JSON number travels as a double: integers beyond this would arrive changed.
MAX_EXACT_INTEGER = 2**53


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    # Keep the end: the innermost frames say where it broke.
    return "...(truncated)...\n" + text[-limit:]


def printable(text: str) -> str:
    """Text that UTF-8 (SQLite, protobuf) can carry: lone surrogates, e.g. from a non-UTF-8 file name, escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _describe_exception(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a handler's exception may fail even at saying what it is
        return f"<{type(exc).__name__} whose str() failed>"


def error_from_exception(exc: BaseException) -> TaskError:
    try:
        formatted = "".join(traceback.format_exception(exc))
    except Exception:
        formatted = f"{type(exc).__name__}: {_describe_exception(exc)} (the traceback could not be formatted)"
    return TaskError(
        type=type(exc).__name__,
        message=printable(_cap(_describe_exception(exc), MAX_ERROR_MESSAGE_CHARS)),
        traceback=printable(_cap(formatted, MAX_TRACEBACK_CHARS)),
    )


def run_handler(task_type: TaskType, ctx: TaskContext, args: dict[str, Any]) -> Outcome:
    """Call the handler; never raises."""
    try:
        value = task_type.handler(ctx, **args)
    except StopTask:
        return Outcome(state=None)
    except BaseException as exc:  # a handler's SystemExit must not take its worker thread down
        if ctx.stop_requested:
            return Outcome(state=None)
        return Outcome(TaskState.FAILURE, error=error_from_exception(exc), exception=exc)
    if ctx.stop_requested:
        return Outcome(state=None)
    try:
        return Outcome(TaskState.SUCCESS, result=portable_result(value))
    except ValueError as exc:
        return Outcome(TaskState.FAILURE, error=TaskError(ErrorType.RESULT_NOT_JSON, str(exc)))


def portable_result(value: Any) -> Any:
    """The handler's return value as every reader will see it, or ValueError saying why it cannot travel.

    Round-tripped through JSON, so the live copy equals the stored one (int keys become strings, tuples
    lists); then checked against what protobuf and UTF-8 can carry.
    """
    if value is None:  # most handlers return nothing: no need to round-trip it
        return None
    try:
        encoded = json.dumps(value, allow_nan=False, ensure_ascii=False, default=as_json)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"the handler returned a value JSON cannot carry: {exc}") from None
    try:
        size = len(encoded.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(
            "the handler returned text that is not valid Unicode (a lone surrogate, e.g. from a file name that is "
            "not UTF-8); decode such names with errors='replace' first"
        ) from None
    if size > MAX_RESULT_BYTES:
        raise ValueError(
            f"the handler returned {size} bytes of JSON, more than the {MAX_RESULT_BYTES} allowed; "
            "write large outputs to a file and return its path"
        )
    result = json.loads(encoded)
    _check_portable(result, 0)
    return result


def _check_portable(value: Any, depth: int) -> None:
    if depth > MAX_RESULT_DEPTH:
        raise ValueError(
            f"the handler returned JSON nested deeper than {MAX_RESULT_DEPTH} levels, which protobuf refuses"
        )
    if isinstance(value, bool):
        return
    if isinstance(value, int) and abs(value) > MAX_EXACT_INTEGER:
        raise ValueError(
            f"the handler returned the integer {str(value)[:40]}, beyond ±2**53, which a JSON number cannot carry "
            "exactly; return it as a string"
        )
    if isinstance(value, dict):
        for item in value.values():
            _check_portable(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_portable(item, depth + 1)


@dataclass(frozen=True, slots=True)
class HandlerContext:
    """What the engine lends one run of a handler."""

    report: ProgressSink
    log_sink: LogSink
    stop_event: StopSignal
    deadline: float | None
    stop_grace: float
    # False once the task was stopped or given up on: its outputs are then not moved into place.
    still_wanted: Callable[[], bool]
    # Set when this task's handler runs in a worker process of this pool rather than in the worker thread.
    processes: ProcessPool | None = None
    # The run span's context as propagation headers (empty when tracing is off): ctx.trace_context.
    trace_context: dict[str, str] = field(default_factory=dict)
    # What ctx.submit() and ctx.wait() ask of the engine.
    children: Children | None = None


def check_paths(kind: TaskType, args: dict[str, Any], data_root: DataRoot | None) -> None:
    """At Submit: InvalidRequest naming the field of any path arg that cannot serve its role."""
    for param in kind.path_params:
        value = args.get(param.name)
        if value is None or param.path_role is None:
            continue
        if data_root is None:
            raise _no_data_root(kind, param.name)
        data_root.check(f"args.{param.name}", value, param.path_role)


def _no_data_root(kind: TaskType, name: str) -> InvalidRequest:
    return InvalidRequest(
        f"task type {kind.name!r} takes paths but this server has no data root",
        [(f"args.{name}", "start the server with --data-root")],
    )


def execute_task(kind: TaskType, task: Task, data_root: DataRoot | None, lent: HandlerContext) -> Outcome:
    """Open the task's paths, run its handler, settle its outputs; never raises."""
    try:
        return _execute(kind, task, data_root, lent)
    except BaseException as exc:  # a bug around the handler must cost this task, not the worker
        log.exception("task %s: the server failed around its handler", task.task_id)
        return Outcome(
            TaskState.FAILURE,
            error=TaskError(
                ErrorType.SERVER_ERROR,
                printable(
                    f"the server failed while running this task ({type(exc).__name__}: {_describe_exception(exc)})"
                ),
            ),
        )


def _execute(kind: TaskType, task: Task, data_root: DataRoot | None, lent: HandlerContext) -> Outcome:
    call_args = dict(task.args)
    keep_partial = not call_args.pop(CLEAR_NODES_ARG, True)
    params = [(p.name, p.path_role) for p in kind.path_params if p.path_role is not None]
    opened: OpenedPaths | None = None
    if params:
        try:
            if data_root is None:
                raise _no_data_root(kind, params[0][0])
            # Opened again at run time: the files may have changed since Submit, and what is opened now is
            # exactly what the handler reads and writes.
            opened = data_root.open_args(params, call_args, f"{task.task_id}:{task.attempt}")
        except InvalidRequest as exc:
            return Outcome(TaskState.FAILURE, error=TaskError(ErrorType.INVALID_PATH, exc.message))
        call_args.update(opened.paths)
    try:
        ctx = TaskContext(
            task_id=task.task_id,
            task_type=task.task_type,
            attempt=task.attempt,
            args=call_args,
            stop_event=lent.stop_event,
            report=lent.report,
            deadline=lent.deadline,
            log_sink=lent.log_sink,
            stop_grace=lent.stop_grace,
            data_root=data_root,
            paths=opened,
            trace_context=lent.trace_context,
            children=lent.children,
        )
        if lent.processes is not None:
            outcome = run_in_process(lent.processes, kind, ctx, call_args, lent)
        else:
            outcome = run_handler(kind, ctx, call_args)
        return outcome if opened is None else _settle_outputs(opened, outcome, lent, keep_partial=keep_partial)
    finally:
        if opened is not None:
            opened.close()


def run_in_process(
    pool: ProcessPool, kind: TaskType, ctx: TaskContext, call_args: dict[str, Any], lent: HandlerContext
) -> Outcome:
    """run_handler() in a worker process of `pool`: the same outcomes, the result under the same JSON rules. The
    process gets the task's path descriptors (and no other of this process's): the args name its copies."""
    args = call_args
    time_left = None if lent.deadline is None else max(0.0, lent.deadline - time.monotonic())
    meta = {"task_id": ctx.task_id, "task_type": ctx.task_type, "attempt": ctx.attempt, "args": args,
            "stop_grace": lent.stop_grace, "time_left": time_left, "min_free_bytes": ctx.min_free_bytes,
            "data_root": str(ctx.data_root) if ctx.data_root is not None else None,
            "trace_context": ctx.trace_context,
            "given": {name: ctx.given_path(name) for name in args}}  # fmt: skip
    relay = Relay(lent.report, lambda data: ctx.write_log(data), lent.stop_event.is_set, lent.stop_grace, lent.children)
    done = pool.run(kind.handler, args, meta, relay, ctx.path_fds)
    if done.state is None or lent.stop_event.is_set():
        return Outcome(state=None)
    if done.state is TaskState.FAILURE:
        return Outcome(TaskState.FAILURE, error=done.error, exception=done.raised)
    try:
        value = None if done.result_json is None else json.loads(done.result_json)
        return Outcome(TaskState.SUCCESS, result=portable_result(value))
    except ValueError as exc:
        return Outcome(TaskState.FAILURE, error=TaskError(ErrorType.RESULT_NOT_JSON, str(exc)))


def _settle_outputs(opened: OpenedPaths, outcome: Outcome, lent: HandlerContext, *, keep_partial: bool) -> Outcome:
    """Move outputs into place on success; otherwise remove them (or keep them, with clear_nodes=false)."""
    if outcome.state is TaskState.SUCCESS and lent.still_wanted():
        try:
            opened.commit_outputs()
        except OSError as exc:
            opened.discard_outputs(keep=keep_partial)
            return Outcome(
                TaskState.FAILURE,
                error=TaskError(ErrorType.OUTPUT_ERROR, printable(f"could not move the output into place: {exc}")),
            )
        return outcome
    try:
        opened.discard_outputs(keep=keep_partial)
    except OSError as exc:  # the task ended as it ended; a leftover hidden file is only untidy
        log.warning("could not remove a partial output: %s", exc)
    return outcome
