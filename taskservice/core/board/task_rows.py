"""A task from a database row: SQLite's and PostgreSQL's boards select the same columns in the same order."""

from __future__ import annotations

import json
from typing import Any

from taskservice.core.model.models import Progress, Task, TaskError, TaskState
from taskservice.telemetry.context import load_carrier

# How many columns a task row has; a query may select more after them (the board's own).
TASK_ROW_COLUMNS = 29


def task_from_row(row: Any) -> Task:
    """`row`: submit order, task id, type, args (JSON text), state, priority, labels (JSON text), time limit,
    submitted, started, ended, attempt, the five progress columns, result (JSON text), the three error columns,
    event sequence, request digest, run after, retention, after (JSON text or NULL), trace context (JSON text
    or NULL), parent id (or NULL), detached."""
    (
        order, task_id, task_type, args, state, priority, labels, time_limit, submitted_at, started_at, ended_at,
        attempt, percent, message, current, total, updated_at, result, error_type, error_message, error_traceback,
        sequence, digest, run_after, retention, after, trace_context, parent_id, detached,
    ) = row[:TASK_ROW_COLUMNS]  # fmt: skip
    return Task(
        task_id=task_id,
        task_type=task_type,
        args=json.loads(args),
        state=TaskState(state),
        submitted_at=submitted_at,
        priority=priority,
        labels={} if labels == "{}" else json.loads(labels),
        time_limit=time_limit,
        progress=Progress(percent, message, current, total, updated_at),
        result=None if result is None else json.loads(result),
        error=None if error_type is None else TaskError(error_type, error_message or "", error_traceback or ""),
        started_at=started_at,
        ended_at=ended_at,
        attempt=attempt,
        submit_order=order,
        event_sequence=sequence,
        request_digest=digest,
        run_after=run_after,
        retention=retention,
        after=() if after is None else tuple(json.loads(after)),
        trace_context=load_carrier(trace_context),
        parent_id=parent_id or "",
        detached=bool(detached),
    )
