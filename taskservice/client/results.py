"""A typed task's outcome: its JSON result decoded into the handler's return type, or its failure raised as
`TaskFailed` carrying the remote error type, message and traceback."""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from datetime import date, datetime
from typing import Any, Union

from taskservice.client.models import Task, TaskState


class TaskFailed(Exception):
    """A task ended without a result: FAILURE (the handler raised), TIMED_OUT, REVOKED or LOST.

    `error_type` is the remote exception's class name or a reason code (TimeLimitExceeded, DependencyFailed, ...),
    `message` its text, `remote_traceback` the handler's traceback as the server recorded it, `task` the task.
    """

    def __init__(self, task: Task) -> None:
        self.task = task
        self.state: TaskState = task.state
        self.error_type = task.error.type if task.error else task.state.value
        self.message = task.error.message if task.error else ""
        self.remote_traceback = task.error.traceback if task.error else ""
        super().__init__(self.message)

    def __str__(self) -> str:
        what = f"{self.error_type}: {self.message}" if self.message else self.error_type
        return f"task {self.task.task_id} ({self.task.task_type}) ended {self.state.value}: {what}"


class ResultTypeError(TypeError):
    """A task's result does not fit the type its handler declares (the server runs other code than the caller's)."""


def outcome(task: Task, result_type: Any) -> Any:
    """The ended task's result decoded into `result_type`; TaskFailed when it did not succeed."""
    if task.state is not TaskState.SUCCESS:
        raise TaskFailed(task)
    try:
        return decode(task.result, result_type)
    except (TypeError, ValueError) as exc:
        raise ResultTypeError(f"the result of task {task.task_id} does not fit {_name(result_type)}: {exc}") from exc


def decode(value: Any, annotation: Any) -> Any:
    """A JSON value as `annotation` declares it: dataclasses, TypedDicts, pydantic models (when installed), enums,
    datetimes, Optional/Union, list/tuple/dict/set of them, and plain JSON types. TypeError when it does not fit."""
    if annotation is Any or annotation is typing.Any or isinstance(annotation, typing.TypeVar):
        return value
    if annotation is None or annotation is type(None):
        if value is not None:
            raise TypeError(f"expected null, got {_kind(value)}")
        return None
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return decode(value, typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return _decode_union(value, typing.get_args(annotation))
    if origin is typing.Literal:
        if value not in typing.get_args(annotation):
            raise TypeError(f"expected one of {typing.get_args(annotation)!r}, got {value!r}")
        return value
    if origin in (list, tuple, set, frozenset, dict) or annotation in (list, tuple, set, frozenset, dict):
        return _decode_container(value, origin or annotation, typing.get_args(annotation))
    if isinstance(annotation, type):
        return _decode_class(value, annotation)
    return value


def _decode_union(value: Any, options: tuple[Any, ...]) -> Any:
    if value is None and type(None) in options:
        return None
    reasons = []
    for option in options:
        if option is type(None):
            continue
        try:
            return decode(value, option)
        except (TypeError, ValueError) as exc:
            reasons.append(str(exc))
    raise TypeError(" or ".join(reasons) or f"expected null, got {_kind(value)}")


def _decode_container(value: Any, origin: Any, args: tuple[Any, ...]) -> Any:
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"expected an object, got {_kind(value)}")
        item_type = args[1] if len(args) == 2 else Any
        return {key: decode(item, item_type) for key, item in value.items()}
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {_kind(value)}")
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(args) != len(value):
            raise TypeError(f"expected {len(args)} items, got {len(value)}")
        return tuple(decode(item, kind) for item, kind in zip(value, args, strict=True))
    item_type = args[0] if args else Any
    items = [decode(item, item_type) for item in value]
    return items if origin is list else origin(items)


def _decode_class(value: Any, cls: type) -> Any:
    if dataclasses.is_dataclass(cls):
        if not isinstance(value, dict):
            raise TypeError(f"expected an object for {cls.__name__}, got {_kind(value)}")
        hints, known = _fields_of(cls)
        return cls(**{name: decode(item, hints.get(name, Any)) for name, item in value.items() if name in known})
    if typing.is_typeddict(cls):
        if not isinstance(value, dict):
            raise TypeError(f"expected an object for {cls.__name__}, got {_kind(value)}")
        hints = _hints(cls)
        return {name: decode(item, hints.get(name, Any)) for name, item in value.items()}
    validate = getattr(cls, "model_validate", None)  # a pydantic model
    if callable(validate):
        return validate(value)
    if issubclass(cls, enum.Enum):
        return cls(value)
    if cls is datetime or cls is date:
        if not isinstance(value, str):
            raise TypeError(f"expected an ISO 8601 string, got {_kind(value)}")
        return cls.fromisoformat(value)
    return _decode_scalar(value, cls)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """A class's annotations, resolved once (typing.get_type_hints costs tens of microseconds a call)."""
    return typing.get_type_hints(cls)


@functools.cache
def _fields_of(cls: type) -> tuple[dict[str, Any], frozenset[str]]:
    """A dataclass's field types, and the fields its constructor takes."""
    return _hints(cls), frozenset(f.name for f in dataclasses.fields(cls) if f.init)


def _decode_scalar(value: Any, cls: type) -> Any:
    if cls is bool:
        if not isinstance(value, bool):
            raise TypeError(f"expected a boolean, got {_kind(value)}")
        return value
    if cls is int:
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            raise TypeError(f"expected an integer, got {_kind(value)}")
        return int(value)
    if cls is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"expected a number, got {_kind(value)}")
        return float(value)
    if not isinstance(value, cls):
        raise TypeError(f"expected {cls.__name__}, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(type(value), repr(value))


def _name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or repr(annotation)
