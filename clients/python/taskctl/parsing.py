"""Parsing of command-line values: durations, key=value pairs and task args."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# One or more <number><unit> parts, e.g. 250ms, 30s, 1h30m, 1.5h; a bare number means seconds.
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h|d)")
_BARE = re.compile(r"\d+(?:\.\d*)?|\.\d+")


def parse_time(text: str) -> datetime:
    """An ISO 8601 time, e.g. 2026-12-01T02:00:00Z or 2026-12-01 03:00+01:00; without a zone, this machine's."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not a time: {text!r} (use ISO 8601, e.g. 2026-12-01T02:00:00Z)") from None
    return moment if moment.tzinfo is not None else moment.astimezone()


def parse_duration(text: str) -> float:
    """Seconds in `text`: 90, 1.5, 250ms, 30s, 5m, 1h, 2d or combinations such as 1h30m."""
    s = text.strip().lower()
    if _BARE.fullmatch(s):
        seconds = float(s)
    else:
        pos, seconds = 0, 0.0
        for match in _PART.finditer(s):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            pos = match.end()
        if pos != len(s) or not s:
            raise ValueError(f"invalid duration {text!r} (use e.g. 90, 250ms, 30s, 5m, 1h, 1h30m)")
    if not math.isfinite(seconds):
        raise ValueError(f"invalid duration {text!r}")
    return seconds


def split_key_value(text: str) -> tuple[str, str]:
    """`key=value` as (key, value); the value may contain '=' and may be empty."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def parse_arg_value(text: str) -> Any:
    """A --arg value: JSON when it parses (20 -> 20, true -> True, [1,2] -> list), else the string."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    # NaN and Infinity parse as JSON in Python but are no JSON a Struct can carry: keep the text.
    if isinstance(value, float) and not math.isfinite(value):
        return text
    return value


# `--arg-str KEY=VALUE` lands among the --arg pairs with this prefix: its value stays a string as typed.
STRING_ARG_PREFIX = "\x00str:"


def build_args(args_json: str | None, pairs: Iterable[str]) -> dict[str, Any]:
    """Task args: the --args-json object, with each --arg KEY=VALUE (and --arg-str) merged over it, in order."""
    args: dict[str, Any] = {}
    if args_json:
        try:
            loaded = json.loads(args_json)
        except ValueError as err:
            raise ValueError(f"--args-json is not valid JSON: {err}") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"--args-json must be a JSON object, got {type(loaded).__name__}")
        args.update(loaded)
    for pair in pairs:
        as_text = pair.startswith(STRING_ARG_PREFIX)
        key, value = split_key_value(pair.removeprefix(STRING_ARG_PREFIX))
        args[key] = value if as_text else parse_arg_value(value)
    return args


def build_labels(pairs: Iterable[str]) -> dict[str, str]:
    """Labels from --label KEY=VALUE options; values stay strings."""
    return dict(split_key_value(pair) for pair in pairs)


_BATCH_KEYS = frozenset({"task_type", "args", "task_id", "time_limit", "priority", "labels", "after"})


def batch_line(line: str, number: int) -> dict[str, Any]:
    """One task of a `submit --from-file` JSON Lines file, as keyword args of submit_request().

    Keys: task_type (required), args, task_id, time_limit (seconds, or "30s"/"5m"), priority, labels, after (a
    list of task ids, e.g. of earlier lines).
    """
    try:
        item = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"line {number}: not JSON ({err.msg})") from None
    if not isinstance(item, dict) or not isinstance(item.get("task_type"), str):
        raise ValueError(f'line {number}: expected an object with "task_type", e.g. {{"task_type": "demo"}}')
    unknown = sorted(set(item) - _BATCH_KEYS)
    if unknown:
        raise ValueError(
            f"line {number}: unknown keys {', '.join(unknown)} (allowed: {', '.join(sorted(_BATCH_KEYS))})"
        )
    after = item.get("after", [])
    if not isinstance(after, list) or not all(isinstance(dep, str) for dep in after):
        raise ValueError(f'line {number}: "after" must be a list of task ids, e.g. ["resize-1"]')
    limit = item.get("time_limit")
    if isinstance(limit, str):
        item["time_limit"] = parse_duration(limit)
    return item
