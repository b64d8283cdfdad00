"""Running one handler call and turning how it ended into a task outcome."""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass
from typing import Any

from taskservice.core.context import TaskContext
from taskservice.core.errors import StopTask
from taskservice.core.models import ErrorType, TaskError, TaskState
from taskservice.core.registry import TaskType

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


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    # Keep the end: the innermost frames say where it broke.
    return "...(truncated)...\n" + text[-limit:]


def error_from_exception(exc: BaseException) -> TaskError:
    formatted = "".join(traceback.format_exception(exc))
    return TaskError(
        type=type(exc).__name__,
        message=_cap(str(exc), MAX_ERROR_MESSAGE_CHARS),
        traceback=_cap(formatted, MAX_TRACEBACK_CHARS),
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
        encoded = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return Outcome(
            TaskState.FAILURE,
            error=TaskError(ErrorType.RESULT_NOT_JSON, f"the handler returned a value JSON cannot carry: {exc}"),
        )
    if len(encoded) > MAX_RESULT_BYTES:
        return Outcome(
            TaskState.FAILURE,
            error=TaskError(
                ErrorType.RESULT_NOT_JSON,
                f"the handler returned {len(encoded)} bytes of JSON, more than the {MAX_RESULT_BYTES} allowed; "
                "write large outputs to a file and return its path",
            ),
        )
    return Outcome(TaskState.SUCCESS, result=value)
