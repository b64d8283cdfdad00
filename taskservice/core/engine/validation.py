"""Checks on the fields of a Submit that do not depend on the task type."""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import secrets
import threading
from collections.abc import Sequence
from typing import Any

from taskservice.core.model.errors import InvalidRequest

TASK_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Longer than any job anyone should leave unattended; also keeps deadlines far from float trouble.
MAX_TIME_LIMIT_SECONDS = 366 * 24 * 3600.0
# Run later: how far ahead a task may be scheduled, and how far in the past a not_before still means "now".
MAX_RUN_LATER_SECONDS = 366 * 24 * 3600.0
NOT_BEFORE_PAST_TOLERANCE = 60.0
MAX_RETENTION_SECONDS = 3660 * 24 * 3600.0
# Labels are for filtering and grouping, indexed and held with every queued task: small ones (as Kubernetes keeps
# its keys to 63 characters), not a place for data.
MAX_LABELS = 32
MAX_LABEL_KEY = 63
MAX_LABEL_VALUE = 256
MAX_LABELS_BYTES = 4096  # keys and values together, UTF-8
MAX_STOP_REASON = 1024
# How many tasks one task may wait for (Submit's `after`).
MAX_AFTER = 100


# Control characters (C0, DEL, C1) and Unicode's line and paragraph separators: in a line of a log, each would
# let a user's text (a stop reason, an id) start a line of its own that looks like the server's.
_CONTROLS = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
_CONTROLS.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", 0x2028: "\\u2028", 0x2029: "\\u2029"})


def one_line(text: str) -> str:
    """`text` with its control characters escaped (a newline becomes the two characters \\n): one log line."""
    return text.translate(_CONTROLS)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str) -> float:
    """'250ms', '30s', '5m', '1h', '7d' or plain seconds ('90', '1.5') -> seconds; ValueError otherwise."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration: use e.g. 250ms, 30s, 5m, 1h, 7d or 90")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def check_task_id(task_id: str, field: str = "task_id") -> None:
    if not TASK_ID_PATTERN.fullmatch(task_id):
        shown = task_id if len(task_id) <= 40 else task_id[:37] + "..."
        raise InvalidRequest(
            f"invalid task id {shown!r}",
            [(field, "must be 1-128 characters from A-Z a-z 0-9 . _ : -")],
        )


# Task ids need to be unique, not secret (any client with access may list them): 128 bits of a generator seeded
# from the system's, rather than a system call per id.
_ids = random.Random(secrets.randbits(256))
_ids_lock = threading.Lock()


def new_task_id() -> str:
    """Unique, URL-safe, and never starting with '-' (which shells and CLIs take for an option): 128 random bits."""
    with _ids_lock:
        bits = _ids.getrandbits(128)
    return f"{bits:032x}"


def check_time_limit(seconds: float | None) -> None:
    if seconds is None:
        return
    if not math.isfinite(seconds) or seconds <= 0 or seconds > MAX_TIME_LIMIT_SECONDS:
        raise InvalidRequest(
            f"time limit of {seconds} seconds is out of range",
            [
                (
                    "time_limit",
                    f"must be more than 0 and at most {MAX_TIME_LIMIT_SECONDS:.0f} seconds (366 days)",
                )
            ],
        )


def run_after_for(not_before: float | None, delay: float | None, now: float) -> float | None:
    """When a task submitted with `not_before` (Unix seconds) or `delay` (seconds) may first be claimed; None:
    at once. InvalidRequest for both at once, a negative or huge delay, or a not_before far in the past (most
    likely a clock or a unit gone wrong: run at once only within NOT_BEFORE_PAST_TOLERANCE)."""
    if not_before is not None and delay is not None:
        raise InvalidRequest(
            "both not_before and delay are set", [("not_before", "give not_before or delay, not both")]
        )
    if delay is not None:
        if not math.isfinite(delay) or not 0 <= delay <= MAX_RUN_LATER_SECONDS:
            raise InvalidRequest(
                f"delay of {delay} seconds is out of range",
                [("delay", f"must be 0 to {MAX_RUN_LATER_SECONDS:.0f} seconds (366 days)")],
            )
        return now + delay if delay > 0 else None
    if not_before is None:
        return None
    if not math.isfinite(not_before) or not_before < now - NOT_BEFORE_PAST_TOLERANCE:
        raise InvalidRequest(
            "not_before is in the past",
            [("not_before", f"must be later than {NOT_BEFORE_PAST_TOLERANCE:.0f} s ago (the server's clock)")],
        )
    if not_before > now + MAX_RUN_LATER_SECONDS:
        raise InvalidRequest(
            "not_before is too far ahead", [("not_before", "must be within 366 days of now (the server's clock)")]
        )
    return not_before if not_before > now else None


def check_retention(seconds: float | None) -> None:
    """A task's own retention: 0 (keep for ever) to MAX_RETENTION_SECONDS."""
    if seconds is not None and (not math.isfinite(seconds) or not 0 <= seconds <= MAX_RETENTION_SECONDS):
        raise InvalidRequest(
            f"retention of {seconds} seconds is out of range",
            [("retention", "must be 0 (keep for ever) to 3660 days; leave it unset for the server's --retention")],
        )


def check_after(after: Sequence[str], task_id: str) -> tuple[str, ...]:
    """The ids a task waits for: valid ids, at most MAX_AFTER, none twice (kept once, in order), not its own."""
    if len(after) > MAX_AFTER:
        raise InvalidRequest("too many dependencies", [("after", f"at most {MAX_AFTER} task ids, got {len(after)}")])
    for index, dep in enumerate(after):
        check_task_id(dep, f"after[{index}]")
    if task_id and task_id in after:
        raise InvalidRequest("a task cannot wait for itself", [("after", f"lists the task's own id {task_id!r}")])
    return tuple(dict.fromkeys(after))


def label_bytes(labels: dict[str, str]) -> int:
    """What labels take: their keys and values, UTF-8."""
    return sum(len(key.encode("utf-8", "surrogatepass")) + len(value.encode("utf-8", "surrogatepass"))
               for key, value in labels.items())  # fmt: skip


def check_labels(labels: dict[str, str]) -> None:
    violations = []
    if len(labels) > MAX_LABELS:
        violations.append(("labels", f"at most {MAX_LABELS} labels, got {len(labels)}"))
    for key, value in labels.items():
        if not key or len(key) > MAX_LABEL_KEY:
            violations.append((f"labels[{key[:40]!r}]", f"key must be 1-{MAX_LABEL_KEY} characters"))
        if len(value) > MAX_LABEL_VALUE:
            violations.append((f"labels[{key[:40]!r}]", f"value must be at most {MAX_LABEL_VALUE} characters"))
    total = label_bytes(labels)
    if total > MAX_LABELS_BYTES:
        violations.append(("labels", f"keys and values take {total} bytes together, at most {MAX_LABELS_BYTES}"))
    if violations:
        raise InvalidRequest("invalid labels", violations)


def request_digest(
    task_type: str,
    args: dict[str, Any],
    time_limit: float | None,
    priority: int,
    labels: dict[str, str],
    when: tuple[str, float] | None = None,
    retention: float | None = None,
    after: Sequence[str] = (),
) -> str:
    """A fingerprint of what was asked, so a retried Submit can be told from a different one.

    Numbers are compared as JSON numbers: 1 and 1.0 are the same request (a Struct carries both as 1.0). `when`
    is the run-later field as sent ("not_before" or "delay", and its value): a delay sent again is the same
    request, though it gives another time. `when`, `retention` and `after` are left out when unset, so that digests
    stored before they existed still match.
    """
    fields: list[Any] = [task_type, args, time_limit, priority, labels]
    if when is not None:
        fields.append(list(when))
    if retention is not None:
        fields.append({"retention": retention})
    if after:
        fields.append({"after": list(after)})
    canonical = json.dumps(
        _integral_floats_as_ints(fields),
        sort_keys=True,
        separators=(",", ":"),
        allow_nan=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _integral_floats_as_ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _integral_floats_as_ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral_floats_as_ints(item) for item in value]
    return value
