"""What a submission is answered: the answers of one submit() collected in order, a Submit joining another of
the same id still on its way to disk, and the errors a board refuses a task with."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from taskservice.core.board.base import Answer, NewTask, SubmitThen
from taskservice.core.engine.validation import label_bytes
from taskservice.core.model.errors import QueueFull, StoreUnavailable, TaskConflict, TaskServiceError
from taskservice.core.model.models import SubmitOutcome, Task


def conflict(existing: Task) -> TaskConflict:
    return TaskConflict(
        f"task id {existing.task_id!r} is taken by a {existing.task_type!r} task submitted with a different "
        "request; choose another id, or send exactly the same request to get that task"
    )


def as_answer(error: BaseException) -> TaskServiceError:
    return error if isinstance(error, TaskServiceError) else StoreUnavailable(str(error))


class Answers:
    """The answers of one submit(), in order; `then` is called once the last one is in."""

    def __init__(self, count: int, then: SubmitThen) -> None:
        self._answers: list[Answer | None] = [None] * count
        self._missing = count
        self._lock = threading.Lock()
        self._then = then

    def fill(self, index: int, answer: Answer) -> None:
        self.fill_many([(index, answer)])

    def fill_many(self, answers: Sequence[tuple[int, Answer]]) -> None:
        for index, answer in answers:
            self._answers[index] = answer
        with self._lock:
            self._missing -= len(answers)
            complete = self._missing == 0
        if complete:
            self._then(self._answers)  # type: ignore[arg-type]


@dataclass(eq=False, slots=True)
class Inflight:
    """A new task whose row is being committed; a Submit of the same id meanwhile waits for its outcome."""

    task: Task
    size: int = 0  # task_bytes() of it
    followers: list[Callable[[Answer], None]] = field(default_factory=list)


def not_created(answer: Answer) -> Answer:
    return SubmitOutcome(answer.task, created=False) if isinstance(answer, SubmitOutcome) else answer


def queue_full(queued: int, limit: int) -> QueueFull:
    return QueueFull(f"the queue holds {queued} tasks, its limit (--max-queue {limit}); retry later")


# What the args and labels of queued tasks may take in all (--max-queue-bytes).
DEFAULT_MAX_QUEUE_BYTES = 2**30


def task_bytes(args: dict[str, Any], labels: dict[str, str]) -> int:
    """What a queued task's args (as JSON, as admission measures them) and labels take: the part a user decides.
    A Submit carries it measured (NewTask.size); tasks read back from storage are measured here."""
    return len(json.dumps(args, separators=(",", ":"))) + label_bytes(labels)


def size_of(new: NewTask) -> int:
    """A new task's size for --max-queue-bytes: as admission measured it, or measured now."""
    return new.size or task_bytes(new.args, new.labels)


def queue_bytes_full(queued: int, size: int, limit: int) -> QueueFull:
    return QueueFull(
        f"the queued tasks' args and labels take {queued:,} bytes; this task's {size:,} more would pass the limit "
        f"(--max-queue-bytes {limit:,}); retry later, or pass large data as files"
    )
