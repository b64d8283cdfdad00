"""What a task type takes, for the people and programs that submit to it (ListTaskTypes, `taskctl types`, the
dashboard's form): each argument's name, kind of value, whether it is required, the data-root role of a path, and
the checks its handler declares."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass
from typing import Any, cast

from taskservice.core.handlers.constraints import Constraint, Length, OneOf, Range
from taskservice.core.handlers.registry import Param, TaskType

_KINDS = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object"}


@dataclass(frozen=True, slots=True)
class ArgInfo:
    name: str
    kind: str  # string, integer, number, boolean, array, object, any
    required: bool
    path_role: str = ""  # input, output, directory, or "" for no path
    choices: tuple[Any, ...] = ()
    rule: str = ""  # the other checks, in words (e.g. "from 1 to 9")
    # What the handler takes when the arg is left out, as JSON; None with has_default False for none (or one JSON
    # cannot carry).
    default: Any = None
    has_default: bool = False
    # What the handler's docstring says of it.
    description: str = ""


@dataclass(frozen=True, slots=True)
class TypeInfo:
    name: str
    description: str
    args: tuple[ArgInfo, ...]
    accepts_extra_args: bool
    rerun_on_restart: bool


def describe(kind: TaskType) -> TypeInfo:
    return TypeInfo(
        name=kind.name,
        description=kind.description,
        args=tuple(_param_info(param) for param in kind.params),
        accepts_extra_args=kind.accepts_extra,
        rerun_on_restart=kind.rerun_on_restart,
    )


def _param_info(param: Param) -> ArgInfo:
    arg = dataclasses.replace(
        _arg(param.name, param.annotation, param.required, param.path_role), description=param.description
    )
    return arg if param.required else _with_default(arg, param.default)


def _with_default(arg: ArgInfo, default: Any) -> ArgInfo:
    """`arg` with the handler's default, when JSON can carry it as it is."""
    try:
        if json.loads(json.dumps(default, allow_nan=False)) != default:
            return arg
    except (TypeError, ValueError):
        return arg
    return dataclasses.replace(arg, default=default, has_default=True)


def _arg(name: str, annotation: Any, required: bool, role: Any) -> ArgInfo:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):  # X | None: what X says
        present = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        annotation = present[0] if len(present) == 1 else annotation
    base, metadata = annotation, cast(tuple[Any, ...], ())
    if typing.get_origin(annotation) is typing.Annotated:
        base, *rest = typing.get_args(annotation)
        metadata = tuple(rest)
    choices: tuple[Any, ...] = ()
    rules: list[str] = []
    for item in metadata:
        if isinstance(item, OneOf):
            choices = item.choices
        elif isinstance(item, Range):
            rules.append(item.describe())
        elif isinstance(item, Length):
            rules.append(f"{item.min} to {item.max if item.max is not None else 'any number of'} characters or items")
        elif isinstance(item, Constraint):
            rules.append(type(item).__name__)
    return ArgInfo(name, _kind(base), required, role.value if role is not None else "", choices, "; ".join(rules))


def _kind(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        kinds = {_kind(arg) for arg in typing.get_args(annotation) if arg is not type(None)}
        return kinds.pop() if len(kinds) == 1 else "any"
    if typing.get_origin(annotation) is typing.Annotated:
        return _kind(typing.get_args(annotation)[0])
    base = origin or annotation
    if isinstance(base, type):
        for python_type, kind in _KINDS.items():
            if issubclass(base, python_type) and not (python_type is int and base is bool):
                return "boolean" if base is bool else kind
    return "any"
