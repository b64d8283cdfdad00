"""What both dialects write the same way: JSON as text, how many state changes a row keeps, the values of an end
or of progress in the order of the statements that write them, and how a claim leaves out the held-back groups."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from typing import Any

from taskservice.core.board.base import RETRYABLE_STATES, Claim
from taskservice.core.board.sql.queries import HeldBack
from taskservice.core.model.limits import LimitSpec
from taskservice.core.model.models import Progress, Task

# How many state changes a row remembers for the watchers of other servers (its `transitions`).
TRANSITIONS_KEPT = 8
RETRYABLE = sorted(state.value for state in RETRYABLE_STATES)


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def end_row(claim: Claim, final: Task) -> tuple[Any, ...]:
    """An end's values: id, attempt, node, state, result, error type, message, traceback, ended, the five progress
    values, sequence, started."""
    p, e = final.progress, final.error
    return (
        claim.task_id, claim.attempt, claim.node, final.state.value,
        None if final.result is None else dumps(final.result),
        e.type if e else None, e.message if e else None, e.traceback if e else None,
        final.ended_at, p.percent, p.message, p.current, p.total, p.updated_at, final.event_sequence,
        final.started_at,
    )  # fmt: skip


def progress_row(claim: Claim, progress: Progress, sequence: int) -> tuple[Any, ...]:
    """Progress's values: id, node, attempt, the five progress values, sequence."""
    p = progress
    return (claim.task_id, claim.node, claim.attempt, p.percent, p.message, p.current, p.total, p.updated_at, sequence)


def held_back_sql(
    held_back: Sequence[HeldBack], covers: Callable[[LimitSpec, Collection[str] | None], tuple[str, list[Any]]]
) -> tuple[str, list[Any]]:
    """Conditions that leave out the tasks of the groups that may not start one more (`covers`: the dialect's
    condition of the tasks a limit covers in some groups), and their parameters."""
    sql: list[str] = []
    params: list[Any] = []
    for spec, groups in held_back:
        covered, more = covers(spec, groups)
        sql.append(f" AND NOT ({covered})")
        params += more
    return "".join(sql), params
