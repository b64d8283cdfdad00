"""A task's stored history: each state change and a sample of its progress, with their times, as the boards write
them in the transaction of each change (GetTaskHistory)."""

from __future__ import annotations

from dataclasses import dataclass

from taskservice.core.model.models import TaskState

# A progress sample is kept each time a run's progress passes another tenth of the way.
PROGRESS_STEP_PERCENT = 10


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    at: float
    state: TaskState
    attempt: int
    # A progress sample (the state unchanged): its percent and message; None for a state change.
    percent: float | None = None
    message: str = ""
