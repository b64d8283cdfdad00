"""`taskctl stats` and `taskctl nodes`: the dashboard's overview from a terminal (GetStats, ListNodes)."""

from __future__ import annotations

import argparse

from taskctl.exitcodes import ExitCode
from taskctl.output import Output, aligned, format_duration, format_time, wire_json
from taskservice.client import Node, TaskClient, TaskState

# The states in the order a task goes through them (UNSPECIFIED is only what a newer server might send).
STATES = [state for state in TaskState if state is not TaskState.UNSPECIFIED]


def stats(client: TaskClient, ns: argparse.Namespace, output: Output) -> ExitCode:
    """Tasks by state, the last hour's starts and ends, the oldest runnable task's wait; then by type, and the
    limits with what they run and hold back."""
    found = client.stats()
    if output.json:
        output.json_line(wire_json(found))
        return ExitCode.OK
    totals = found.by_state()
    output.text("  ".join(f"{state.value} {totals.get(state, 0)}" for state in STATES))
    started, succeeded, failed = (sum(getattr(m, key) for m in found.minutes)
                                  for key in ("started", "succeeded", "failed"))  # fmt: skip
    output.text(f"last hour: {started} started, {succeeded} succeeded, {failed} failed")
    age = found.oldest_runnable_age
    output.text(f"the oldest task that could run waits {format_duration(age)}" if age is not None
                else "no task waits to run")  # fmt: skip
    by_type: dict[str, dict[TaskState, int]] = {}
    for count in found.counts:
        by_type.setdefault(count.task_type, {})[count.state] = count.count
    if by_type:
        shown = [state for state in STATES if any(state in counts for counts in by_type.values())]
        rows = [(name, *(str(counts.get(state, 0)) for state in shown)) for name, counts in sorted(by_type.items())]
        output.text("\n" + aligned(("TYPE", *(state.value for state in shown)), rows))
    if found.limits:
        rows = [(c.limit_id, str(c.running), str(c.waiting)) for c in found.limits]
        output.text("\n" + aligned(("LIMIT", "RUNNING", "WAITING"), rows))
    return ExitCode.OK


def nodes(client: TaskClient, ns: argparse.Namespace, output: Output) -> ExitCode:
    """The servers of the database as each last said: busy and total workers, the handlers it abandoned after a
    stop that still run, the task types it claims, and when it was last heard of."""
    found = client.nodes()
    if output.json:
        for node in found:
            output.json_line(wire_json(node))
        return ExitCode.OK
    rows = [(node.node, f"{node.busy}/{node.workers}", str(node.abandoned), _claims(node), format_time(node.last_seen))
            for node in found]  # fmt: skip
    output.text(aligned(("SERVER", "BUSY", "ABANDONED", "CLAIMS", "LAST SEEN"), rows))
    if any(node.abandoned for node in found):
        output.text("\nabandoned: handlers that ignored a stop past --stop-grace and still run; their threads "
                    "hold memory until they return (a restart ends them; --isolation process kills them)")  # fmt: skip
    return ExitCode.OK


def _claims(node: Node) -> str:
    labels = ", ".join(f"{key}={value}" for key, value in sorted(node.only_labels.items()))
    return ", ".join(node.task_types) + (f" (only {labels})" if labels else "")
