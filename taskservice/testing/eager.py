"""run_eagerly: a handler run inline with a recording context, for unit tests of task types without a server."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from taskservice.client.results import decode
from taskservice.core.handlers.context import TaskContext, check_progress
from taskservice.core.handlers.json_values import as_json
from taskservice.core.handlers.registry import TaskRegistry
from taskservice.handles import TaskDef

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class ProgressUpdate:
    percent: float | None
    message: str
    current: int | None
    total: int | None


@dataclass
class EagerRecord:
    """What a handler did through its context in an eager run."""

    progress: list[ProgressUpdate] = field(default_factory=list)
    log: list[str] = field(default_factory=list)


class EagerContext(TaskContext):
    """The context of a handler run inline by run(): progress and log lines are recorded in `record`;
    request_stop() makes the next progress(), check_stop() or sleep() raise StopTask, as a client's Stop does.

        ctx = EagerContext()
        assert ctx.run(resize, width=640) == Thumbnail(...)
        assert ctx.record.progress[-1].percent == 100
    """

    def __init__(self, *, task_id: str = "eager-1", attempt: int = 1) -> None:
        self.record = EagerRecord()
        self._stop = threading.Event()
        super().__init__(task_id=task_id, task_type="", attempt=attempt, args={}, stop_event=self._stop,
                         report=self._report_progress, deadline=None, log_sink=self._log)  # fmt: skip

    def run(self, handle: TaskDef[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run a `@task` handler now, in this thread: its args checked as Submit checks them (InvalidRequest when
        they do not fit), its result turned into JSON and decoded back into its return type as TaskRun.result()
        does (so a result no server could store fails here too). What the handler raises propagates as it is."""
        call = handle.bind(*args, **kwargs)
        task_type = TaskRegistry().register(handle.name, handle.handler)
        self.task_type = handle.name
        self.args = task_type.validate_args(json.loads(json.dumps(call.args)))
        handler: Callable[..., Any] = handle.handler  # called with the checked args, as a worker calls it
        value = handler(self, **self.args)
        portable = json.loads(json.dumps(value, allow_nan=False, default=as_json))
        result: R = decode(portable, call.result_type)
        return result

    def request_stop(self) -> None:
        self._stop.set()

    def _report_progress(self, percent: float | None, message: str, current: int | None, total: int | None) -> None:
        check_progress(percent, current, total)
        self.record.progress.append(ProgressUpdate(percent, message, current, total))

    def _log(self, data: bytes) -> None:
        self.record.log.extend(data.decode("utf-8", "replace").splitlines())


def run_eagerly(handle: TaskDef[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """`EagerContext().run(handle, ...)`: the handler run inline, its result as a TaskRun would return it."""
    return EagerContext().run(handle, *args, **kwargs)
