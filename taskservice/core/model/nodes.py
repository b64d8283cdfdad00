"""The servers on one database as each says it is: the task types it claims and the labels it needs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class NodeInfo:
    name: str
    types: tuple[str, ...]  # the types it claims
    labels: tuple[tuple[str, str], ...]  # it claims only tasks carrying these (--only-labels)
    started_at: float
    seen_at: float
    # Its worker threads, how many ran a task, and how many handlers it abandoned after a stop still run (threads
    # it cannot end), when it last said (ListNodes, the dashboard's overview).
    workers: int = 0
    busy: int = 0
    abandoned: int = 0


# The columns of a node row, in the order of node_row(), on both databases.
NODE_COLUMNS = "node, types, labels, started_at, seen_at, workers, busy, abandoned"


def node_row(node: NodeInfo) -> tuple[Any, ...]:
    return (node.name, json.dumps(list(node.types)), json.dumps(dict(node.labels)), node.started_at, node.seen_at,
            node.workers, node.busy, node.abandoned)  # fmt: skip


def node_from_row(row: Any) -> NodeInfo:
    name, types, labels, started_at, seen_at, workers, busy, abandoned = row
    types = types if isinstance(types, list) else json.loads(types)
    labels = labels if isinstance(labels, dict) else json.loads(labels)
    return NodeInfo(name, tuple(types), tuple(sorted(labels.items())), started_at, seen_at, int(workers), int(busy),
                    int(abandoned))  # fmt: skip
