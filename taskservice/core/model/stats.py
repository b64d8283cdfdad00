"""What GetStats answers, as the boards count it: tasks by type and state, and starts and ends per minute."""

from __future__ import annotations

from dataclasses import dataclass

from taskservice.core.model.models import TaskState

# The minutes GetStats covers, the current one last.
STATS_MINUTES = 60
# Ends that count as failed in the per-minute figures (a REVOKED task was stopped, not failed).
FAILED_STATES = frozenset({TaskState.FAILURE, TaskState.TIMED_OUT, TaskState.LOST})


@dataclass(frozen=True, slots=True)
class TaskCount:
    task_type: str
    state: TaskState
    count: int


@dataclass(frozen=True, slots=True)
class MinuteCounts:
    """One minute (its start, Unix seconds): tasks whose latest attempt started in it, and tasks that ended in it."""

    start: float
    started: int = 0
    succeeded: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class LimitCount:
    """A limit's tasks now: running (in all its groups), and waiting in the groups it holds back (as this server's
    last claim found them)."""

    limit_id: str
    running: int
    waiting: int


def per_minute(started: dict[int, int], ended: dict[tuple[int, str], int], now: float) -> list[MinuteCounts]:
    """STATS_MINUTES minutes up to now's, oldest first, from counts by minute number (Unix seconds // 60)."""
    last = int(now // 60)
    failed = {state.value for state in FAILED_STATES}
    minutes = []
    for minute in range(last - STATS_MINUTES + 1, last + 1):
        minutes.append(MinuteCounts(
            float(minute * 60),
            started.get(minute, 0),
            ended.get((minute, TaskState.SUCCESS.value), 0),
            sum(n for (m, state), n in ended.items() if m == minute and state in failed),
        ))  # fmt: skip
    return minutes
