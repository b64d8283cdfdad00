"""run_eagerly: a handler run inline with a recording context, for unit tests of task types without a server."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from taskservice.client.results import decode
from taskservice.core.handlers.children import NOT_FOUND, ChildSubmitError, ChildTask
from taskservice.core.handlers.context import TaskContext, check_progress
from taskservice.core.handlers.json_values import as_json
from taskservice.core.handlers.registry import TaskRegistry, default_registry
from taskservice.core.model.errors import InvalidRequest, StopTask
from taskservice.core.model.models import SubmitSpec
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
    """What a handler did through its context in an eager run; `children`, by id, each run inline as submitted."""

    progress: list[ProgressUpdate] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    children: dict[str, ChildTask] = field(default_factory=dict)


class _InlineChildren:
    """ctx.submit() of an eager run: the child runs at once, inline, as the registry's type of its name; ctx.wait()
    then finds it ended. The same id again is the same child (as Submit's idempotency makes it on a server)."""

    def __init__(self, registry: TaskRegistry, record: EagerRecord) -> None:
        self._registry = registry
        self._record = record

    def submit(self, spec: SubmitSpec) -> str:
        if spec.task_id in self._record.children:
            return spec.task_id
        try:
            kind = self._registry.require(spec.task_type)
            args = kind.validate_args(json.loads(json.dumps(spec.args)))
        except InvalidRequest as exc:
            raise ChildSubmitError(f"child task {spec.task_id!r} refused: {exc}") from None
        child = EagerContext(task_id=spec.task_id, registry=self._registry)
        try:
            ended = ChildTask(spec.task_id, "SUCCESS", child._call(kind.handler, args))
        except StopTask:
            ended = ChildTask(spec.task_id, "REVOKED", None, "Revoked", "stopped")
        except Exception as exc:  # the child's failure is the parent's to look at, as on a server
            ended = ChildTask(spec.task_id, "FAILURE", None, type(exc).__name__, str(exc))
        self._record.children[spec.task_id] = ended
        return spec.task_id

    def states(self, task_ids: Sequence[str]) -> list[ChildTask]:
        return [self._record.children.get(task_id) or ChildTask(task_id, NOT_FOUND) for task_id in task_ids]


class EagerContext(TaskContext):
    """The context of a handler run inline by run(): progress and log lines are recorded in `record`;
    request_stop() makes the next progress(), check_stop() or sleep() raise StopTask, as a client's Stop does.
    Children it submits run inline at once, as the type `registry` (default: the one @task fills) holds by their
    name, and are recorded in `record.children`.

        ctx = EagerContext()
        assert ctx.run(resize, width=640) == Thumbnail(...)
        assert ctx.record.progress[-1].percent == 100
    """

    def __init__(self, *, task_id: str = "eager-1", attempt: int = 1, registry: TaskRegistry | None = None) -> None:
        self.record = EagerRecord()
        self._stop = threading.Event()
        children = _InlineChildren(registry or default_registry, self.record)
        super().__init__(task_id=task_id, task_type="", attempt=attempt, args={}, stop_event=self._stop,
                         report=self._report_progress, deadline=None, log_sink=self._log,
                         children=children)  # fmt: skip

    def run(self, handle: TaskDef[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run a `@task` handler now, in this thread: its args checked as Submit checks them (InvalidRequest when
        they do not fit), its result turned into JSON and decoded back into its return type as TaskRun.result()
        does (so a result no server could store fails here too). What the handler raises propagates as it is."""
        call = handle.bind(*args, **kwargs)
        self.task_type = handle.name
        checked = TaskRegistry().register(handle.name, handle.handler).validate_args(json.loads(json.dumps(call.args)))
        result: R = decode(self._call(handle.handler, checked), call.result_type)
        return result

    def _call(self, handler: Callable[..., Any], args: dict[str, Any]) -> Any:
        """The handler called with checked args, as a worker calls it; its result as JSON carries it."""
        self.args = args
        value = handler(self, **args)
        return json.loads(json.dumps(value, allow_nan=False, default=as_json))

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
