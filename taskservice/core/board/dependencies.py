"""Dependencies (Submit's `after`), as every board decides them.

A task submitted after others waits in PENDING, unclaimable, until every one of them has ended SUCCESS. As soon as
one ends any other way (FAILURE, TIMED_OUT, REVOKED, LOST), the waiting task ends REVOKED with error type
DependencyFailed naming it, and so do the tasks waiting for that one, down the chain: a stop never leaves a
dependent waiting for ever, and its watchers see why. A dependency that has ended already decides at once: met
by a SUCCESS, failed otherwise (the new task is stored REVOKED). A dependency the board does not know is refused at
Submit. A retry by hand waits again for those not ended; a dependency since deleted (kept past its retention)
counts as met, since it could only be deleted once it had ended.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from taskservice.core.model.errors import InvalidRequest, WrongState
from taskservice.core.model.models import ErrorType, Task, TaskError, TaskState

# The part of a failed dependency's own error quoted in its dependents' errors (a chain nests them).
QUOTED_ERROR_CHARS = 500

# A listener of tasks the board ended by itself: each with the state it had, once durable.
EndedListener = Callable[[list[tuple[Task, TaskState]]], None]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a task's dependencies say of it now."""

    unmet: tuple[str, ...] = ()  # not ended yet: it waits for these
    failed: Task | None = None  # one ended other than SUCCESS: it never runs
    unknown: tuple[str, ...] = ()  # no such task


def judge(after: Iterable[str], found: Callable[[str], Task | TaskState | None]) -> Verdict:
    """The verdict on `after`, given each dependency as `found` knows it: a Task (ended or not), the state of one
    not yet stored (a Submit of the same batch), or None when there is no such task."""
    unmet: list[str] = []
    unknown: list[str] = []
    for dep in after:
        known = found(dep)
        if known is None:
            unknown.append(dep)
            continue
        state = known if isinstance(known, TaskState) else known.state
        if not state.is_terminal:
            unmet.append(dep)
        elif state is not TaskState.SUCCESS and isinstance(known, Task):
            return Verdict(failed=known)
    return Verdict(tuple(unmet), None, tuple(unknown))


def unknown_dependencies(task_id: str, unknown: tuple[str, ...]) -> InvalidRequest:
    shown = ", ".join(repr(dep) for dep in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
    return InvalidRequest(
        f"task {task_id!r} would wait for tasks that do not exist",
        [("after", f"no task {shown}: submit them first (in the same batch, before this one, is fine)")],
    )


def failure_of(dep: Task) -> TaskError:
    """The error of a task whose dependency `dep` ended other than SUCCESS."""
    message = f"dependency {dep.task_id!r} ended {dep.state.value}"
    if dep.error is not None:
        quoted = f"{dep.error.type}: {dep.error.message}"
        if len(quoted) > QUOTED_ERROR_CHARS:
            quoted = quoted[: QUOTED_ERROR_CHARS - 3] + "..."
        message += f" ({quoted})"
    return TaskError(ErrorType.DEPENDENCY_FAILED, message)


def revoked_for(task: Task, dep: Task, now: float) -> Task:
    """`task`, PENDING, as it ends because `dep` did not succeed: REVOKED, DependencyFailed, a sequence on."""
    final = task.copy()
    final.state = TaskState.REVOKED
    final.error = failure_of(dep)
    final.ended_at = now
    final.run_after = None
    final.event_sequence += 1
    return final


def not_retryable_before(task_id: str, dep: Task) -> WrongState:
    return WrongState(
        f"task {task_id!r} waits for {dep.task_id!r}, which ended {dep.state.value}: retry that one first (its "
        "dependents wait for it again only once it is PENDING)"
    )
