"""Constraints a handler's signature carries, checked at Submit with its types:

    def sleep(ctx, *, seconds: Annotated[float, Range(0, 86_400)]) -> dict: ...
    def checksum(ctx, *, algorithm: Annotated[str, OneOf("sha256", "md5")] = "sha256") -> dict: ...
    def tag(ctx, *, name: Annotated[str, Length(1, 64)]) -> str: ...

A request whose args break one is INVALID_ARGUMENT naming the arg, before anything is stored, instead of a task
that fails (or succeeds absurdly) when it runs.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import Any


class Constraint(abc.ABC):
    """Base of the constraints (a handler's module may define its own); check() raises TypeError saying what the
    value must be."""

    @abc.abstractmethod
    def check(self, value: Any) -> None: ...


def _number(value: float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True, slots=True)
class Range(Constraint):
    """A number from `min` to `max`, both included; None leaves that side open."""

    min: float | None = None
    max: float | None = None

    def __post_init__(self) -> None:
        for bound in (self.min, self.max):
            if bound is not None and (isinstance(bound, bool) or not math.isfinite(bound)):
                raise ValueError(f"Range bounds must be finite numbers, got {bound!r}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"Range({self.min}, {self.max}): min is above max")

    def check(self, value: Any) -> None:
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            raise TypeError(f"must be {self.describe()}, got {_number(value)}")

    def describe(self) -> str:
        if self.min is not None and self.max is not None:
            return f"from {_number(self.min)} to {_number(self.max)}"
        if self.min is not None:
            return f"at least {_number(self.min)}"
        return f"at most {_number(self.max)}" if self.max is not None else "any number"


@dataclass(frozen=True, slots=True, init=False)
class OneOf(Constraint):
    """One of the listed values."""

    choices: tuple[Any, ...]

    def __init__(self, *choices: Any) -> None:
        if not choices:
            raise ValueError("OneOf needs at least one choice")
        object.__setattr__(self, "choices", choices)

    def check(self, value: Any) -> None:
        if value not in self.choices:
            shown = value if not isinstance(value, str) or len(value) <= 40 else value[:37] + "..."
            raise TypeError(f"must be one of {', '.join(map(repr, self.choices))}, got {shown!r}")


@dataclass(frozen=True, slots=True)
class Length(Constraint):
    """A string, list or object with `min` to `max` characters or items."""

    min: int = 0
    max: int | None = None

    def check(self, value: Any) -> None:
        size = len(value)
        if size < self.min or (self.max is not None and size > self.max):
            most = f" and at most {self.max}" if self.max is not None else ""
            raise TypeError(f"must have at least {self.min}{most} characters or items, has {size}")


def check_constraints(value: Any, metadata: tuple[Any, ...]) -> None:
    """Apply every Constraint among an Annotated type's metadata to a value already of the right type."""
    for item in metadata:
        if isinstance(item, Constraint) and value is not None:
            item.check(value)
