"""What a Submit does when a group of a limit is full, as the limit's on_full says, inside the Submit's transaction.

- REFUSE_NEWEST: a task whose group already has max_running + max_waiting unfinished tasks is refused
  (RESOURCE_EXHAUSTED, naming the limit). The count is read under the claims' lock (hold_claims), so Submits of
  several servers cannot both take the last place.
- STOP_OLDEST: the new task is queued, and the group's oldest unfinished tasks beyond max_running (counting it) are
  named to be stopped once the Submit is durable, as a Stop would (a PENDING one is revoked, a running one stops),
  with a reason naming the limit: for work where only the latest matters.
"""

from __future__ import annotations

from collections.abc import Sequence

from taskservice.core.board.base import NewTask
from taskservice.core.board.sql.queries import Cursor, Queries
from taskservice.core.model.errors import QueueFull
from taskservice.core.model.limits import LimitSpec, OnFull
from taskservice.core.model.models import Task

# At most this many of a group's older tasks are stopped by one Submit; a later one stops the rest.
MAX_STOPPED_PER_SUBMIT = 1000

Key = tuple[str, str]  # (limit id, group)


def refuse_newest(
    queries: Queries, cur: Cursor, tasks: Sequence[NewTask], specs: Sequence[LimitSpec]
) -> tuple[list[NewTask], dict[str, QueueFull]]:
    """The tasks with room in every REFUSE_NEWEST limit they fall under, and the refusals of the others by id."""
    refusing = [spec for spec in specs if spec.on_full is OnFull.REFUSE_NEWEST]
    if not refusing or not any(spec.covers(t.task_type, t.labels) for t in tasks for spec in refusing):
        return list(tasks), {}
    queries.hold_claims(cur)
    counts: dict[Key, int] = {}
    kept: list[NewTask] = []
    refused: dict[str, QueueFull] = {}
    for task in tasks:
        under = [(spec, spec.group_of(task.labels)) for spec in refusing if spec.covers(task.task_type, task.labels)]
        for spec, group in under:
            room = spec.max_running + spec.max_waiting
            key = (spec.limit_id, group)
            if key not in counts:
                counts[key] = len(queries.in_group(cur, spec, group, room + 1))
            if counts[key] >= room:
                refused[task.task_id] = _full(spec, group, counts[key])
                break
        else:
            for spec, group in under:
                counts[(spec.limit_id, group)] += 1
            kept.append(task)
    return kept, refused


def stop_oldest(
    queries: Queries, cur: Cursor, created: Sequence[Task], specs: Sequence[LimitSpec]
) -> list[tuple[str, str]]:
    """(task id, reason) of the older tasks that the new ones displace under STOP_OLDEST limits."""
    stopping = [spec for spec in specs if spec.on_full is OnFull.STOP_OLDEST]
    seen: set[Key] = set()
    displaced: list[tuple[str, str]] = []
    for task in created:
        for spec in stopping:
            group = spec.group_of(task.labels)
            if not spec.covers(task.task_type, task.labels) or (spec.limit_id, group) in seen:
                continue
            seen.add((spec.limit_id, group))
            members = queries.in_group(cur, spec, group, spec.max_running + MAX_STOPPED_PER_SUBMIT)
            reason = f"stopped by limit {spec.limit_id!r}: newer tasks{_of(spec, group)} took its place"
            displaced += [(task_id, reason) for task_id, state in members[spec.max_running :] if state != "STOPPING"]
    return displaced


def _full(spec: LimitSpec, group: str, count: int) -> QueueFull:
    return QueueFull(
        f"limit {spec.limit_id!r} is full{_of(spec, group)}: {count} tasks running or waiting, at most "
        f"{spec.max_running} running and {spec.max_waiting} waiting; try again once some have ended"
    )


def _of(spec: LimitSpec, group: str) -> str:
    return f" of {spec.key_label}={group}" if spec.key_label else ""
