"""Which cores a bench's processes run on. A browser measuring the dashboard stands for an operator's own machine:
on a small bench machine it shares the server's cores, and 100 handler threads waking 20 times a second slow its
page work as much as a process of bare threads doing the same does with no server at all. Placed apart, the
browser keeps one core and the server the others, as two machines would have them."""

from __future__ import annotations

import os
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path


def descendants(pid: int) -> set[int]:
    """The processes `pid` started, the ones they started, and so on."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, ValueError, IndexError):
            parent = int(stat.read_text().rpartition(")")[2].split()[1])
            children.setdefault(parent, []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def place(pids: Iterable[int], cpus: set[int]) -> None:
    """Every thread of these processes onto `cpus`; what they start from then on inherits it."""
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with suppress(OSError, ValueError):  # a thread or process that ended meanwhile
                os.sched_setaffinity(int(task.name), cpus)


def apart() -> tuple[set[int], set[int]] | None:
    """One core for a browser and the others for a server, or None on a machine of one core."""
    every = os.sched_getaffinity(0)
    if len(every) < 2:
        return None
    browser = {min(every)}
    return browser, every - browser
