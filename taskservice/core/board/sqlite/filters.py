"""ListTasks' filters (and those of the bulk stop and delete) as SQLite conditions over the tasks table."""

from __future__ import annotations

from typing import Any

from taskservice.core.board.sql.listing import common_conditions
from taskservice.core.board.sqlite.limit_queries import covers_sql
from taskservice.core.model.models import TaskFilter, ascii_lower


def filter_sql(task_filter: TaskFilter) -> tuple[list[str], list[Any]]:
    """The WHERE conditions of a ListTasks filter (never none), and their parameters."""
    common, params = common_conditions(task_filter, "?")
    where = ["1", *common]
    if task_filter.states:
        where.append(f"state IN ({', '.join('?' * len(task_filter.states))})")
        params.extend(sorted(s.value for s in task_filter.states))
    if task_filter.depends_on:
        where.append("after_ids IS NOT NULL AND EXISTS (SELECT 1 FROM json_each(tasks.after_ids) WHERE value = ?)")
        params.append(task_filter.depends_on)
    if task_filter.search:
        # SQLite's lower() folds ASCII letters only, as ascii_lower() does; args are stored as ASCII JSON.
        where.append(
            "(substr(task_id, 1, ?) = ? OR instr(lower(args), ?) > 0"
            " OR instr(lower(COALESCE(error_type, '') || char(10) || COALESCE(error_message, '')), ?) > 0)"
        )
        needle = ascii_lower(task_filter.search)
        params.extend((len(task_filter.search), task_filter.search, needle, needle))
    for key, value in task_filter.labels:
        where.append("EXISTS (SELECT 1 FROM task_labels l WHERE l.seq = tasks.seq AND l.key = ? AND l.value = ?)")
        params.extend((key, value))
    if task_filter.waiting_for_limit:
        if task_filter.held_back is None:
            where.append("0")  # the limit holds nothing back
        else:
            covered, more = covers_sql(*task_filter.held_back)
            where.append(f"state = 'PENDING' AND {covered}")
            params.extend(more)
    return where, params
