"""The order of a task list and where its next page starts.

A list is ordered by one key (submission order, start, end or duration), then by submission order to break ties;
tasks without the key (never started, not ended) come last in either direction. A page continues after the last
task shown: its key and its submission order (keyset paging), so a page costs the same however deep it is. The
duration of a running task is measured to a fixed `now`, the first page's, so the key of a task does not move
between the pages of one listing while it runs.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from taskservice.core.model.models import Task, TaskFilter


class SortKey(enum.Enum):
    SUBMITTED = "submitted_at"
    STARTED = "started_at"
    ENDED = "ended_at"
    DURATION = "duration"


@dataclass(frozen=True, slots=True)
class TaskOrder:
    key: SortKey = SortKey.SUBMITTED
    descending: bool = True
    # The end of a running task's duration (SortKey.DURATION only); None for the other keys.
    now: float | None = None

    def key_of(self, task: Task) -> float | None:
        """The task's sort key as the boards compute it (None: the task lacks it, and sorts last)."""
        if self.key is SortKey.SUBMITTED:
            return task.submit_order
        if self.key is SortKey.STARTED:
            return task.started_at
        if self.key is SortKey.ENDED:
            return task.ended_at
        if task.started_at is None:
            return None
        end = task.ended_at if task.ended_at is not None else self.now
        return None if end is None else end - task.started_at

    def after(self, task: Task) -> ListPosition:
        """Where the page after `task` starts."""
        return ListPosition(self.key_of(task), task.submit_order)


@dataclass(frozen=True, slots=True)
class ListPosition:
    """A page starts after the task with this key and submission order (both in the list's order)."""

    key: float | None
    submit_order: int


NEWEST_FIRST = TaskOrder()


@dataclass(slots=True, frozen=True)
class TaskPage:
    tasks: list[Task]
    # Where the next page starts, or None on the last page.
    next: ListPosition | None


# A page of the tasks a filter matches, newest first: filter, page size, where the page starts.
ListPage = Callable[[TaskFilter, int, "ListPosition | None"], TaskPage]


def every_match(list_page: ListPage, task_filter: TaskFilter, page_size: int) -> Iterator[Task]:
    """Every task the filter matches, newest first, a page at a time."""
    after: ListPosition | None = None
    while True:
        page = list_page(task_filter, page_size, after)
        yield from page.tasks
        if page.next is None:
            return
        after = page.next


# ListTasks' order_by: a key, then a direction in any case (ascending when none), spaces around; empty: the default.
ORDER_BY_PATTERN = re.compile(
    f" *(?:({'|'.join(key.value for key in SortKey)})(?: +([aA][sS][cC]|[dD][eE][sS][cC]))?)? *"
)


def parse_order_by(text: str) -> TaskOrder | None:
    """`order_by` as ListTasks takes it ("duration desc", "started_at", ...); None when it is not one."""
    found = ORDER_BY_PATTERN.fullmatch(text)
    if found is None:
        return None
    key, direction = found.groups()
    if key is None:
        return NEWEST_FIRST
    return TaskOrder(SortKey(key), descending=(direction or "").lower() == "desc")


def order_by_text(order: TaskOrder) -> str:
    return f"{order.key.value} {'desc' if order.descending else 'asc'}"
