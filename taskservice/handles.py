"""Typed handles of task types: what `@task` returns (`TaskDef`) and one submission of it (`TaskCall`).

A handler decorated with `@task("resize")` stays callable as the function it is, and becomes a handle a caller
submits by: `resize.submit(client, width=640)` is checked by mypy against the handler's own signature (ParamSpec)
and returns a `TaskRun[R]`, `R` being what the handler returns. The caller needs the handler's module importable,
not a server. Plain Python: neither grpc nor the engine is imported here, so both the client and the engine use it.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, overload

if TYPE_CHECKING:
    from taskservice.client.async_client import AsyncTaskClient
    from taskservice.client.async_run import AsyncTaskRun
    from taskservice.client.sync_client import TaskClient
    from taskservice.client.sync_run import TaskRun

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

# What Submit takes beside the args (TaskClient.submit's keywords), for with_options().
SUBMIT_OPTIONS = ("task_id", "time_limit", "priority", "labels", "not_before", "delay", "retention", "after")


@dataclass(frozen=True)
class TaskCall(Generic[R_co]):
    """One submission of a task type, made by a handle's bind(): the args by name, the Submit options, and the type
    the result is decoded into (the handler's return annotation)."""

    task_type: str
    args: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    result_type: Any = Any


@dataclass(frozen=True)
class SubmitOptions:
    """The Submit options a handle carries (see TaskClient.submit); None and () mean the server's defaults."""

    task_id: str | None = None
    time_limit: float | None = None
    priority: int = 0
    labels: Mapping[str, str] | None = None
    not_before: datetime | None = None
    delay: float | None = None
    retention: float | None = None
    after: tuple[str, ...] = ()

    def as_keywords(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SUBMIT_OPTIONS}


class TaskDef(Generic[P, R]):
    """A task type's handler, as `@task` returns it: still callable as the handler, and a typed handle.

    `P` is the handler's parameters after the TaskContext, `R` what it returns.
    """

    def __init__(
        self, name: str, handler: Callable[Concatenate[Any, P], R], options: SubmitOptions | None = None
    ) -> None:
        self.name = name
        self.handler = handler
        self.options = options or SubmitOptions()
        functools.update_wrapper(self, handler)

    def __call__(self, ctx: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.handler(ctx, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<task {self.name!r}: {self.handler.__module__}.{self.handler.__qualname__}>"

    def with_options(
        self,
        *,
        task_id: str | None = None,
        time_limit: float | None = None,
        priority: int | None = None,
        labels: Mapping[str, str] | None = None,
        not_before: datetime | None = None,
        delay: float | None = None,
        retention: float | None = None,
        after: Iterable[str] | None = None,
    ) -> TaskDef[P, R]:
        """The same handle with Submit options set (those not given keep theirs): `task_id` (idempotent Submit),
        `time_limit`, `priority`, `labels`, `not_before` or `delay`, `retention`, `after` (ids that must succeed
        first)."""
        given: dict[str, Any] = {"task_id": task_id, "time_limit": time_limit, "priority": priority, "labels": labels,
                 "not_before": not_before, "delay": delay, "retention": retention,
                 "after": None if after is None else tuple(after)}  # fmt: skip
        if isinstance(after, str):
            raise TypeError("after takes a list of task ids, not one string")
        changed = replace(self.options, **{name: value for name, value in given.items() if value is not None})
        return TaskDef(self.name, self.handler, changed)

    def bind(self, *args: P.args, **kwargs: P.kwargs) -> TaskCall[R]:
        """This task with these args, ready to submit (client.submit(call), or many with client.submit_batch)."""
        return TaskCall(self.name, self.args_by_name(*args, **kwargs), self.options.as_keywords(), self.result_type)

    def args_by_name(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The args as the wire carries them, by name; TypeError as Python raises it for a call that does not fit."""
        try:
            bound = _signature(self.handler).bind(None, *args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"task type {self.name!r}: {exc} (its handler is {self.handler.__qualname__})") from None
        named = dict(bound.arguments)
        named.pop(next(iter(named)))  # the TaskContext
        extra = named.pop(_var_keyword(self.handler), {}) if _var_keyword(self.handler) else {}
        return {**named, **extra}

    @property
    def result_type(self) -> Any:
        """The handler's return annotation (Any when it has none)."""
        return _return_type(self.handler)

    @overload
    def submit(self, client: TaskClient, /, *args: P.args, **kwargs: P.kwargs) -> TaskRun[R]: ...
    @overload
    def submit(self, client: AsyncTaskClient, /, *args: P.args, **kwargs: P.kwargs) -> Awaitable[AsyncTaskRun[R]]: ...
    def submit(
        self, client: TaskClient | AsyncTaskClient, /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskRun[R] | Awaitable[AsyncTaskRun[R]]:
        """Submit this task with these args: a TaskRun with a sync client, an awaitable AsyncTaskRun with an async one.
        The args are checked by the server too (a mistyped one raises InvalidArgument)."""
        return client.submit(self.bind(*args, **kwargs))


@functools.cache
def _signature(handler: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(handler)


@functools.cache
def _var_keyword(handler: Callable[..., Any]) -> str:
    return next((p.name for p in _signature(handler).parameters.values() if p.kind is p.VAR_KEYWORD), "")


@functools.cache
def _return_type(handler: Callable[..., Any]) -> Any:
    try:
        hints = typing.get_type_hints(handler, include_extras=True)
    except (NameError, TypeError):  # an annotation only a type checker can read
        return Any
    return hints.get("return", Any)
