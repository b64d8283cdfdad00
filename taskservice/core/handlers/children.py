"""Child tasks: what a handler's ctx.submit() and ctx.wait() do, in a worker thread and in a worker process alike.

A child's id is derived from its parent's (`<parent id>.<key>`, the key counting 1, 2, ... in the order the handler
submits, unless it names one), so a retried parent that submits the same children again gets the same children:
Submit is idempotent by id. The engine stores the parent (Task.parent_id); a Stop of the parent stops its unfinished
children, except those submitted with detached=True (engine/children.py).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from taskservice.core.engine.validation import TASK_ID_PATTERN
from taskservice.core.model.errors import StopTask
from taskservice.core.model.models import SubmitSpec, TaskState
from taskservice.handles import TaskCall

# How often ctx.wait() looks at its children (and, in a worker process, at the stop flag), seconds.
WAIT_POLL_SECONDS = 0.1
_ENDED = frozenset(state.value for state in TaskState if state.is_terminal)
NOT_FOUND = "NOT_FOUND"


class ChildSubmitError(Exception):
    """ctx.submit() was refused: args that do not fit the type, an id already taken by another request, a full
    queue, a server shutting down. The message says which."""


@dataclass(frozen=True)
class ChildTask:
    """A child as ctx.wait() returns it: its state (a TaskState name, or NOT_FOUND once deleted), and its result or
    error once ended."""

    task_id: str
    state: str
    result: Any = None
    error_type: str = ""
    error_message: str = ""

    @property
    def ended(self) -> bool:
        return self.state in _ENDED or self.state == NOT_FOUND

    @property
    def succeeded(self) -> bool:
        return self.state == TaskState.SUCCESS.value


class Children(Protocol):
    """What the engine (or, from a worker process, the pipe to it) does for a run's ctx.submit() and ctx.wait()."""

    def submit(self, spec: SubmitSpec) -> str:
        """Queue the child; its id. ChildSubmitError when refused."""
        ...

    def states(self, task_ids: Sequence[str]) -> list[ChildTask]:
        """Each task as it is now, in order."""
        ...


def child_id(parent_id: str, key: str) -> str:
    """`<parent id>.<key>`; a parent id too long to carry a key is replaced by its hash (still derived from it)."""
    derived = f"{parent_id}.{key}"
    if len(derived) > 128:
        derived = f"{hashlib.sha256(parent_id.encode()).hexdigest()[:32]}.{key}"
    if not TASK_ID_PATTERN.fullmatch(derived):
        raise ValueError(f"a child's key is 1-64 characters from A-Z a-z 0-9 . _ : -, not {key!r}")
    return derived


class ChildMaker:
    """One run's children: the key counter, and the submit and wait calls its context makes."""

    def __init__(self, parent_id: str, children: Children | None) -> None:
        self.parent_id = parent_id
        self._children = children
        self._count = 0
        self._lock = threading.Lock()

    def _engine(self) -> Children:
        if self._children is None:
            raise RuntimeError("this context cannot submit child tasks (no server runs it)")
        return self._children

    def submit(
        self,
        task: str | TaskCall[Any],
        args: Mapping[str, Any] | None = None,
        *,
        key: str | None = None,
        detached: bool = False,
        **options: Any,
    ) -> str:
        """See TaskContext.submit()."""
        with self._lock:
            self._count += 1
            number = self._count
        if isinstance(task, TaskCall):
            if args is not None:
                raise TypeError("ctx.submit(handle.bind(...)) takes no args: they are bound already")
            task_type, args, options = task.task_type, task.args, {**task.options, **options}
        else:
            task_type = task
        not_before = options.pop("not_before", None)
        given_id = options.pop("task_id", None)
        spec = SubmitSpec(
            task_type,
            dict(args or {}),
            task_id=given_id or child_id(self.parent_id, key if key is not None else str(number)),
            time_limit=options.pop("time_limit", None),
            priority=options.pop("priority", 0) or 0,
            labels=dict(options.pop("labels", None) or {}),
            not_before=not_before.timestamp() if not_before is not None else None,
            delay=options.pop("delay", None),
            retention=options.pop("retention", None),
            after=tuple(options.pop("after", None) or ()),
            parent_id=self.parent_id,
            detached=detached,
        )
        if options:
            raise TypeError(f"ctx.submit() got unexpected options: {', '.join(sorted(options))}")
        return self._engine().submit(spec)

    def wait(
        self, task_ids: Sequence[str], timeout: float | None, stopped_within: Callable[[float], bool]
    ) -> list[ChildTask]:
        """See TaskContext.wait(); `stopped_within(seconds)` waits that long for a stop of this run (True: stopped)."""
        if isinstance(task_ids, str):
            raise TypeError("ctx.wait() takes a list of task ids, not one string")
        wanted = list(task_ids)
        deadline = None if timeout is None else time.monotonic() + timeout
        ended: dict[str, ChildTask] = {}
        while True:
            pending = [task_id for task_id in wanted if task_id not in ended]
            if pending:
                ended.update((c.task_id, c) for c in self._engine().states(pending) if c.ended)
            if len(ended) == len(set(wanted)):
                return [ended[task_id] for task_id in wanted]
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                waiting = ", ".join(t for t in wanted if t not in ended)
                raise TimeoutError(f"children still running after {timeout:g} s: {waiting}")
            if stopped_within(WAIT_POLL_SECONDS if left is None else min(left, WAIT_POLL_SECONDS)):
                raise StopTask()
