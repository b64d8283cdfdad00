"""ListTasks' order and keyset paging in SQL both dialects read (see model/listing.py for the rules).

The key is an expression over the task row; tasks without it sort last in either direction, and the submission
order breaks ties in the key's direction. A page after (key k, order s) is every row that sorts after that one.
`mark` is the dialect's parameter placeholder ("?" or "%s").
"""

from __future__ import annotations

import math
from typing import Any

from taskservice.core.model.listing import ListPosition, SortKey, TaskOrder
from taskservice.core.model.models import TaskFilter


def common_conditions(task_filter: TaskFilter, mark: str) -> tuple[list[str], list[Any]]:
    """The conditions of a ListTasks filter both dialects write alike (type, parent, scheduled, submission time)."""
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("task_type", task_filter.task_type), ("parent_id", task_filter.parent_id)):
        if value:
            where.append(f"{column} = {mark}")
            params.append(value)
    if task_filter.scheduled:
        where.append("state = 'PENDING' AND run_after IS NOT NULL")
    for condition, moment in (("submitted_at >=", task_filter.submitted_after),
                              ("submitted_at <", task_filter.submitted_before)):  # fmt: skip
        if moment is not None:
            where.append(f"{condition} {mark}")
            params.append(moment)
    return where, params


def key_sql(order: TaskOrder, seq: str) -> str:
    """The sort key of a row."""
    if order.key is SortKey.SUBMITTED:
        return seq
    if order.key is SortKey.DURATION:
        # A running task's duration runs to the listing's fixed now: a number written into the statement (a float's
        # repr is an SQL literal in both dialects), so that the ORDER BY and the condition need no parameters.
        now = order.now
        if now is None or not math.isfinite(now):
            raise ValueError("a listing by duration needs a finite now")
        return f"(COALESCE(ended_at, {now!r}) - started_at)"
    column: str = order.key.value
    return column


def order_sql(order: TaskOrder, after: ListPosition | None, seq: str, mark: str) -> tuple[str, list[Any], str]:
    """The condition for rows past `after` ("" on the first page), its parameters, and the ORDER BY list."""
    key = key_sql(order, seq)
    direction = "DESC" if order.descending else "ASC"
    past = "<" if order.descending else ">"
    if order.key is SortKey.SUBMITTED:
        past_after = "" if after is None else f"{seq} {past} {mark}"
        return past_after, [] if after is None else [after.submit_order], f"{seq} {direction}"
    order_by = f"({key} IS NULL), {key} {direction}, {seq} {direction}"
    if after is None:
        return "", [], order_by
    if after.key is None:
        return f"({key} IS NULL AND {seq} {past} {mark})", [after.submit_order], order_by
    condition = f"({key} {past} {mark} OR ({key} = {mark} AND {seq} {past} {mark}) OR {key} IS NULL)"
    return condition, [after.key, after.key, after.submit_order], order_by
