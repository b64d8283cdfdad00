"""Task types: a name, a handler, and the handler's signature as the schema of its args.

A handler is a function taking a TaskContext first and keyword args after it:

    @task("resize")
    def resize(ctx: TaskContext, *, width: int, height: int = 0, name: str = "") -> dict: ...

Submit checks args against the signature (missing, unknown, wrong JSON type) before anything is stored.
"""

from __future__ import annotations

import inspect
import json
import math
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Concatenate, ParamSpec, TypeVar, Union

from taskservice.core.handlers.constraints import Constraint, Length, OneOf, Range, check_constraints
from taskservice.core.handlers.docstrings import read_docstring
from taskservice.core.handlers.paths import CLEAR_NODES_ARG, PathRole, path_role
from taskservice.core.handlers.retry import RetryPolicy
from taskservice.core.model.errors import InvalidRequest, RegistryError
from taskservice.core.model.limits import LimitSpec, Rate, check_limit, parse_rate
from taskservice.handles import TaskDef

Handler = Callable[..., Any]
P = ParamSpec("P")
R = TypeVar("R")

# Args travel as a google.protobuf.Struct: numbers are doubles, so integers are exact only up to 2**53.
MAX_SAFE_INTEGER = 2**53
# Bigger args belong in a file under the data root, not in the task record.
MAX_ARGS_BYTES = 1024 * 1024

_JSON_SCALARS = (str, int, float, bool, type(None))


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    annotation: Any
    required: bool
    # Set for args that name files or folders under the data root.
    path_role: PathRole | None = None
    # What the handler takes when the arg is left out (None for a required arg). Not inspect.Parameter.empty: the
    # signature dataclasses build for the docstring would take a field defaulting to it for one with no default.
    default: Any = None
    # What the handler's docstring says of it (its Args, :param or Parameters entry).
    description: str = ""


TimeLimitRule = Callable[[dict[str, Any], float | None], float | None]


@dataclass(frozen=True, slots=True)
class TaskType:
    """A registered task type."""

    name: str
    handler: Handler
    params: tuple[Param, ...]
    accepts_extra: bool
    # Safe to run again from the start when the server died while it ran (else it becomes LOST).
    rerun_on_restart: bool = False
    description: str = ""
    retry: RetryPolicy | None = None
    # Checks the signature cannot express (e.g. a command name against the operator's list); raises
    # InvalidRequest. Runs at Submit after the signature checks, on the normalised args.
    validator: Callable[[dict[str, Any]], None] | None = None
    # The time limit a task gets from its normalised args and the limit its Submit asked for (None: none asked);
    # raises InvalidRequest for a limit the type does not allow. Unset: the asked limit, else the server default.
    time_limit_for: TimeLimitRule | None = None
    # "thread" (a worker thread of the server) or "process" (a worker process: every core, a stop that kills).
    isolation: str = "thread"
    # Its default limit (the limit "type:<name>", made at start): at most this many running (0: no cap), and at
    # most this rate of starts; None: no rate.
    max_running: int = 0
    rate: Rate | None = None

    def default_limit(self) -> LimitSpec | None:
        """The limit its code declares, if any."""
        if not self.max_running and self.rate is None:
            return None
        return LimitSpec(f"type:{self.name}", task_type=self.name, max_running=self.max_running, rate=self.rate)

    @property
    def path_params(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.path_role is not None)

    @property
    def has_outputs(self) -> bool:
        return any(p.path_role is PathRole.OUTPUT for p in self.params)

    def validate_args(self, args: dict[str, Any]) -> dict[str, Any]:
        """Return args with numbers normalised to the handler's types, or raise InvalidRequest."""
        violations: list[tuple[str, str]] = []
        known = {p.name: p for p in self.params}
        normalised: dict[str, Any] = {}
        for name, value in args.items():
            param = known.get(name)
            if param is None and name == CLEAR_NODES_ARG and self.has_outputs:
                if not isinstance(value, bool):
                    violations.append((f"args.{name}", f"expected a boolean, got {_describe(value)}"))
                normalised[name] = value
                continue
            if param is None:
                if self.accepts_extra:
                    normalised[name] = value
                else:
                    expected = ", ".join(sorted(known)) or "none"
                    violations.append((f"args.{name}", f"unknown argument (arguments of {self.name!r}: {expected})"))
                continue
            try:
                normalised[name] = coerce(value, param.annotation)
            except TypeError as exc:
                violations.append((f"args.{name}", str(exc)))
        for param in self.params:
            if param.required and param.name not in args:
                violations.append((f"args.{param.name}", "required argument is missing"))
        if violations:
            raise InvalidRequest(f"args do not fit task type {self.name!r}", violations)
        if self.validator is not None:
            self.validator(normalised)
        return normalised


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {json.dumps(value)}"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {shown!r}"
    if value is None:
        return "null"
    names: dict[type, str] = {list: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def coerce(value: Any, annotation: Any) -> Any:
    """Check one JSON value against a type annotation; raise TypeError with a readable reason."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return value
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        coerced = coerce(value, typing.get_args(annotation)[0])
        check_constraints(coerced, annotation.__metadata__)
        return coerced
    if origin in (Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        reasons = []
        for option in options:
            if option is type(None):
                continue
            try:
                return coerce(value, option)
            except TypeError as exc:
                reasons.append(str(exc))
        raise TypeError(" or ".join(reasons) if reasons else f"expected null, got {_describe(value)}")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise TypeError(f"expected a boolean, got {_describe(value)}")
    if annotation is int:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value) or value != int(value):
                raise TypeError(f"expected an integer, got {_describe(value)}")
            if abs(value) > MAX_SAFE_INTEGER:
                raise TypeError(f"integer {value!r} is beyond ±2**53, the exact range of a JSON number")
            return int(value)
        raise TypeError(f"expected an integer, got {_describe(value)}")
    if annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise TypeError(f"expected a finite number, got {_describe(value)}")
            return float(value)
        raise TypeError(f"expected a number, got {_describe(value)}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise TypeError(f"expected a string, got {_describe(value)}")
    if annotation is list or origin is list:
        if not isinstance(value, list):
            raise TypeError(f"expected a list, got {_describe(value)}")
        (item_type,) = typing.get_args(annotation) or (Any,)
        items = []
        for index, item in enumerate(value):
            try:
                items.append(coerce(item, item_type))
            except TypeError as exc:
                raise TypeError(f"item {index}: {exc}") from None
        return items
    if annotation is dict or origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"expected an object, got {_describe(value)}")
        value_type = (typing.get_args(annotation) or (str, Any))[1]
        result = {}
        for key, item in value.items():
            try:
                result[key] = coerce(item, value_type)
            except TypeError as exc:
                raise TypeError(f"key {key!r}: {exc}") from None
        return result
    raise TypeError(f"has a type ({annotation!r}) that JSON args cannot carry")


def check_json_args(args: Any) -> int:
    """Reject args that are not plain JSON: non-finite numbers, or too large to store; else their size as JSON."""
    try:
        encoded = json.dumps(args, allow_nan=False, separators=(",", ":"))
    except ValueError:
        raise InvalidRequest(
            "args hold NaN or an infinite number, which JSON cannot carry",
            [("args", "NaN and infinite numbers are not allowed")],
        ) from None
    if len(encoded) > MAX_ARGS_BYTES:
        raise InvalidRequest(
            f"args are {len(encoded)} bytes as JSON, more than the {MAX_ARGS_BYTES} allowed",
            [("args", "too large: pass a path to a file instead")],
        )
    return len(encoded)


_SUPPORTED_SCALARS = {int, float, str, bool, list, dict, Any}


# Which base types each constraint fits.
_CONSTRAINED_TYPES: dict[type[Constraint], tuple[Any, ...]] = {
    Range: (int, float),
    Length: (str, list, dict),
    OneOf: (int, float, str, bool),
}


def _check_annotation(task_name: str, param: str, annotation: Any) -> None:
    if annotation is inspect.Parameter.empty or annotation in _SUPPORTED_SCALARS or annotation is type(None):
        return
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        base = typing.get_args(annotation)[0]
        _check_annotation(task_name, param, base)
        for constraint in annotation.__metadata__:
            fits = _CONSTRAINED_TYPES.get(type(constraint))
            if fits is not None and (typing.get_origin(base) or base) not in fits:
                raise RegistryError(
                    f"task type {task_name!r}: parameter {param!r} has {constraint!r} on {base!r}, "
                    "which it does not fit"
                )
        return
    if origin in (Union, types.UnionType, list, dict):
        for arg in typing.get_args(annotation):
            _check_annotation(task_name, param, arg)
        return
    raise RegistryError(
        f"task type {task_name!r}: parameter {param!r} has type {annotation!r}; "
        "use int, float, str, bool, list, dict, Any or an Optional of them"
    )


def describe_handler(name: str, handler: Handler) -> tuple[tuple[Param, ...], bool]:
    """Read the handler's signature into params; raise RegistryError when it cannot take JSON args."""
    try:
        signature = inspect.signature(handler)
        hints = typing.get_type_hints(handler, include_extras=True)
    except (TypeError, ValueError, NameError) as exc:
        raise RegistryError(f"task type {name!r}: cannot read the handler's signature: {exc}") from exc
    parameters = list(signature.parameters.values())
    if not parameters or parameters[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        raise RegistryError(f"task type {name!r}: the handler must take the TaskContext as its first argument")
    params = []
    accepts_extra = False
    described = read_docstring(handler).args
    for parameter in parameters[1:]:
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            accepts_extra = True
            continue
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY):
            raise RegistryError(f"task type {name!r}: parameter {parameter.name!r} cannot be passed by name")
        annotation = hints.get(parameter.name, inspect.Parameter.empty)
        _check_annotation(name, parameter.name, annotation)
        if parameter.default is not inspect.Parameter.empty and parameter.default is not None:
            try:
                coerce(parameter.default, annotation)
            except TypeError as exc:
                raise RegistryError(
                    f"task type {name!r}: the default of {parameter.name!r} does not fit its own type: {exc}"
                ) from None
        params.append(
            Param(
                parameter.name,
                annotation,
                parameter.default is inspect.Parameter.empty,
                path_role(annotation),
                None if parameter.default is inspect.Parameter.empty else parameter.default,
                described.get(parameter.name, ""),
            )
        )
    return tuple(params), accepts_extra


ISOLATIONS = ("thread", "process")


class TaskRegistry:
    """Task type name -> TaskType. Registration checks everything it can up front."""

    def __init__(self) -> None:
        self._types: dict[str, TaskType] = {}

    def register(
        self,
        name: str,
        handler: Handler,
        *,
        rerun_on_restart: bool = False,
        description: str = "",
        retry: RetryPolicy | None = None,
        validator: Callable[[dict[str, Any]], None] | None = None,
        time_limit_for: TimeLimitRule | None = None,
        isolation: str = "thread",
        max_running: int = 0,
        rate: str | None = None,
    ) -> TaskType:
        if isinstance(handler, TaskDef):  # a handle made by another registry's @task
            handler = handler.handler
        if not name or len(name) > 128:
            raise RegistryError(f"task type name {name!r} must be 1-128 characters")
        parsed_rate = _default_rate(name, max_running, rate)
        if isolation not in ISOLATIONS:
            raise RegistryError(f"task type {name!r}: isolation must be one of {', '.join(ISOLATIONS)}")
        if isolation == "process" and "<locals>" in handler.__qualname__:
            raise RegistryError(
                f"task type {name!r}: a handler run in a worker process must be importable (a module-level "
                f"function), not {handler.__qualname__}"
            )
        if name in self._types:
            existing = self._types[name].handler
            raise RegistryError(
                f"task type {name!r} is registered twice: by {existing.__module__}.{existing.__qualname__} "
                f"and by {handler.__module__}.{handler.__qualname__}"
            )
        params, accepts_extra = describe_handler(name, handler)
        task_type = TaskType(
            name=name,
            handler=handler,
            params=params,
            accepts_extra=accepts_extra,
            rerun_on_restart=rerun_on_restart,
            description=description or read_docstring(handler).summary,
            retry=retry,
            validator=validator,
            time_limit_for=time_limit_for,
            isolation=isolation,
            max_running=max_running,
            rate=parsed_rate,
        )
        self._types[name] = task_type
        return task_type

    def task(
        self,
        name: str,
        *,
        rerun_on_restart: bool = False,
        retry: RetryPolicy | None = None,
        isolation: str = "thread",
        max_running: int = 0,
        rate: str | None = None,
    ) -> Callable[[Callable[Concatenate[Any, P], R]], TaskDef[P, R]]:
        """Decorator form of register(). `max_running` and `rate` ("10/s", "100/m") make the type's default limit,
        across every server of a database (the limit "type:<name>", created or brought up to date at start).

        Returns a TaskDef: the handler, still callable as it was, and a typed handle callers submit it by
        (`resize.submit(client, width=640)`, checked by mypy against the handler's signature)."""

        def decorate(handler: Callable[Concatenate[Any, P], R]) -> TaskDef[P, R]:
            self.register(name, handler, rerun_on_restart=rerun_on_restart, retry=retry, isolation=isolation,
                          max_running=max_running, rate=rate)  # fmt: skip
            return TaskDef(name, handler)

        return decorate

    def get(self, name: str) -> TaskType | None:
        return self._types.get(name)

    def require(self, name: str) -> TaskType:
        """The task type, or InvalidRequest naming the ones that exist."""
        task_type = self._types.get(name)
        if task_type is None:
            known = ", ".join(sorted(self._types)) or "none"
            what = "task_type is required" if not name else f"unknown task type {name!r}"
            raise InvalidRequest(f"{what} (registered: {known})", [("task_type", what)])
        return task_type

    def names(self) -> list[str]:
        return sorted(self._types)

    def __iter__(self) -> Iterator[TaskType]:
        return iter(self._types.values())

    def __len__(self) -> int:
        return len(self._types)


def _default_rate(name: str, max_running: int, rate: str | None) -> Rate | None:
    """The rate of a type's default limit; RegistryError for a cap or a rate no limit could hold."""
    try:
        parsed = parse_rate(rate) if rate is not None else None
        if max_running or parsed is not None:
            check_limit(LimitSpec(f"type:{name}"[:100], task_type=name, max_running=max_running, rate=parsed))
    except (ValueError, InvalidRequest) as exc:
        raise RegistryError(f"task type {name!r}: {exc}") from None
    return parsed


# The registry that `taskservice.task` and `--tasks MODULE` fill; the server runs what it holds.
default_registry = TaskRegistry()
task = default_registry.task
