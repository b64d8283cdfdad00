"""Admission: everything about a Submit that is decided before the board sees it.

The task type must exist, the args must fit its handler's signature and constraints, paths must be usable, the
id, labels, priority, time limit and run-later time must be in range. What passes becomes a NewTask with its
request digest (so a repeated Submit under the same id can be told from a different one). Nothing here needs a
lock or the database.
"""

from __future__ import annotations

from collections.abc import Sequence

from taskservice.core.board.base import NewTask
from taskservice.core.engine.validation import (
    check_after,
    check_labels,
    check_retention,
    check_task_id,
    check_time_limit,
    label_bytes,
    new_task_id,
    request_digest,
    run_after_for,
)
from taskservice.core.handlers.execution import check_paths
from taskservice.core.handlers.paths import DataRoot
from taskservice.core.handlers.registry import TaskRegistry, check_json_args
from taskservice.core.model.errors import InvalidRequest, TaskServiceError
from taskservice.core.model.models import SubmitSpec


class Admission:
    def __init__(
        self, registry: TaskRegistry, data_root: DataRoot | None, default_time_limit: float | None = None
    ) -> None:
        self._registry = registry
        self._data_root = data_root
        self._default_time_limit = default_time_limit

    def check(self, request: SubmitSpec, now: float) -> NewTask:
        """The request as a NewTask, or InvalidRequest naming the field to blame. `now`: the server's time."""
        kind = self._registry.require(request.task_type)
        size = check_json_args(request.args) + label_bytes(request.labels)
        normalised = kind.validate_args(request.args)
        check_paths(kind, normalised, self._data_root)
        if request.task_id:
            check_task_id(request.task_id)
        check_time_limit(request.time_limit)
        check_labels(request.labels)
        check_retention(request.retention)
        after = check_after(request.after, request.task_id)
        run_after = run_after_for(request.not_before, request.delay, now)
        if not -(2**31) <= request.priority < 2**31:
            raise InvalidRequest("priority out of range", [("priority", "must fit a 32-bit signed integer")])
        time_limit = request.time_limit
        if kind.time_limit_for is not None:
            time_limit = kind.time_limit_for(normalised, time_limit)
        if time_limit is None:
            time_limit = self._default_time_limit
        # The fingerprint is of the request as sent, so that sending it again matches whatever limit it got.
        when = ("not_before", request.not_before) if request.not_before is not None else None
        if request.delay is not None:
            when = ("delay", request.delay)
        digest = request_digest(
            request.task_type,
            normalised,
            request.time_limit,
            request.priority,
            request.labels,
            when,
            request.retention,
            after,
        )
        return NewTask(
            task_id=request.task_id or new_task_id(),
            fresh_id=not request.task_id,
            size=size,
            task_type=request.task_type,
            args=normalised,
            request_digest=digest,
            priority=request.priority,
            labels=dict(request.labels),
            time_limit=time_limit,
            run_after=run_after,
            retention=request.retention,
            after=after,
            trace_context=request.trace_context,
            parent_id=request.parent_id,
            detached=request.detached,
        )

    def reads_storage(self, requests: Sequence[SubmitSpec]) -> bool:
        """Whether admitting and submitting these reads files or the board's storage before it returns (a task id to
        look up, a dependency, a path to open)."""
        for request in requests:
            kind = self._registry.get(request.task_type)
            if request.task_id or request.after or (kind is not None and kind.path_params):
                return True
        return False

    def check_each(self, requests: Sequence[SubmitSpec], now: float) -> list[NewTask | TaskServiceError]:
        """check() of every request; a refused one gets its error in its place."""
        checked: list[NewTask | TaskServiceError] = []
        for request in requests:
            try:
                checked.append(self.check(request, now))
            except TaskServiceError as exc:
                checked.append(exc)
        return checked
