"""Child tasks, on the engine's side: what a handler's ctx.submit() and ctx.wait() ask of it, and the Stop of a parent
reaching its unfinished children (handlers/children.py has the handler's side)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from taskservice.core.handlers.children import NOT_FOUND, ChildSubmitError, ChildTask
from taskservice.core.model.errors import TaskNotFound, TaskServiceError
from taskservice.core.model.listing import ListPage, every_match
from taskservice.core.model.models import SubmitOutcome, SubmitSpec, Task, TaskFilter, TaskState

log = logging.getLogger(__name__)

SubmitMany = Callable[[Sequence[SubmitSpec]], "Future[list[SubmitOutcome | TaskServiceError]]"]
StopBecause = Callable[[str, str], "Future[Task]"]
# The states a stopped parent's children are stopped in; and the parent's states after a Stop that reach them (a
# task run by another server stays RUNNING, its stop flagged for its owner).
_UNFINISHED = frozenset({TaskState.PENDING, TaskState.RUNNING})
_STOPPED = frozenset({TaskState.REVOKED, TaskState.STOPPING, TaskState.RUNNING})
_PAGE = 500


class EngineChildren:
    """The engine's answer to ctx.submit() and ctx.wait() (handlers.children.Children), and the stop cascade."""

    def __init__(
        self, submit_many: SubmitMany, get: Callable[[str], Task], list_page: ListPage, stop_because: StopBecause
    ) -> None:
        self._submit_many = submit_many
        self._get = get
        self._list_page = list_page
        self._stop_because = stop_because
        # Cascades list the board: off the caller's thread (an event loop, a board thread), one at a time.
        self._cascades = ThreadPoolExecutor(max_workers=1, thread_name_prefix="taskservice-children")

    def submit(self, spec: SubmitSpec) -> str:
        try:
            (answer,) = self._submit_many([spec]).result()
        except TaskServiceError as exc:  # refused at once: a server shutting down
            raise ChildSubmitError(f"child task {spec.task_id!r} refused: {exc}") from None
        if isinstance(answer, BaseException):
            raise ChildSubmitError(f"child task {spec.task_id!r} refused: {answer}") from None
        return answer.task.task_id

    def states(self, task_ids: Sequence[str]) -> list[ChildTask]:
        found = []
        for task_id in task_ids:
            try:
                task = self._get(task_id)
            except TaskNotFound:
                found.append(ChildTask(task_id, NOT_FOUND))
                continue
            error = task.error
            found.append(ChildTask(task_id, task.state.value, task.result, error.type if error else "",
                                   error.message if error else ""))  # fmt: skip
        return found

    def after_stop(self, parent_id: str, stopped: Future[Task]) -> None:
        """Once a Stop of `parent_id` took effect, stop its unfinished children that are not detached (their own
        Stops reach theirs). Stopping calls it for every Stop: a client's, StopTasks', a limit's STOP_OLDEST."""

        def cascade(done: Future[Task]) -> None:
            if done.exception() is None and done.result().state in _STOPPED:
                self._cascades.submit(self._stop_children, parent_id)

        stopped.add_done_callback(cascade)

    def _stop_children(self, parent_id: str) -> None:
        try:
            wanted = TaskFilter(states=_UNFINISHED, parent_id=parent_id)
            for child in every_match(self._list_page, wanted, _PAGE):
                if not child.detached:
                    self._stop_because(child.task_id, f"its parent {parent_id} was stopped")
        except Exception:  # a database away: the children run on, as if detached; the log says so
            log.exception("could not stop the children of the stopped task %s", parent_id)

    def close(self) -> None:
        self._cascades.shutdown(wait=False, cancel_futures=True)
