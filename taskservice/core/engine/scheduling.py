"""The schedules of the board: created, paused, resumed and deleted by hand, and fired when due.

Every server runs a scheduler thread. It looks for due schedules (at their time on the embedded board, which knows
every schedule; every poll on a shared database), submits one task per due time its catch-up policy keeps, and
only then moves the schedule on, with a conditional write. A crash between the two fires the same due time again
after the restart, and two servers may fire it at once: both Submit the same request under the same id
(`<schedule id>:<due time>`), which makes one task, and only one of them moves the schedule on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import replace

from taskservice.core.board.base import Answer, Board
from taskservice.core.engine.clock import Clock
from taskservice.core.engine.observe import ScheduleListener
from taskservice.core.engine.throttle import ThrottledLog
from taskservice.core.model.errors import (
    InvalidRequest,
    QueueFull,
    ScheduleNotFound,
    ShuttingDown,
    StoreUnavailable,
    TaskConflict,
    TaskServiceError,
)
from taskservice.core.model.models import SubmitOutcome, SubmitSpec
from taskservice.core.model.schedules import Schedule, ScheduleSpec, check_spec, firing_for, firing_task_id

log = logging.getLogger(__name__)

# The label every firing's task carries (unless the schedule's task sets it), so ListTasks finds them.
SCHEDULE_LABEL = "schedule"
# Due schedules handled per pass; the next pass comes at once when there were this many.
DUE_BATCH = 100
# Errors after which a firing is tried again at the next pass, not given up.
TRANSIENT = (QueueFull, StoreUnavailable, ShuttingDown)
# How long one firing waits for its Submit to be durable.
SUBMIT_WAIT_SECONDS = 30.0
# A pause or resume that keeps losing to firings gives up after this many tries (it never should).
CHANGE_TRIES = 20

SubmitMany = Callable[[Sequence[SubmitSpec]], Future[list[Answer]]]
CheckTask = Callable[[SubmitSpec, float], object]


class ScheduleConflict(TaskConflict):
    """A schedule id already names a schedule with another definition."""


class Scheduler:
    def __init__(
        self, board: Board, clock: Clock, submit_many: SubmitMany, check_task: CheckTask, poll_seconds: float,
        listeners: Sequence[object] = (),
    ) -> None:  # fmt: skip
        self._board = board
        # Those of the task listeners that hear of firings (ScheduleListener).
        self._listeners: list[ScheduleListener] = [each for each in listeners if isinstance(each, ScheduleListener)]
        self._clock = clock
        self._submit_many = submit_many
        self._check_task = check_task
        self._poll = min(poll_seconds, 1.0)
        self._wake = threading.Event()
        self._closing = False
        self._failures = ThrottledLog(log)
        self._thread = threading.Thread(target=self._loop, name="taskservice-scheduler", daemon=True)

    # ------------------------------------------------------------------ by hand

    def create(self, spec: ScheduleSpec, *, paused: bool = False, validate_only: bool = False) -> tuple[Schedule, bool]:
        """Store a new schedule (its first due time from now); the same definition again is the schedule there
        (created=False), another one under its id ScheduleConflict. InvalidRequest naming the field to blame.
        `validate_only`: the checks alone, and the schedule as it would be, nothing stored."""
        now = self._clock.time()
        first_due = check_spec(spec, now)
        try:
            self._check_task(replace(spec.task, task_id=firing_task_id(spec.schedule_id, first_due)), now)
        except InvalidRequest as exc:
            fields = [(f"schedule.task.{name}", why) for name, why in exc.field_violations]
            raise InvalidRequest("the schedule's task would be refused", fields) from None
        if validate_only:
            return Schedule(spec, created_at=now, next_due=first_due, paused=paused), False
        stored, created = self._board.add_schedule(Schedule(spec, created_at=now, next_due=first_due, paused=paused))
        if stored.spec.digest() != spec.digest():
            raise ScheduleConflict(
                f"schedule {spec.schedule_id!r} exists with another definition; delete it first, or use another id"
            )
        self.wake()
        return stored, created

    def get(self, schedule_id: str) -> Schedule:
        found = self._board.get_schedule(schedule_id)
        if found is None:
            raise ScheduleNotFound(schedule_id)
        return found

    def list(self, page_size: int, after_id: str = "") -> tuple[list[Schedule], str]:
        """A page of schedules in id order, and the id to continue after ("" on the last page)."""
        found = self._board.list_schedules(after_id, page_size + 1)
        more = len(found) > page_size
        page = found[:page_size]
        return page, page[-1].schedule_id if more and page else ""

    def pause(self, schedule_id: str) -> Schedule:
        """No firing from now on until resumed; a firing under way may still submit its task."""
        return self._change(schedule_id, lambda schedule, now: replace(schedule, paused=True))

    def resume(self, schedule_id: str) -> Schedule:
        """Fire again from the next due time after now: the ones that passed while it was paused are skipped."""
        resumed = self._change(
            schedule_id, lambda s, now: replace(s, paused=False, next_due=s.spec.next_after(now)) if s.paused else s
        )
        self.wake()
        return resumed

    def delete(self, schedule_id: str) -> Schedule:
        """The schedule as it was; the tasks it submitted stay."""
        removed = self._board.remove_schedule(schedule_id)
        if removed is None:
            raise ScheduleNotFound(schedule_id)
        return removed

    def _change(self, schedule_id: str, change: Callable[[Schedule, float], Schedule]) -> Schedule:
        for _ in range(CHANGE_TRIES):
            current = self.get(schedule_id)
            changed = change(current, self._clock.time())
            if changed == current or self._board.save_schedule(changed, current):
                return changed
        raise StoreUnavailable(f"schedule {schedule_id!r} kept changing meanwhile; try again")

    # ------------------------------------------------------------------ firing

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._closing:
            handled = 0
            try:
                handled = self.fire_due()
            except TaskServiceError as exc:  # the database is away: the next pass tries again
                self._failures.log("schedules could not be read: %s", exc)
            except Exception:
                log.exception("a pass over the due schedules failed")
            if handled >= DUE_BATCH:
                continue
            self._wake.wait(self._until_next())
            self._wake.clear()

    def _until_next(self) -> float:
        due = self._board.next_schedule_due()
        if due is None:
            return self._poll
        return max(0.0, min(self._poll, due - self._clock.time()))

    def fire_due(self) -> int:
        """Fire the schedules due now (a pass); how many there were."""
        now = self._clock.time()
        due = self._board.due_schedules(now, DUE_BATCH)
        for schedule in due:
            if self._closing:
                break
            self._fire(schedule, now)
        return len(due)

    def _fire(self, schedule: Schedule, now: float) -> None:
        firing = firing_for(schedule, now)
        task = schedule.spec.task
        labels = {SCHEDULE_LABEL: schedule.schedule_id, **task.labels}
        requests = [
            replace(task, task_id=firing_task_id(schedule.schedule_id, due), labels=labels) for due in firing.due
        ]
        answers: list[Answer] = []
        if requests:
            try:
                answers = self._submit_many(requests).result(timeout=SUBMIT_WAIT_SECONDS)
            except TaskServiceError as exc:
                answers = [exc]
            except TimeoutError:  # the Submit is not durable yet: fire these due times again at the next pass
                answers = [StoreUnavailable(f"its Submit was not durable within {SUBMIT_WAIT_SECONDS:g} s")]
        transient = next((a for a in answers if isinstance(a, TRANSIENT)), None)
        if transient is not None:  # not moved on: the next pass fires the same due times again
            self._failures.log("schedule %r could not submit its task: %s", schedule.schedule_id, transient)
            return
        refused = next((a for a in answers if isinstance(a, TaskServiceError)), None)
        fired = [a.task.task_id for a in answers if isinstance(a, SubmitOutcome)]
        moved = replace(
            schedule,
            next_due=firing.next_due,
            last_due=firing.due[-1] if firing.due else schedule.last_due,
            last_task_id=fired[-1] if fired else schedule.last_task_id,
            last_error="" if refused is None else f"{type(refused).__name__}: {refused.message}",
        )
        if refused is not None:
            log.warning("schedule %r: a firing was refused: %s", schedule.schedule_id, refused.message)
        if self._board.save_schedule(moved, schedule):  # False: another server moved it on first, the same way
            created = sum(1 for a in answers if isinstance(a, SubmitOutcome) and a.created)
            for listener in self._listeners:
                try:
                    listener.schedule_fired(schedule.schedule_id, created, firing.missed, refused is not None)
                except Exception:
                    log.exception("schedule listener %r failed", listener)
