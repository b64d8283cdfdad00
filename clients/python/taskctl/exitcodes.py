"""taskctl's exit codes, in one table, and how states and errors map onto them."""

from __future__ import annotations

import enum

import grpc

from taskservice.client import TaskNotFound, TaskServiceError, TaskState


class ExitCode(enum.IntEnum):
    """What `taskctl` returns to the shell: the one table of exit codes, each with its meaning."""

    meaning: str

    def __new__(cls, value: int, meaning: str) -> ExitCode:
        member = int.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        return member

    OK = 0, "success; for watch, wait and submit --watch: the task ended in SUCCESS"
    USAGE = 2, "usage error (bad command line)"
    FAILURE = 3, "the watched task ended in FAILURE (its handler raised)"
    REVOKED = 4, "the watched task ended in REVOKED (stopped by a client)"
    TIMED_OUT = 5, "the watched task ended in TIMED_OUT (its time limit passed)"
    LOST = 6, "the watched task ended in LOST (the server died while it ran)"
    NOT_FOUND = 7, "task not found"
    REJECTED = 8, "request rejected by the server: invalid argument, already exists, queue full, ..."
    RPC_ERROR = 9, "server unreachable, or another RPC error"
    NOT_DONE = 10, "wait --timeout passed before the task ended"
    INTERRUPTED = 130, "interrupted (Ctrl-C)"


def describe_all() -> str:
    """The exit-code table as help text."""
    return "\n".join(f"  {code.value:>3}  {code.meaning}" for code in ExitCode)


# The final state of a watched task -> exit code. Non-terminal states never end a watch.
_STATE_CODES: dict[TaskState, ExitCode] = {
    TaskState.SUCCESS: ExitCode.OK,
    TaskState.FAILURE: ExitCode.FAILURE,
    TaskState.REVOKED: ExitCode.REVOKED,
    TaskState.TIMED_OUT: ExitCode.TIMED_OUT,
    TaskState.LOST: ExitCode.LOST,
}

# Status codes that mean "the server understood the request and said no" (exit 8); every other code
# (UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, UNKNOWN, ...) is a failure of the call itself (exit 9).
_REJECTED_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.ABORTED,
    }
)


def for_state(state: TaskState) -> ExitCode:
    """The exit code of a watch that ended with the task in `state`."""
    return _STATE_CODES.get(state, ExitCode.RPC_ERROR)


def for_error(err: TaskServiceError) -> ExitCode:
    """The exit code of a failed RPC."""
    if isinstance(err, TaskNotFound):
        return ExitCode.NOT_FOUND
    if err.code in _REJECTED_CODES:
        return ExitCode.REJECTED
    return ExitCode.RPC_ERROR
