"""The commands an operator allows (`--commands FILE`), and building a command's argv from a task's args.

    [commands.checksum]
    argv = ["sha256sum", "--", "{input_fpath}"]
    [commands.compress]
    argv = ["gzip", "-{level}", "--stdout", "{input_fpath}"]
    [commands.compress.args]
    level = { type = "integer", min = 1, max = 9, default = 6 }

Every placeholder fills part of ONE argv element, so no arg can add an element; no shell is involved.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from taskservice.core.handlers.paths import CLEAR_NODES_ARG
from taskservice.core.handlers.registry import coerce
from taskservice.core.model.errors import InvalidRequest

PATH_ARGS = ("input_fpath", "output_fpath")
# Args of the `command` task type itself; a command's own args cannot take these names.
RESERVED_ARGS = frozenset({"name", *PATH_ARGS, CLEAR_NODES_ARG})
ARG_TYPES: dict[str, type] = {"string": str, "integer": int, "number": float, "boolean": bool}
# Linux refuses a single argv element past 128 KiB; a string arg is far below that.
MAX_STRING_ARG_CHARS = 32 * 1024

# One argv element: (literal text, placeholder name or None) pieces.
Element = tuple[tuple[str, str | None], ...]


class CommandConfigError(ValueError):
    """The commands file cannot be used; the message names the file, the key and what to change."""


def render(value: Any) -> str:
    """An arg value as argv text: true/false, 3 (not 3.0), 0.5, strings as they are."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return str(value)


@dataclass(frozen=True, slots=True)
class ArgSpec:
    """One declared arg of a command (a `[commands.NAME.args]` entry)."""

    name: str
    type: str
    description: str = ""
    choices: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    pattern: re.Pattern[str] | None = None
    has_default: bool = False
    default: Any = None
    allow_dash: bool = False

    def check(self, value: Any) -> Any:
        """The value in the arg's type, or TypeError/ValueError with a reason a user can act on."""
        value = coerce(value, ARG_TYPES[self.type])
        if isinstance(value, str):
            if "\x00" in value:
                raise ValueError("may not hold a NUL byte")
            if len(value) > MAX_STRING_ARG_CHARS:
                raise ValueError(f"is {len(value)} characters, more than the {MAX_STRING_ARG_CHARS} allowed")
            if self.pattern is not None and not self.pattern.fullmatch(value):
                raise ValueError(f"must match the pattern {self.pattern.pattern!r}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"must be one of: {', '.join(render(c) for c in self.choices)}")
        if self.min is not None and value < self.min:
            raise ValueError(f"must be at least {render(self.min)}")
        if self.max is not None and value > self.max:
            raise ValueError(f"must be at most {render(self.max)}")
        return value


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One allowed command: the argv template and what its args may hold."""

    name: str
    argv: tuple[Element, ...]
    args: Mapping[str, ArgSpec]
    description: str = ""
    cwd: str | None = None  # relative to the data root
    env: Mapping[str, str] | None = None
    progress: re.Pattern[str] | None = None
    # Seconds: the time limit of its tasks submitted without one, and the most a Submit may ask for.
    time_limit: float | None = None

    @property
    def placeholders(self) -> frozenset[str]:
        return frozenset(field for element in self.argv for _, field in element if field is not None)

    def bare_placeholders(self) -> Iterator[str]:
        """Placeholders that make up a whole argv element: a value there starting with '-' reads as an option."""
        for element in self.argv:
            if len(element) == 1 and element[0][0] == "" and element[0][1] is not None:
                yield element[0][1]

    def build_argv(
        self, params: Mapping[str, Any], *, input_fpath: str | None = None, output_fpath: str | None = None
    ) -> list[str]:
        """The argv for these args; InvalidRequest naming each arg that does not fit."""
        violations: list[tuple[str, str]] = []
        values: dict[str, Any] = {}
        for key, value in params.items():
            arg = self.args.get(key)
            if arg is None:
                known = ", ".join(sorted(self.args)) or "none"
                violations.append((f"args.{key}", f"unknown argument of command {self.name!r} (its args: {known})"))
                continue
            try:
                values[key] = arg.check(value)
            except (TypeError, ValueError) as exc:
                violations.append((f"args.{key}", str(exc)))
        for arg in self.args.values():
            if arg.name not in params:
                if arg.has_default:
                    values[arg.name] = arg.default
                else:
                    violations.append((f"args.{arg.name}", f"required by command {self.name!r} (no default)"))
        for path_arg, given in zip(PATH_ARGS, (input_fpath, output_fpath), strict=True):
            if path_arg in self.placeholders and given is None:
                violations.append((f"args.{path_arg}", f"required by command {self.name!r}"))
            elif path_arg not in self.placeholders and given is not None:
                violations.append((f"args.{path_arg}", f"command {self.name!r} takes no {path_arg}"))
        for name in self.bare_placeholders():
            arg = self.args.get(name)
            value = values.get(name)
            if arg is not None and not arg.allow_dash and isinstance(value, str) and value.startswith("-"):
                violations.append((f"args.{name}", "may not start with '-': the command would read it as an option"))
        if violations:
            raise InvalidRequest(f"args do not fit command {self.name!r}", violations)
        values.update(input_fpath=input_fpath, output_fpath=output_fpath)
        return ["".join(text + (render(values[field]) if field else "") for text, field in e) for e in self.argv]


class CommandCatalog(Mapping[str, CommandSpec]):
    """The commands a server allows, by name."""

    def __init__(self, commands: Mapping[str, CommandSpec], source: str = "") -> None:
        self._commands = dict(commands)
        self.source = source

    @classmethod
    def empty(cls) -> CommandCatalog:
        return cls({})

    def __getitem__(self, name: str) -> CommandSpec:
        return self._commands[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._commands)

    def __len__(self) -> int:
        return len(self._commands)

    def require(self, name: str) -> CommandSpec:
        """The command, or InvalidRequest naming args.name and the allowed names."""
        spec = self._commands.get(name)
        if spec is not None:
            return spec
        if not self._commands:
            detail = "this server allows no commands (start it with --commands FILE)"
        else:
            detail = f"not an allowed command (allowed: {', '.join(sorted(self._commands))})"
        raise InvalidRequest(f"unknown command {name!r}", [("args.name", detail)])
