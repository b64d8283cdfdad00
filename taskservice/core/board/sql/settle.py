"""What an end does to the tasks that wait for it (see dependencies.py for what dependencies mean), inside the
transaction that writes the end: release the dependents of a success, revoke those of any other end, down the
chain. Written once above the dialects' statements."""

from __future__ import annotations

from collections.abc import Sequence

from taskservice.core.board.dependencies import failure_of
from taskservice.core.board.sql.queries import Cursor, Queries
from taskservice.core.model.models import Task, TaskState

Cascade = list[tuple[Task, TaskState]]
# What settle() found: the tasks it revoked (each with the state it had), and whether any stopped waiting.
Settled = tuple[Cascade, bool]


def settle(queries: Queries, cur: Cursor, ended: Sequence[Task], now: float) -> Settled:
    succeeded = [task.task_id for task in ended if task.state is TaskState.SUCCESS]
    released = queries.release(cur, succeeded) if succeeded else False
    cascade: Cascade = []
    failed = {task.task_id: task for task in ended if task.state is not TaskState.SUCCESS}
    while failed:
        doomed = queries.take_waits(cur, list(failed))
        if not doomed:
            break
        revoked = queries.revoke_waiting(cur, [(task_id, failure_of(failed[dep])) for task_id, dep in doomed], now)
        queries.stop_waiting(cur, [task.task_id for task in revoked])
        cascade.extend((task, TaskState.PENDING) for task in revoked)
        failed = {task.task_id: task for task in revoked}
    return cascade, released
