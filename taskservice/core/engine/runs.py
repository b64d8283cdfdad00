"""What this node is running, and how it is shown: the runs, their events to watchers, their transitions to
listeners (the transition log, metrics).

One lock (`RunTable.lock`) guards the runs and orders what is shown: a task's events are published under it, so
watchers see them in sequence order, and listeners hear a task's transitions in the order they happened. Nothing
here waits for the disk or calls the board while holding the lock.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from taskservice.core.board.base import Claim, ClaimBatch
from taskservice.core.engine.observe import TaskListener
from taskservice.core.handlers.context import StopSignal
from taskservice.core.model.events import EventHub
from taskservice.core.model.models import Progress, Task, TaskError, TaskEvent, TaskState

log = logging.getLogger(__name__)

# How many tasks' latest shown change is kept (see RunTable.recent); a read of the board takes far less time
# than this many changes take to show.
RECENT_CHANGES_KEPT = 4096


class Phase(enum.Enum):
    """The engine's life, in order."""

    NEW = "new"  # built, not started
    SERVING = "serving"  # takes Submits, claims and runs tasks
    DRAINING = "draining"  # refuses Submits, claims nothing new; running tasks go on
    CLOSED = "closed"  # stopped; a handler's late outcome is discarded


@dataclass(eq=False, slots=True)
class Worker:
    name: str
    # Set when its handler was abandoned (or its loop broke): the thread ends as soon as the handler returns.
    retired: bool = False
    thread: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        return not self.retired and self.thread is not None and self.thread.is_alive()


@dataclass(eq=False, slots=True)
class Run:
    """One claimed attempt of a task on this node, from claim to the end written on the board."""

    claim: Claim
    # The engine's live copy: progress and event sequence move here first (the board is written behind).
    task: Task
    batch: ClaimBatch
    worker: Worker | None = None
    stop_event: StopSignal = field(default_factory=StopSignal)
    deadline: float | None = None  # monotonic time at which the time limit passes
    grace_deadline: float | None = None  # monotonic time after which a handler that has not returned is abandoned
    stop_state: TaskState | None = None
    stop_error: TaskError | None = None
    # Its end is decided (by the handler, the watchdog, a shutdown, or a lost lease): nothing else may end it.
    finalized: bool = False
    # Its lease was lost: another node owns the task now, so nothing of this run is shown or written.
    lost: bool = False

    @property
    def task_id(self) -> str:
        return self.task.task_id


class RunTable:
    """The runs of this node and their publication. See the module docstring for the lock's rules."""

    def __init__(self, listeners: Sequence[TaskListener], events: EventHub, now: Callable[[], float]) -> None:
        self.lock = threading.Lock()
        self.runs: dict[str, Run] = {}
        self.events = events
        self._listeners = listeners
        self._now = now
        # The latest change shown of recently changed tasks: a watcher that read a task from the board just
        # before a change was shown takes this instead (see WorkerManager.watch).
        self.recent: OrderedDict[str, Task] = OrderedDict()

    # ------------------------------------------------------------------ showing (hold lock)

    def notify(self, task: Task, previous: TaskState | None) -> None:
        """Tell the listeners of a state change. Holds lock."""
        for listener in self._listeners:
            try:
                listener.task_changed(task, previous)
            except Exception:
                log.exception("task listener %r failed", listener)

    def publish_state(self, task: Task) -> None:
        """A state change (the task's current state) to its watchers. Holds lock."""
        if self.events.followed(task.task_id):
            self.events.publish(self.snapshot(task))

    def publish_progress(self, task: Task, progress: Progress) -> None:
        """Holds lock."""
        if self.events.followed(task.task_id):
            self.events.publish(
                TaskEvent(task.task_id, task.event_sequence, task.state, progress, progress.updated_at or 0.0)
            )

    def snapshot(self, task: Task) -> TaskEvent:
        return TaskEvent(task.task_id, task.event_sequence, task.state, task.progress, self._now(), task.copy())

    def change_state(self, run: Run, state: TaskState) -> None:
        """A non-terminal change of a run: applied and shown at once. Holds lock."""
        task = run.task
        previous = task.state
        task.state = state
        task.event_sequence += 1
        self.publish_state(task)
        self.notify(task, previous)

    def show(self, task: Task, previous: TaskState | None) -> None:
        """A change made on the board (a claim, an end, a revoke, a reap, a retry), shown now. Holds lock."""
        self.show_elsewhere(task)
        self.notify(task, previous)

    def show_elsewhere(self, task: Task) -> None:
        """A change another server made (its listeners heard of it there), shown to the watchers here. Holds lock."""
        self.recent[task.task_id] = task
        self.recent.move_to_end(task.task_id)
        if len(self.recent) > RECENT_CHANGES_KEPT:
            self.recent.popitem(last=False)
        self.publish_state(task)

    # ------------------------------------------------------------------ reading

    def copy_of(self, task_id: str) -> Task | None:
        """The live copy of a task this node runs, or None."""
        with self.lock:
            run = self.runs.get(task_id)
            return run.task.copy() if run is not None else None

    def overlay(self, tasks: list[Task]) -> list[Task]:
        """`tasks` with those this node runs replaced by their live copies (progress, sequence)."""
        with self.lock:
            return [self.runs[t.task_id].task.copy() if t.task_id in self.runs else t for t in tasks]

    def active(self) -> list[Run]:
        """Runs whose end is not decided yet. Holds lock."""
        return [run for run in self.runs.values() if not run.finalized]

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {"busy": sum(1 for run in self.runs.values() if not run.finalized and run.worker is not None)}
