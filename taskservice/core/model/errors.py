"""One exception tree for the engine. The server maps each class to a gRPC status in one place."""

from __future__ import annotations


class TaskServiceError(Exception):
    """Base of every error a caller of the engine can act on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


MAX_FIELD_CHARS = 200
MAX_VIOLATIONS = 20


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class TaskNotFound(TaskServiceError):
    def __init__(self, task_id: str) -> None:
        super().__init__(f"no task with id {_shorten(task_id, MAX_FIELD_CHARS)!r}")
        self.task_id = task_id


class ScheduleNotFound(TaskServiceError):
    def __init__(self, schedule_id: str) -> None:
        super().__init__(f"no schedule with id {_shorten(schedule_id, MAX_FIELD_CHARS)!r}")
        self.schedule_id = schedule_id


class LimitNotFound(TaskServiceError):
    def __init__(self, limit_id: str) -> None:
        super().__init__(f"no limit with id {_shorten(limit_id, MAX_FIELD_CHARS)!r}")
        self.limit_id = limit_id


class InvalidRequest(TaskServiceError):
    """The request cannot be accepted as it is; field_violations point at the fields to blame."""

    def __init__(self, message: str, field_violations: list[tuple[str, str]] | None = None) -> None:
        # Messages quote what the client sent; capped so that a huge request cannot make a huge answer
        # (past ~8 KiB of status trailers a client drops the answer altogether).
        violations = [(_shorten(f, MAX_FIELD_CHARS), _shorten(d, MAX_FIELD_CHARS)) for f, d in (field_violations or [])]
        violations = violations[:MAX_VIOLATIONS]
        message = _shorten(message, MAX_FIELD_CHARS)
        if violations:
            message = f"{message} ({'; '.join(f'{f}: {d}' for f, d in violations)})"
        super().__init__(message)
        self.field_violations = violations


class TaskConflict(TaskServiceError):
    """A task_id already names a task submitted with a different request."""


class QueueFull(TaskServiceError):
    """The queue is at --max-queue; the client should retry later."""


class ShuttingDown(TaskServiceError):
    """The server is draining and takes no new tasks."""

    def __init__(
        self, message: str = "the server is shutting down and takes no new tasks; retry on another instance"
    ) -> None:
        super().__init__(message)


class WrongState(TaskServiceError):
    """The task exists, but its state does not allow what was asked (a retry of a task that has not failed)."""


class StoreUnavailable(TaskServiceError):
    """The database could not write; nothing was acknowledged."""


class StoreOpenError(Exception):
    """The database cannot be used (corrupt, foreign, or written by a newer version)."""


class StoreDamaged(TaskServiceError):
    """The database file is damaged where this read looked; restore it from a backup."""


class SequenceOutOfRange(TaskServiceError):
    """The events after the requested sequence are no longer kept; take a fresh snapshot."""


class RaisedElsewhere(Exception):
    """What a handler raised in a worker process, as the server knows it: the qualified names of its class and its
    bases (the exception object itself stays in the process), for retry policies to match."""

    def __init__(self, message: str, type_names: tuple[str, ...]) -> None:
        super().__init__(message)
        self.type_names = type_names


class StopTask(BaseException):
    """Raised inside a handler by TaskContext when a stop or the time limit is pending.

    A BaseException so that a handler's `except Exception` does not swallow it.
    """


class RegistryError(Exception):
    """A task type cannot be registered (duplicate name, handler that cannot take its args)."""
