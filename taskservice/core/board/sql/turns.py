"""Fair turns: within one priority, the claim takes the groups of tasks in turn, so a customer's 10 tasks do not
wait behind another's 10,000.

Each task gets a turn when it is inserted (start-time fair queuing, as stride schedulers do): its group's next turn,
or the turn of the task that would be claimed next if the group has fallen behind it (a group idle for a while
saves up no turns), and the group's next turn moves on by 1 / its weight. The claim's order is (priority, turn,
submission order): groups take turns in proportion to their weights, and a claim stays one index read.

A task's group is the value of the label `--fairness-label` names, when the operator set one; otherwise the group
of the first limit (in id order) it falls under; otherwise the group of the tasks under no limit. Turns are a
matter of order only, never of correctness: two servers stamping one group at once may give two tasks one turn.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from taskservice.core.board.base import NewTask
from taskservice.core.board.sql.queries import Cursor, Queries
from taskservice.core.model.limits import LimitSpec


@dataclass(frozen=True, slots=True)
class Fairness:
    """The operator's fairness label (empty: the groups of limits), and each of its values' weight (default 1)."""

    label: str = ""
    weights: Mapping[str, float] = field(default_factory=dict)


# The turn of the queue's head is read again after a claim of this server took tasks, or after this long (another
# server's claims): not at every Submit, which would cost a query each.
FLOOR_FRESH_SECONDS = 0.1


class Turns:
    def __init__(self, queries: Queries, fairness: Fairness) -> None:
        self._q = queries
        self._fairness = fairness
        self._floor = (0.0, float("-inf"))  # (turn of the queue's head, monotonic time read)

    def stamp(self, cur: Cursor, tasks: Sequence[NewTask], specs: Sequence[LimitSpec]) -> list[NewTask]:
        """`tasks`, each with its turn; as they are when there are no groups to take turns."""
        if not (self._fairness.label or specs) or not tasks:
            return list(tasks)
        grouped = [(task, *self._group(task, specs)) for task in tasks]
        floor = self._floor_now(cur)
        next_turns = self._q.next_turns(cur, {group for _, group, _ in grouped})
        stamped = []
        for task, group, weight in grouped:
            turn = max(next_turns.get(group, floor), floor)
            next_turns[group] = turn + 1 / weight
            stamped.append(replace(task, turn=turn))
        self._q.save_turns(cur, {group: next_turns[group] for _, group, _ in grouped})
        return stamped

    def claimed(self) -> None:
        """A claim took tasks: the queue's head has moved on."""
        self._floor = (self._floor[0], float("-inf"))

    def _floor_now(self, cur: Cursor) -> float:
        turn, read_at = self._floor
        if time.monotonic() - read_at > FLOOR_FRESH_SECONDS:
            turn = self._q.turn_floor(cur)
            self._floor = (turn, time.monotonic())
        return turn

    def _group(self, task: NewTask, specs: Sequence[LimitSpec]) -> tuple[str, float]:
        """The group a task takes turns in, and the group's weight."""
        label = self._fairness.label
        if label:
            value = task.labels.get(label, "")
            return f"label={value}", self._fairness.weights.get(value, 1.0)
        for spec in specs:
            if spec.covers(task.task_type, task.labels):
                group = spec.group_of(task.labels)
                return f"limit:{spec.limit_id}={group}", spec.weight_of(group)
        return "", 1.0
