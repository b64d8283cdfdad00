"""The console's reads: GetStats (counts the board makes), ListNodes (the servers of the database) and
GetTaskHistory (a task's stored life), on read threads, as the contract carries them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from taskservice.core.engine.manager import WorkerManager
from taskservice.core.engine.validation import check_task_id
from taskservice.core.model.errors import TaskNotFound
from taskservice.core.model.history import HistoryEntry
from taskservice.core.model.nodes import NodeInfo
from taskservice.core.model.stats import MinuteCounts, TaskCount
from taskservice.server import convert
from taskservice.server.rpc_errors import unary
from taskservice.v1 import task_service_pb2 as pb

T = TypeVar("T")
# GetStats answers from counts at most this old: every caller within it shares one count (ten open overviews that
# refresh every 2 s cost one count, not ten; counting 100,000 tasks takes about 0.1 s).
STATS_MAX_AGE = 2.0


class StatsRpcs:
    _manager: WorkerManager

    if TYPE_CHECKING:  # the servicer's: runs `function` on its read threads

        async def _read(self, function: Callable[..., T], *args: Any) -> T: ...

    # The servicer's (one lock and one count for each server, made in its __init__).
    _stats_lock: threading.Lock
    _stats_cache: tuple[float, pb.GetStatsResponse] | None

    @unary
    async def GetStats(self, request: pb.GetStatsRequest, context: Any) -> pb.GetStatsResponse:
        return await self._read(self._shared_stats)

    def _shared_stats(self) -> pb.GetStatsResponse:
        """The last count if it is recent enough, else a new one; callers meanwhile wait for it, not count again."""
        with self._stats_lock:
            cached = self._stats_cache
            if cached is not None and time.monotonic() - cached[0] < STATS_MAX_AGE:
                return cached[1]
            answer = self._stats()
            self._stats_cache = (time.monotonic(), answer)
            return answer

    @unary
    async def GetTaskHistory(self, request: pb.GetTaskHistoryRequest, context: Any) -> pb.GetTaskHistoryResponse:
        check_task_id(request.task_id)
        entries = await self._read(self._manager.board.history, request.task_id)
        if entries is None:
            raise TaskNotFound(request.task_id)
        return pb.GetTaskHistoryResponse(entries=[_entry_to_proto(entry) for entry in entries])

    @unary
    async def ListNodes(self, request: pb.ListNodesRequest, context: Any) -> pb.ListNodesResponse:
        nodes = await self._read(self._manager.presence.nodes)
        return pb.ListNodesResponse(nodes=[_node_to_proto(node) for node in nodes])

    def _stats(self) -> pb.GetStatsResponse:
        board = self._manager.board
        now = time.time()
        counts = board.task_counts()
        minutes = board.minute_counts(now)
        oldest = board.oldest_ready(now)
        limits = board.limit_counts()
        return pb.GetStatsResponse(
            counts=[_count_to_proto(count) for count in counts],
            minutes=[_minute_to_proto(minute) for minute in minutes],
            oldest_runnable_age=convert.duration_to_proto(max(0.0, now - oldest)) if oldest is not None else None,
            time=convert.timestamp_to_proto(now),
            limits=[pb.LimitCount(limit_id=c.limit_id, running=c.running, waiting=c.waiting) for c in limits],
        )


def _entry_to_proto(entry: HistoryEntry) -> pb.TaskHistoryEntry:
    message = pb.TaskHistoryEntry(time=convert.timestamp_to_proto(entry.at), state=convert.state_to_proto(entry.state),
                                  attempt=entry.attempt)  # fmt: skip
    if entry.percent is not None:
        message.progress.CopyFrom(pb.Progress(percent=entry.percent, message=entry.message))
    return message


def _count_to_proto(count: TaskCount) -> pb.TaskCount:
    return pb.TaskCount(task_type=count.task_type, state=convert.state_to_proto(count.state), count=count.count)


def _minute_to_proto(minute: MinuteCounts) -> pb.MinuteCounts:
    return pb.MinuteCounts(start=convert.timestamp_to_proto(minute.start), started=minute.started,
                           succeeded=minute.succeeded, failed=minute.failed)  # fmt: skip


def _node_to_proto(node: NodeInfo) -> pb.Node:
    return pb.Node(node=node.name, task_types=node.types, only_labels=dict(node.labels),
                   started_at=convert.timestamp_to_proto(node.started_at),
                   last_seen=convert.timestamp_to_proto(node.seen_at),
                   workers=node.workers, busy=node.busy, abandoned=node.abandoned)  # fmt: skip
