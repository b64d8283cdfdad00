"""Waiting on engine tasks with deadlines, through the same watcher API the server uses; what a board holds."""

from __future__ import annotations

import time

from taskservice.core.board import Board
from taskservice.core.engine.manager import WorkerManager
from taskservice.core.model.events import Watcher
from taskservice.core.model.models import Task, TaskEvent, TaskFilter, TaskState


def stored(board: Board) -> int:
    """How many tasks `board` holds."""
    return len(board.list(TaskFilter(), after=None, limit=1_000_000))


def events_until_terminal(manager: WorkerManager, task_id: str, timeout: float = 10.0) -> list[TaskEvent]:
    """Watch a task from a snapshot to its terminal event; fail the test past the deadline."""
    watcher = Watcher()
    manager.watch(task_id, watcher)
    events: list[TaskEvent] = []
    deadline = time.monotonic() + timeout
    while True:
        event = watcher.get(timeout=max(0.0, deadline - time.monotonic()))
        if event is None:
            raise AssertionError(f"task {task_id} did not end within {timeout} s; events so far: {events}")
        events.append(event)
        if event.is_terminal:
            manager.unwatch(task_id, watcher)
            return events


def wait_final(manager: WorkerManager, task_id: str, timeout: float = 10.0) -> Task:
    final = events_until_terminal(manager, task_id, timeout)[-1].task
    assert final is not None
    return final


def wait_state(manager: WorkerManager, task_id: str, state: TaskState, timeout: float = 10.0) -> Task:
    """Watch until the task reaches `state` (a TaskState)."""
    watcher = Watcher()
    manager.watch(task_id, watcher)
    deadline = time.monotonic() + timeout
    try:
        while True:
            event = watcher.get(timeout=max(0.0, deadline - time.monotonic()))
            if event is None:
                raise AssertionError(f"task {task_id} did not reach {state} within {timeout} s")
            if event.state == state and event.task is not None:
                return event.task
            if event.is_terminal:
                raise AssertionError(f"task {task_id} ended {event.state} without reaching {state}")
    finally:
        manager.unwatch(task_id, watcher)
