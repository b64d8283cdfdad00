"""The task lifecycle, written once: every Board operation as statements of a dialect (queries.py), run through
its driver: writes that answer someone through the group-commit writer (writer.py), claims, renewals and reaps as
transactions of their own, reads where the driver reads.

What each operation decides (the queue's room, a Submit's answers, its dependencies, an end's cascade, the counts)
lives here; what differs between PostgreSQL and SQLite (SQL, connections, how hints travel) lives in the dialect.
The design: docs/architecture.md, "The board".
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from typing import Any, Protocol

from taskservice.core.board.answers import DEFAULT_MAX_QUEUE_BYTES, Answers, conflict, size_of
from taskservice.core.board.base import (
    Answer,
    Board,
    Claim,
    ClaimBatch,
    ClaimScope,
    FencedManyThen,
    FencedThen,
    NewTask,
    OneWriter,
    Renewal,
    RetryThen,
    StopEffect,
    StopResult,
    StopThen,
    SubmitThen,
    TaskThen,
    not_ended,
    not_retryable,
)
from taskservice.core.board.dependencies import (
    EndedListener,
    judge,
    not_retryable_before,
    revoked_for,
    unknown_dependencies,
)
from taskservice.core.board.sql.due import SoonestDue
from taskservice.core.board.sql.history_store import HistoryStore
from taskservice.core.board.sql.limit_store import LimitStore
from taskservice.core.board.sql.limiting import Limiter
from taskservice.core.board.sql.node_store import NodeStore
from taskservice.core.board.sql.on_full import refuse_newest, stop_oldest
from taskservice.core.board.sql.queries import Birth, Cursor, Queries
from taskservice.core.board.sql.room import QueueRoom
from taskservice.core.board.sql.schedule_store import ScheduleStore
from taskservice.core.board.sql.settle import Cascade, Settled, settle
from taskservice.core.board.sql.stats_store import SettledMinutes, StatsStore
from taskservice.core.board.sql.turns import Fairness, Turns
from taskservice.core.board.sql.writer import GroupWriter, Op
from taskservice.core.model.errors import StoreUnavailable, TaskNotFound
from taskservice.core.model.limits import LimitSpec
from taskservice.core.model.listing import NEWEST_FIRST, ListPosition, TaskOrder
from taskservice.core.model.models import Progress, SubmitOutcome, Task, TaskFilter, TaskState


class Driver(Protocol):
    """A dialect's connection to its database: its statements, its writer, and the rest."""

    @property
    def queries(self) -> Queries: ...

    @property
    def writer(self) -> GroupWriter: ...

    def transact(self, op: Op) -> Any:
        """`op`'s statements in one transaction, durable when it returns; StoreUnavailable when the database
        cannot answer. Never called on the event loop."""

    def read(self, op: Op) -> Any:
        """`op`'s reads; StoreUnavailable when the database cannot answer. Never called on the event loop."""

    def on_hint(self, hint: str, listener: Callable[[], None]) -> None:
        """Call `listener` when a commit (of any server on the database) sent `hint`."""

    def task_logs(self) -> Any:
        """Where task logs live when every server must read them; None: in local files."""

    def close(self) -> None: ...


class SqlBoard(ScheduleStore, LimitStore, NodeStore, StatsStore, HistoryStore, OneWriter, Board):
    _writer: GroupWriter

    def __init__(
        self,
        driver: Driver,
        *,
        max_queue: int = 100_000,
        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
        exclusive: bool = False,
        fairness: Fairness | None = None,
    ) -> None:
        self.exclusive = exclusive
        self._driver = driver
        self._q = driver.queries
        self._writer = writer = driver.writer
        self._soonest = SoonestDue()
        self._room = QueueRoom(writer, self._q.count_pending, max_queue=max_queue, max_queue_bytes=max_queue_bytes)
        self._ended_listeners: list[EndedListener] = []
        self._displaced_listeners: list[Callable[[list[tuple[str, str]]], None]] = []
        self._limiter = Limiter(self._q, self._soonest)
        self._turns = Turns(self._q, fairness or Fairness())
        self._minutes = SettledMinutes()

    def _write(self, op: Callable[[Cursor], Any]) -> Any:
        return self._driver.transact(op)

    def _read(self, op: Callable[[Cursor], Any]) -> Any:
        return self._driver.read(op)

    def _settled(self, cascade: Cascade, released: bool) -> None:
        """After a commit that ended tasks: tell of the dependents it revoked, wake claimers for those released."""
        if cascade:
            for listener in self._ended_listeners:
                listener(cascade)
        if released:
            self._writer.submit(_nothing, _best_effort, notify="work")

    # ------------------------------------------------------------------ submission

    def submit(self, tasks: Sequence[NewTask], now: float, then: SubmitThen) -> None:
        answers = Answers(len(tasks), then)
        held = [0, 0]  # the queue's room this Submit holds (room.py): count, bytes
        displaced: list[tuple[str, str]] = []  # older tasks the new ones stop (on_full.py)

        def insert(cur: Cursor) -> list[tuple[int, Answer]]:
            admitted, told = self._room.take(tasks, held)
            if told:
                told = self._known(cur, tasks, told)
            if not admitted:
                return told
            new, births, unmet = self._plan_dependencies(cur, admitted, told, now)
            specs = self._limiter.recent(cur)
            new = self._refuse_newest(cur, admitted, new, births, told, specs)
            new = self._turns.stamp(cur, new, specs)
            waiting = {task_id: len(deps) for task_id, deps in unmet.items()}
            created = self._q.insert(cur, new, births, waiting, now) if new else {}
            displaced[:] = stop_oldest(self._q, cur, list(created.values()), specs) if created else []
            self._q.add_waits(cur, [(task_id, dep) for task_id in created for dep in unmet.get(task_id, ())])
            taken = [t.task_id for t in new if t.task_id not in created]
            existing = self._q.tasks(cur, taken) if taken else {}
            seen: set[str] = set()
            for index, task in admitted:
                if task.task_id not in births:
                    continue  # refused by _plan_dependencies
                fresh = created.get(task.task_id)
                if fresh is not None and task.task_id not in seen:
                    seen.add(task.task_id)
                    told.append((index, SubmitOutcome(fresh, created=True)))
                    continue
                other = fresh or existing.get(task.task_id)
                if other is None:  # deleted meanwhile: rare; the client may retry
                    told.append((index, StoreUnavailable(f"task {task.task_id!r} changed meanwhile; retry")))
                else:
                    told.append((index, _stored_answer(other, task)))
            return told

        def done(told: list[tuple[int, Answer]] | None, error: BaseException | None) -> None:
            if error is not None:
                told = [(i, _unavailable(error)) for i in range(len(tasks))]
            answers.fill_many(sorted(told or [], key=lambda answer: answer[0]))
            sizes = {new.task_id: size_of(new) for new in tasks}
            made = [a.task for _, a in told or [] if isinstance(a, SubmitOutcome) and a.created]
            self._room.add(len(made) - held[0], sum(sizes[task.task_id] for task in made) - held[1])
            for task in made:
                self._soonest.add(task.run_after)
            if displaced and error is None:
                for listener in self._displaced_listeners:
                    listener(list(displaced))

        # No hint when the queue looked full: a flood of refused Submits must not wake every claimer (a NOTIFY each,
        # on PostgreSQL). Workers poll, should room have opened meanwhile.
        queued = self._room.size()[0]
        self._writer.submit(insert, done, notify="work" if queued < self._room.max_queue else "")

    def _known(
        self, cur: Cursor, tasks: Sequence[NewTask], refused: list[tuple[int, Answer]]
    ) -> list[tuple[int, Answer]]:
        """Of the tasks refused for want of room, those stored already are answered as any Submit of them is: a
        client's retry of an acknowledged Submit gets its task even while the queue is full."""
        stored = self._q.tasks(cur, [tasks[i].task_id for i, _ in refused])
        return [
            (i, refusal if tasks[i].task_id not in stored else _stored_answer(stored[tasks[i].task_id], tasks[i]))
            for i, refusal in refused
        ]

    def _refuse_newest(
        self, cur: Cursor, admitted: list[tuple[int, NewTask]], new: list[NewTask], births: dict[str, Birth],
        told: list[tuple[int, Answer]], specs: Sequence[LimitSpec],
    ) -> list[NewTask]:  # fmt: skip
        """Of `new`, those REFUSE_NEWEST limits leave room for; the others are answered into `told` (a task stored
        already, as any Submit of it is) and taken out of `births`."""
        kept, refused = refuse_newest(self._q, cur, new, specs)
        if refused:
            stored = self._q.tasks(cur, refused)
            for index, task in admitted:
                if task.task_id in refused and task.task_id in births:
                    known = stored.get(task.task_id)
                    told.append((index, refused[task.task_id] if known is None else _stored_answer(known, task)))
            for task_id in refused:
                births.pop(task_id, None)
        return kept

    def _plan_dependencies(
        self, cur: Cursor, admitted: list[tuple[int, NewTask]], told: list[tuple[int, Answer]], now: float
    ) -> tuple[list[NewTask], dict[str, Birth], dict[str, tuple[str, ...]]]:
        """What the submitted tasks' dependencies make of them: the tasks to insert, each one's (state, error type,
        error message) at birth (REVOKED when a dependency failed already), and the dependencies each must wait
        for. A task naming one that does not exist is answered into `told` and not inserted."""
        wanted = {dep for _, task in admitted for dep in task.after}
        stored = self._q.tasks(cur, wanted, lock=True) if wanted else {}
        births: dict[str, Birth] = {}
        unmet: dict[str, tuple[str, ...]] = {}
        batch: dict[str, Task] = {}  # earlier tasks of this batch, as they will be born
        new: list[NewTask] = []
        for index, task in admitted:
            verdict = judge(task.after, lambda dep: stored.get(dep) or batch.get(dep))
            if verdict.unknown:
                told.append((index, unknown_dependencies(task.task_id, verdict.unknown)))
                continue
            born = Task(task.task_id, task.task_type, {}, TaskState.PENDING, now)
            if verdict.failed is not None:
                born = revoked_for(born, verdict.failed, now)
            unmet[task.task_id] = verdict.unmet if verdict.failed is None else ()
            error = born.error
            births[task.task_id] = (born.state.value, error.type if error else None, error.message if error else None)
            batch.setdefault(task.task_id, born)
            new.append(task)
        return new, births, unmet

    # ------------------------------------------------------------------ running

    def claim(self, node: str, scope: ClaimScope, n: int, *, lease_until: float, now: float) -> ClaimBatch:
        self._soonest.claimed_at(now)
        asked, at = time.monotonic(), [now]

        def claim_then(cur: Cursor) -> builtins.list[Task]:
            # The claim's time is its transaction's: `now` moved on by the wait for the writer, so that a start (and
            # a rate limit's token) is never earlier than a dependency's end this transaction found written.
            at.append(now + (time.monotonic() - asked))
            return self._claim(cur, node, scope, n, lease_until, at[-1])

        claimed: list[Task] = self._write(claim_then)
        tasks = sorted(claimed, key=lambda t: (-t.priority, t.submit_order))
        for task in tasks:
            task.started_at = at[-1]  # on disk once its handler starts (see _start)
        if tasks:
            self._room.add(-len(tasks))
            self._turns.claimed()
        claims = {task.task_id: Claim(task, node, lease_until) for task in tasks}
        return ClaimBatch(
            list(claims.values()),
            durable=lambda task_id: self._start(claims[task_id], wait=True),
            started=lambda task_id: self._start(claims[task_id], wait=False),  # a type safe to run again: at once
        )

    def _claim(
        self, cur: Cursor, node: str, scope: ClaimScope, n: int, lease_until: float, now: float
    ) -> builtins.list[Task]:
        specs = self._limiter.read(cur)
        if not specs:
            self._limiter.forget_held()
            return self._q.claim(cur, node, scope, n, lease_until, now)
        return self._limiter.claim(cur, specs, node, scope, n, lease_until, now)

    def _start(self, claim: Claim, *, wait: bool) -> BaseException | None:
        """Record that a claim's handler starts (started_at): until then a reap sends the task back to PENDING,
        whatever its type, since it never ran. Waited for before a handler that must not run twice starts."""
        started_at = claim.task.started_at or time.time()

        def started(cur: Cursor) -> None:
            self._q.start(cur, claim, started_at)

        if not wait:
            self._writer.submit(started, _best_effort)
            return None
        try:
            self._writer.call(started)
        except Exception as exc:
            return exc
        return None

    def renew(self, node: str, claims: Sequence[Claim], lease_until: float) -> Renewal:
        ids = [claim.task_id for claim in claims]
        held: set[tuple[str, int]] = self._write(lambda cur: self._q.renew(cur, node, ids, lease_until))
        return Renewal([claim for claim in claims if (claim.task_id, claim.attempt) not in held])

    def mark_stopping(self, claim: Claim, task: Task, then: FencedThen) -> None:
        self._writer.submit(lambda cur: self._q.mark_stopping(cur, claim, task.event_sequence),
                            lambda applied, error: then(bool(applied), error), notify="moved",
                            patient=True)  # fmt: skip

    def finish_many(self, ends: Sequence[tuple[Claim, Task]], then: FencedManyThen) -> None:
        def finish(cur: Cursor) -> tuple[list[bool], Settled]:
            written = self._q.finish(cur, ends)
            applied = [claim.task_id in written for claim, _ in ends]
            mine = [final for (_, final), ok in zip(ends, applied, strict=True) if ok]
            return applied, settle(self._q, cur, mine, time.time())

        def done(outcome: tuple[list[bool], Settled] | None, error: BaseException | None) -> None:
            then(outcome[0] if outcome else [False] * len(ends), error)
            if outcome is not None:
                self._settled(*outcome[1])

        self._writer.submit(finish, done, notify="moved", patient=True)  # the server's own: it tries again

    def retry_at(self, claim: Claim, task: Task, due: float, then: FencedThen) -> None:
        def done(applied: bool | None, failure: BaseException | None) -> None:
            if applied:
                self._room.add(1)
                self._soonest.add(due)
            then(bool(applied), failure)

        self._writer.submit(lambda cur: self._q.retry_at(cur, claim, task, due), done, notify="work", patient=True)

    def save_progress(self, updates: Sequence[tuple[Claim, Progress, int]]) -> None:
        if updates:
            rows = list(updates)
            self._writer.submit(lambda cur: self._q.save_progress(cur, rows), _best_effort, notify="moved",
                                patient=True)  # fmt: skip

    def request_stop(self, task_id: str, reason: str, now: float, then: StopThen) -> None:
        def stop(cur: Cursor) -> tuple[StopResult | None, Settled | None]:
            revoked = self._q.revoke_pending(cur, task_id, reason, now)
            if revoked is not None:
                self._q.stop_waiting(cur, [task_id])
                return StopResult(StopEffect.REVOKED, revoked), settle(self._q, cur, [revoked], now)
            flagged = self._q.flag_stop(cur, task_id, reason)
            if flagged is not None:
                return StopResult(StopEffect.STOPPING, flagged), None
            found = self._q.tasks(cur, [task_id]).get(task_id)
            return (None if found is None else StopResult(StopEffect.UNCHANGED, found)), None

        def done(outcome: tuple[StopResult | None, Settled | None] | None, error: BaseException | None) -> None:
            result = outcome[0] if outcome is not None else None
            if error is None and result is None:
                error = TaskNotFound(task_id)
            elif result is not None and result.effect is StopEffect.REVOKED:
                self._room.add(-1)
            then(result, error)
            if outcome is not None and outcome[1] is not None:
                self._settled(*outcome[1])

        self._writer.submit(stop, done, notify="stop")

    def delete(self, task_id: str, then: TaskThen) -> None:
        def gone(cur: Cursor) -> Task | BaseException:
            deleted = self._q.delete(cur, task_id)
            if deleted is not None:
                return deleted
            found = self._q.tasks(cur, [task_id]).get(task_id)
            return TaskNotFound(task_id) if found is None else not_ended(found)

        self._writer.submit(gone, lambda outcome, error: _answer(then, outcome, error))

    def delete_ended(self, task_filter: TaskFilter, ended_before: float | None, limit: int) -> list[str]:
        ids: list[str] = self._write(lambda cur: self._q.delete_ended(cur, task_filter, ended_before, limit))
        return ids

    def expire(self, now: float, retention: float, limit: int) -> list[str]:
        ids: list[str] = self._write(lambda cur: self._q.expire(cur, now, retention, limit))
        return ids

    def retry(self, task_id: str, now: float, then: RetryThen) -> None:
        def again(cur: Cursor) -> tuple[Task, TaskState] | BaseException:
            # Its dependencies first: one that failed refuses the retry, those not ended are waited for again.
            after = self._q.retryable_after(cur, task_id) or []
            stored = self._q.tasks(cur, after, lock=True) if after else {}
            verdict = judge(after, lambda dep: stored.get(dep, _DELETED))
            if verdict.failed is not None:
                return not_retryable_before(task_id, verdict.failed)
            self._q.add_waits(cur, [(task_id, dep) for dep in verdict.unmet])
            outcome = self._q.retry(cur, task_id, len(verdict.unmet))
            if outcome is not None:
                return outcome
            found = self._q.tasks(cur, [task_id]).get(task_id)
            return TaskNotFound(task_id) if found is None else not_retryable(found)

        def done(outcome: tuple[Task, TaskState] | BaseException | None, error: BaseException | None) -> None:
            if error is None and not isinstance(outcome, BaseException):
                self._room.add(1)
            _answer(then, outcome, error)

        self._writer.submit(again, done, notify="work")

    def stops_for(self, node: str) -> list[tuple[str, int, str]]:
        stops: list[tuple[str, int, str]] = self._read(lambda cur: self._q.stops_for(cur, node))
        return stops

    def reap(self, now: float, rerunnable: Collection[str]) -> list[tuple[Task, TaskState]]:
        def reaped(cur: Cursor) -> tuple[list[tuple[Task, TaskState]], Settled]:
            changed = self._q.reap(cur, now, rerunnable)
            return changed, settle(self._q, cur, [task for task, _ in changed if task.state is TaskState.LOST], now)

        changed: list[tuple[Task, TaskState]]
        changed, cascade = self._write(reaped)
        self._settled(*cascade)
        if any(task.state is TaskState.PENDING for task, _ in changed):
            self._room.add(sum(task.state is TaskState.PENDING for task, _ in changed))
            self._writer.submit(_nothing, _best_effort, notify="work")
        return changed

    def end_leases(self, owner_prefix: str) -> int:
        """The leases of a process that is gone (its node names start with `owner_prefix`) ended now, so that the
        next reap takes its tasks rather than waiting a lease for them. How many."""
        ended: int = self._write(lambda cur: self._q.end_leases(cur, owner_prefix))
        return ended

    # ------------------------------------------------------------------ reads

    def get(self, task_id: str) -> Task | None:
        found: dict[str, Task] = self._read(lambda cur: self._q.tasks(cur, [task_id]))
        return found.get(task_id)

    def list(
        self, task_filter: TaskFilter, *, order: TaskOrder = NEWEST_FIRST, after: ListPosition | None, limit: int
    ) -> list[Task]:
        if task_filter.waiting_for_limit:
            task_filter = replace(task_filter, held_back=self._limiter.held_by(task_filter.waiting_for_limit))
        tasks: list[Task] = self._read(lambda cur: self._q.list(cur, task_filter, order, after, limit))
        return tasks

    def changed_since(self, known: dict[str, int]) -> builtins.list[tuple[Task, builtins.list[tuple[int, str]]]]:
        changed: list[tuple[Task, list[tuple[int, str]]]] = self._read(lambda cur: self._q.changed_since(cur, known))
        return changed

    def next_due(self) -> float | None:
        return self._soonest.get()

    def queued(self) -> int:
        return self._room.size()[0]

    def queued_tasks(self) -> builtins.list[Task]:
        # Only a board this server holds alone: on a shared one, each server counts the transitions it makes.
        if not self.exclusive:
            return []
        pending = TaskFilter(states=frozenset({TaskState.PENDING}))
        return self._read(lambda cur: self._q.list(cur, pending, NEWEST_FIRST, None, self._room.max_queue))  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ life

    def task_logs(self) -> Any:
        return self._driver.task_logs()

    def on_work(self, listener: Callable[[], None]) -> None:
        self._driver.on_hint("work", listener)

    def on_stop(self, listener: Callable[[], None]) -> None:
        self._driver.on_hint("stop", listener)

    def on_moved(self, listener: Callable[[], None]) -> None:
        self._driver.on_hint("moved", listener)

    def on_ended(self, listener: EndedListener) -> None:
        self._ended_listeners.append(listener)

    def on_displaced(self, listener: Callable[[builtins.list[tuple[str, str]]], None]) -> None:
        self._displaced_listeners.append(listener)

    def close(self) -> None:
        self._driver.close()


# A dependency no longer stored: only an ended task can be deleted, so it counts as met.
_DELETED = Task("", "", {}, TaskState.SUCCESS, 0.0)


def _nothing(cur: Cursor) -> None:
    """A transaction that only carries a hint."""


def _stored_answer(stored: Task, new: NewTask) -> Answer:
    """A Submit of an id stored already: that task when the request is the same, else a conflict."""
    return SubmitOutcome(stored, created=False) if stored.request_digest == new.request_digest else conflict(stored)


def _unavailable(error: BaseException) -> StoreUnavailable:
    return error if isinstance(error, StoreUnavailable) else StoreUnavailable(str(error))


def _best_effort(result: Any, error: BaseException | None) -> None:
    """For writes whose loss only costs a moment of progress, or a hint: a later one makes up for it."""


def _answer(then: Callable[[Any, BaseException | None], None], outcome: Any, error: BaseException | None) -> None:
    """Tell `then` of an outcome that may be an error the transaction decided on."""
    if error is None and isinstance(outcome, BaseException):
        error = outcome
    then(None if error is not None else outcome, error)
