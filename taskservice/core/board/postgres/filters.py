"""ListTasks' filters (and those of the bulk stop and delete) as PostgreSQL conditions over the tasks table."""

from __future__ import annotations

from typing import Any

from taskservice.core.board.postgres.limit_queries import covers_sql
from taskservice.core.board.sql.listing import common_conditions
from taskservice.core.board.sql.rows import dumps
from taskservice.core.model.models import TaskFilter, ascii_lower

_ASCII_LOWER = "translate({}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')"


def filter_sql(task_filter: TaskFilter) -> tuple[list[str], list[Any]]:
    """The WHERE conditions of a ListTasks filter, and their parameters."""
    common, params = common_conditions(task_filter, "%s")
    where = ["TRUE", *common]
    if task_filter.states:
        where.append("state = ANY(%s)")
        params.append(sorted(s.value for s in task_filter.states))
    if task_filter.depends_on:
        where.append("after_ids ? %s")
        params.append(task_filter.depends_on)
    if task_filter.search:
        # ASCII letters folded only, as SQLite (and ascii_lower()) fold them.
        errors = "COALESCE(error_type, '') || chr(10) || COALESCE(error_message, '')"
        where.append(
            f"(starts_with(task_id, %s) OR strpos({_ASCII_LOWER.format('args::text')}, %s) > 0"
            f" OR strpos({_ASCII_LOWER.format(errors)}, %s) > 0)"
        )
        needle = ascii_lower(task_filter.search)
        params.extend((task_filter.search, needle, needle))
    if task_filter.labels:
        where.append("labels @> %s::jsonb")
        params.append(dumps(dict(task_filter.labels)))
    if task_filter.waiting_for_limit:
        if task_filter.held_back is None:
            where.append("FALSE")  # the limit holds nothing back
        else:
            covered, more = covers_sql(*task_filter.held_back)
            where.append(f"state = 'PENDING' AND {covered}")
            params.extend(more)
    return where, params
