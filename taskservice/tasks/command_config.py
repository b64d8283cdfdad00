"""Loading and checking the operator's commands file (`--commands FILE`), so a bad file stops the server at start.

Errors name the file and the key: `commands.toml: commands.gzip.argv[3]: placeholder {levl} is not a declared arg`.
"""

from __future__ import annotations

import dataclasses
import re
import string
import tomllib
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from taskservice.core.engine.validation import MAX_TIME_LIMIT_SECONDS, parse_duration
from taskservice.tasks.command_spec import (
    ARG_TYPES,
    PATH_ARGS,
    RESERVED_ARGS,
    ArgSpec,
    CommandCatalog,
    CommandConfigError,
    CommandSpec,
    Element,
    render,
)

COMMAND_KEYS = ("argv", "description", "cwd", "env", "progress", "time_limit", "args")
ARG_KEYS = ("type", "description", "choices", "min", "max", "pattern", "default", "allow_dash")
PROGRESS_GROUPS = frozenset({"percent", "current", "total", "message"})

_COMMAND_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def load_commands(path: str | Path) -> CommandCatalog:
    """Read and check a commands file; CommandConfigError says what is wrong and where."""
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise CommandConfigError(f"{path}: cannot read the commands file: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise CommandConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_commands(data, source=str(path))


def parse_commands(data: Mapping[str, Any], source: str = "<commands>") -> CommandCatalog:
    """Check the parsed TOML of a commands file; see load_commands()."""
    return CommandCatalog(_Parser(source).catalog(data), source)


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, why: str) -> CommandConfigError:
        return CommandConfigError(f"{self.source}: {where}: {why}")

    def table(self, value: Any, where: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, "must be a table")
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise self.fail(f"{where}.{unknown[0]}", f"unknown key (allowed: {', '.join(allowed)})")
        return value

    def mapping(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, "must be a table")
        return value

    def string(self, value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise self.fail(where, "must be a string")
        return value

    def catalog(self, data: Mapping[str, Any]) -> dict[str, CommandSpec]:
        unknown = sorted(set(data) - {"commands"})
        if unknown:
            raise self.fail(unknown[0], "unknown top-level key (the file holds [commands.NAME] tables)")
        commands = data.get("commands")
        if not isinstance(commands, dict) or not commands:
            raise self.fail("commands", "no commands defined: add a [commands.NAME] table with an argv")
        specs = {}
        for name, table in commands.items():
            if not _COMMAND_NAME.fullmatch(name):
                raise self.fail(f"commands.{name}", "a command name is 1-64 letters, digits, '_', '.', '-'")
            specs[name] = self.command(name, table)
        return specs

    def command(self, name: str, table: Any) -> CommandSpec:
        where = f"commands.{name}"
        table = self.table(table, where, COMMAND_KEYS)
        if "argv" not in table:
            raise self.fail(where, "argv is missing (a list of strings, the program first)")
        raw_argv = table["argv"]
        if not isinstance(raw_argv, list) or not raw_argv or not all(isinstance(a, str) for a in raw_argv):
            raise self.fail(f"{where}.argv", "must be a non-empty list of strings")
        argv = tuple(self.element(item, f"{where}.argv[{i}]") for i, item in enumerate(raw_argv))
        if any(field for _, field in argv[0]) or not raw_argv[0]:
            raise self.fail(f"{where}.argv[0]", "the program must be a fixed, non-empty string (no placeholders)")
        raw_args = self.mapping(table.get("args", {}), f"{where}.args")
        args = {key: self.arg(key, value, f"{where}.args.{key}") for key, value in raw_args.items()}
        spec = CommandSpec(
            name=name,
            argv=argv,
            args=args,
            description=self.string(table.get("description", ""), f"{where}.description"),
            cwd=self.cwd(table["cwd"], f"{where}.cwd") if "cwd" in table else None,
            env=self.env(table.get("env", {}), f"{where}.env"),
            progress=self.progress(table["progress"], f"{where}.progress") if "progress" in table else None,
            time_limit=self.time_limit(table["time_limit"], f"{where}.time_limit") if "time_limit" in table else None,
        )
        self.check_placeholders(spec, where)
        return spec

    def time_limit(self, value: Any, where: str) -> float:
        """A duration: seconds as a number, or text such as "90s", "10m", "2h"."""
        try:
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise ValueError('must be a number of seconds or a duration such as "10m"')
            seconds = parse_duration(value) if isinstance(value, str) else float(value)
        except ValueError as exc:
            raise self.fail(where, str(exc)) from None
        if not 0 < seconds <= MAX_TIME_LIMIT_SECONDS:
            raise self.fail(where, f"must be more than 0 and at most {MAX_TIME_LIMIT_SECONDS:.0f} seconds (366 days)")
        return seconds

    def element(self, text: str, where: str) -> Element:
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise self.fail(where, f"{exc} (write {{{{ and }}}} for literal braces)") from None
        pieces = []
        for literal, field, spec, conversion in parsed:
            if field is not None and (not _IDENTIFIER.fullmatch(field) or spec or conversion):
                raise self.fail(where, f"placeholder in {text!r} must be a plain {{name}}")
            pieces.append((literal, field))
        return tuple(pieces)

    def check_placeholders(self, spec: CommandSpec, where: str) -> None:
        for index, element in enumerate(spec.argv):
            for _, field in element:
                if field is not None and field not in spec.args and field not in PATH_ARGS:
                    declared = ", ".join([*sorted(spec.args), *PATH_ARGS])
                    raise self.fail(
                        f"{where}.argv[{index}]",
                        f"placeholder {{{field}}} is not a declared arg (declared: {declared}); "
                        f"add it under [{where}.args]",
                    )
        unused = sorted(set(spec.args) - spec.placeholders)
        if unused:
            raise self.fail(f"{where}.args.{unused[0]}", "declared but not used in argv")
        for name in set(spec.bare_placeholders()) & set(spec.args):
            arg = spec.args[name]
            dashed = [v for v in (*(arg.choices or ()), arg.default) if isinstance(v, str) and v.startswith("-")]
            if dashed and not arg.allow_dash:
                raise self.fail(f"{where}.args.{name}", f"{dashed[0]!r} starts with '-': set allow_dash = true")

    def arg(self, name: str, table: Any, where: str) -> ArgSpec:
        if not _IDENTIFIER.fullmatch(name) or name in RESERVED_ARGS:
            raise self.fail(where, f"an arg name is an identifier other than {', '.join(sorted(RESERVED_ARGS))}")
        table = self.table(table, where, ARG_KEYS)
        kind = table.get("type")
        if kind not in ARG_TYPES:
            raise self.fail(f"{where}.type", f"must be one of {', '.join(ARG_TYPES)}")
        bounds = {}
        for key in ("min", "max"):
            if key in table:
                if kind not in ("integer", "number"):
                    raise self.fail(f"{where}.{key}", "only integer and number args have bounds")
                value = table[key]
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise self.fail(f"{where}.{key}", "must be a number")
                bounds[key] = value
        if "min" in bounds and "max" in bounds and bounds["min"] > bounds["max"]:
            raise self.fail(where, "min is greater than max")
        pattern = None
        if "pattern" in table:
            if kind != "string":
                raise self.fail(f"{where}.pattern", "only string args have a pattern")
            try:
                pattern = re.compile(self.string(table["pattern"], f"{where}.pattern"))
            except re.error as exc:
                raise self.fail(f"{where}.pattern", f"not a valid regular expression: {exc}") from None
        allow_dash = table.get("allow_dash", False)
        if not isinstance(allow_dash, bool) or (allow_dash and kind != "string"):
            raise self.fail(f"{where}.allow_dash", "must be true or false, on a string arg")
        arg = ArgSpec(
            name=name,
            type=kind,
            description=self.string(table.get("description", ""), f"{where}.description"),
            min=bounds.get("min"),
            max=bounds.get("max"),
            pattern=pattern,
            allow_dash=allow_dash,
        )
        if "choices" in table:
            choices = table["choices"]
            if not isinstance(choices, list) or not choices:
                raise self.fail(f"{where}.choices", "must be a non-empty list")
            arg = dataclasses.replace(arg, choices=tuple(self.value(arg, c, f"{where}.choices") for c in choices))
        if "default" in table:
            default = self.value(arg, table["default"], f"{where}.default")
            arg = dataclasses.replace(arg, has_default=True, default=default)
        return arg

    def value(self, arg: ArgSpec, value: Any, where: str) -> Any:
        try:
            return arg.check(value)
        except (TypeError, ValueError) as exc:
            raise self.fail(where, f"{render(value)!r} does not fit the arg: {exc}") from None

    def cwd(self, value: Any, where: str) -> str:
        path = PurePosixPath(self.string(value, where))
        if not str(value) or path.is_absolute() or ".." in path.parts:
            raise self.fail(where, "must be a relative folder under the data root, without '..'")
        return str(path)

    def env(self, value: Any, where: str) -> dict[str, str]:
        table = self.mapping(value, where)
        for key, item in table.items():
            if not _IDENTIFIER.fullmatch(key):
                raise self.fail(f"{where}.{key}", "not a valid environment variable name")
            self.string(item, f"{where}.{key}")
        return dict(table)

    def progress(self, value: Any, where: str) -> re.Pattern[str]:
        try:
            pattern = re.compile(self.string(value, where))
        except re.error as exc:
            raise self.fail(where, f"not a valid regular expression: {exc}") from None
        groups = set(pattern.groupindex)
        if groups - PROGRESS_GROUPS:
            unknown = sorted(groups - PROGRESS_GROUPS)[0]
            raise self.fail(where, f"unknown group {unknown!r} (use {', '.join(sorted(PROGRESS_GROUPS))})")
        if not groups & {"percent", "current"} or ("total" in groups and "current" not in groups):
            raise self.fail(where, "needs a named group (?P<percent>...) or (?P<current>...) [with (?P<total>...)]")
        return pattern
