"""A board whose storage belongs to this process: the embedded SQLite file, or memory for tests.

Because no other process writes the storage, the board keeps what it needs to decide in memory (the unfinished
tasks, the queue in claim order, the delayed retries, who owns each running task) and writes every change
through the store writer, which commits many changes in one transaction (group commit). A change is reported
(its `then` called) only once it is durable; the queue only ever holds tasks whose PENDING state is durable.

Lock: `_lock` guards the memory state; it is never held while a `then` is called, nor while waiting for the disk.

This module is longer than most (about 500 lines) for one reason: it is one class whose state (the queue, the
owners, the lazy RUNNING writes, the submissions in flight) keeps its invariants under one lock, and those are
read best in one place.
"""

from __future__ import annotations

import builtins
import heapq
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import replace

from taskservice.core.board.answers import (
    DEFAULT_MAX_QUEUE_BYTES,
    Answers,
    Inflight,
    as_answer,
    conflict,
    not_created,
    queue_bytes_full,
    queue_full,
    size_of,
    task_bytes,
)
from taskservice.core.board.base import (
    REAP_SEQUENCE_GAP,
    RETRYABLE_STATES,
    Answer,
    Board,
    Claim,
    ClaimBatch,
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
    retried,
)
from taskservice.core.board.dependencies import (
    EndedListener,
    Verdict,
    judge,
    not_retryable_before,
    revoked_for,
    unknown_dependencies,
)
from taskservice.core.errors import TaskNotFound, TaskServiceError, WrongState
from taskservice.core.models import ErrorType, Progress, SubmitOutcome, Task, TaskError, TaskFilter, TaskState
from taskservice.core.schedules import Schedule
from taskservice.core.store.base import DeleteTasks, InsertTask, SaveProgress, SaveTask, TaskStore, Write
from taskservice.core.store.writer import StoreWriter

log = logging.getLogger(__name__)

# The owner recorded for what a previous process left running: its lease has expired, the first reap takes it.
PREVIOUS_PROCESS = "(a previous process)"


class LocalBoard(OneWriter, Board):
    """The board over a TaskStore that only this process writes."""

    _writer: StoreWriter

    def __init__(
        self,
        store: TaskStore,
        *,
        max_queue: int = 100_000,
        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
        exclusive: bool = True,
        owns_store: bool = True,
    ) -> None:
        """`owns_store`: close() closes the store too (a board made over a store someone else holds leaves it)."""
        self.exclusive = exclusive
        self._store = store
        self._owns_store = owns_store
        self._max_queue = max_queue
        self._max_queue_bytes = max_queue_bytes
        self._lock = threading.Lock()
        self._unfinished: dict[str, Task] = {}
        self._owners: dict[str, Claim] = {}
        self._ready: list[tuple[int, int, str]] = []  # (-priority, submission order, task id)
        self._delayed: list[tuple[float, int, str]] = []  # (run_after, submission order, task id)
        self._queued = 0
        # The bytes of args and labels of the queued tasks (each one's in _sizes), and of those being inserted:
        # the queue is held in memory, so --max-queue-bytes bounds what it takes as much as --max-queue does.
        self._queued_bytes = 0
        self._sizes: dict[str, int] = {}
        self._inflight_bytes = 0
        self._inflight: dict[str, Inflight] = {}
        self._revoking: set[str] = set()
        self._progress: dict[str, SaveProgress] = {}
        # RUNNING states of claims not written yet (see claim()), and those of them whose handler started.
        self._lazy: dict[str, SaveTask] = {}
        self._started: set[str] = set()
        # Ended tasks being retried by hand (read from the store, PENDING once written), or deleted.
        self._retrying: set[str] = set()
        self._deleting: set[str] = set()
        # Stops asked of running tasks, for their owners: task id -> (attempt, reason).
        self._stops: dict[str, tuple[int, str]] = {}
        self._stop_listeners: list[Callable[[], None]] = []
        self._work_listeners: list[Callable[[], None]] = []
        self._ended_listeners: list[EndedListener] = []
        # Dependencies (see dependencies.py): the unmet ones of each waiting task, the tasks waiting for each, and
        # the dependency that failed of a task whose write was on its way then (a Submit, a retry).
        self._waiting: dict[str, set[str]] = {}
        self._dependents: dict[str, set[str]] = {}
        self._doomed: dict[str, Task] = {}
        # Schedules: all of them, as stored; writes hold _schedule_lock, which is never taken under _lock.
        self._schedule_lock = threading.Lock()
        self._schedules = {s.schedule_id: s for s in store.load_schedules()}
        self._next_order = store.max_order() + 1
        revoked = self._load()
        if revoked:  # dependents whose dependency failed just before a crash
            store.apply([SaveTask(task) for task in revoked])
        self._writer = StoreWriter(store, progress_source=self._take_progress)

    def _load(self) -> list[Task]:
        """What the storage holds unfinished: PENDING tasks are queued again (or wait for their dependencies);
        running ones belong to a process that is gone (the storage is this process's alone), so their leases are
        over and the first reap takes them. Returns the waiting tasks whose dependency had failed, REVOKED, for the
        caller to write (a crash came between that end and theirs)."""
        revoked: list[Task] = []
        for task in self._store.load_unfinished():  # in submission order: a task's dependencies come before it
            verdict = judge(task.after, self._loaded_dependency) if task.state is TaskState.PENDING else None
            if verdict is not None and verdict.failed is not None:
                revoked.append(revoked_for(task, verdict.failed, time.time()))
                self._unfinished[task.task_id] = revoked[-1]  # its own dependents, later in the loop, see it so
                continue
            self._unfinished[task.task_id] = task
            if task.state is TaskState.PENDING:
                if verdict is not None and verdict.unmet:
                    self._wait(task.task_id, verdict.unmet)
                self._enqueue(task)
            else:
                self._owners[task.task_id] = Claim(task.copy(), PREVIOUS_PROCESS, lease_until=0.0)
        for task in revoked:
            del self._unfinished[task.task_id]
        return revoked

    def _loaded_dependency(self, task_id: str) -> Task | None:
        """A dependency as _load() finds it; one deleted since it ended counts as met (a SUCCESS)."""
        found = self._unfinished.get(task_id) or self._store.get(task_id)
        return found if found is not None else _DELETED

    def _read_stored(self, task_ids: Iterable[str]) -> dict[str, Task | None]:
        """The stored rows of those tasks that are not in memory now, read before taking _lock: a disk read must not
        hold up every claim and end. (A task that leaves memory meanwhile is read again under the lock: rare.)"""
        return {
            task_id: self._store.get(task_id)
            for task_id in set(task_ids)
            if task_id not in self._unfinished and task_id not in self._inflight
        }

    def _dependency(self, task_id: str, stored: dict[str, Task | None]) -> Task | None:
        """A dependency as it is now, or None for no such task; `stored` from _read_stored(). Holds _lock."""
        inflight = self._inflight.get(task_id)
        if inflight is not None:
            return inflight.task
        return self._unfinished.get(task_id) or self._stored(task_id, stored)

    def _stored(self, task_id: str, stored: dict[str, Task | None]) -> Task | None:
        """The row of a task not in memory, from `stored` (read before the lock). Holds _lock."""
        return stored[task_id] if task_id in stored else self._store.get(task_id)

    def _wait(self, task_id: str, unmet: Collection[str]) -> None:
        """`task_id` waits for `unmet` to end. Holds _lock."""
        self._waiting[task_id] = set(unmet)
        for dep in unmet:
            self._dependents.setdefault(dep, set()).add(task_id)

    def _stop_waiting(self, task_id: str) -> None:
        """`task_id` waits for nothing any more (it ended). Holds _lock."""
        for dep in self._waiting.pop(task_id, ()):
            waiting = self._dependents.get(dep)
            if waiting is not None:
                waiting.discard(task_id)
                if not waiting:
                    del self._dependents[dep]

    # ------------------------------------------------------------------ submission

    def submit(self, tasks: Sequence[NewTask], now: float, then: SubmitThen) -> None:
        answers = Answers(len(tasks), then)
        immediate: list[tuple[int, Answer]] = []
        created: list[tuple[int, Task]] = []
        sizes = [size_of(new) for new in tasks]  # measured at admission; before the lock otherwise
        stored = self._read_stored(
            [new.task_id for new in tasks if not new.fresh_id] + [dep for new in tasks for dep in new.after]
        )
        with self._lock:
            for index, new in enumerate(tasks):
                try:
                    found = self._find_same(new, stored)
                except TaskServiceError as exc:
                    immediate.append((index, exc))
                    continue
                if isinstance(found, Inflight):
                    found.followers.append(_follower(answers, index))
                elif found is not None:
                    immediate.append((index, SubmitOutcome(found, created=False)))
                elif self._queued + len(self._inflight) >= self._max_queue:
                    immediate.append((index, queue_full(self._queued, self._max_queue)))
                elif self._queued_bytes + self._inflight_bytes + sizes[index] > self._max_queue_bytes:
                    immediate.append((index, queue_bytes_full(self._queued_bytes, sizes[index], self._max_queue_bytes)))
                else:
                    verdict = (
                        judge(new.after, lambda dep: self._dependency(dep, stored)) if new.after else _NO_DEPENDENCIES
                    )
                    if verdict.unknown:
                        immediate.append((index, unknown_dependencies(new.task_id, verdict.unknown)))
                        continue
                    task = self._new_task(new, now)
                    if verdict.failed is not None:  # stored as it ends: it never runs
                        task = revoked_for(task, verdict.failed, now)
                    elif verdict.unmet:
                        self._wait(task.task_id, verdict.unmet)
                    self._inflight[task.task_id] = Inflight(task, sizes[index])
                    self._inflight_bytes += sizes[index]
                    created.append((index, task))
        if immediate:
            self._writer.write(then=lambda _error: answers.fill_many(immediate))
        if created:
            self._writer.write(
                *(InsertTask(task) for _, task in created),
                then=lambda error: self._inserted(created, answers, error),
            )

    def _find_same(self, new: NewTask, stored: dict[str, Task | None]) -> Task | Inflight | None:
        """The task already under this id (or its commit on the way), when the request is the same; TaskConflict
        when it is not; None for a free id. `stored` from _read_stored(). Holds _lock."""
        if new.fresh_id:
            return None
        inflight = self._inflight.get(new.task_id)
        if inflight is not None:
            if inflight.task.request_digest != new.request_digest:
                raise conflict(inflight.task)
            return inflight
        existing = self._unfinished.get(new.task_id)
        if existing is None:
            existing = self._stored(new.task_id, stored)
        if existing is None:
            return None
        if existing.request_digest != new.request_digest:
            raise conflict(existing)
        return existing.copy()

    def _new_task(self, new: NewTask, now: float) -> Task:
        order, self._next_order = self._next_order, self._next_order + 1
        return Task(
            task_id=new.task_id,
            task_type=new.task_type,
            args=new.args,
            state=TaskState.PENDING,
            submitted_at=now,
            priority=new.priority,
            labels=dict(new.labels),
            time_limit=new.time_limit,
            submit_order=order,
            event_sequence=1,
            request_digest=new.request_digest,
            run_after=new.run_after,
            retention=new.retention,
            after=new.after,
        )

    def _count_queued(self, task_id: str, size: int) -> None:
        """One more task queued, of `size` bytes. Holds _lock."""
        self._queued += 1
        self._queued_bytes += size
        self._sizes[task_id] = size

    def _uncount_queued(self, task_id: str) -> None:
        """A queued task leaves the queue (claimed, revoked). Holds _lock."""
        self._queued -= 1
        self._queued_bytes -= self._sizes.pop(task_id, 0)

    def _inserted(self, created: list[tuple[int, Task]], answers: Answers, error: BaseException | None) -> None:
        """On the writer thread: the new rows are committed (or not): queue them, answer everyone."""
        failure = None if error is None else as_answer(error)
        own: list[tuple[int, Answer]] = []
        followers: list[tuple[Callable[[Answer], None], Answer]] = []
        with self._lock:
            for index, task in created:
                inflight = self._inflight.pop(task.task_id)
                size = inflight.size
                self._inflight_bytes -= size
                answer: Answer = failure if failure is not None else SubmitOutcome(task.copy(), created=True)
                if failure is None and not task.state.is_terminal:
                    self._unfinished[task.task_id] = task
                    self._count_queued(task.task_id, size)  # from now on (claimable below, once its creator knows)
                elif failure is not None:
                    self._stop_waiting(task.task_id)
                    self._doomed.pop(task.task_id, None)
                own.append((index, answer))
                followers.extend((follower, answer) for follower in inflight.followers)
        # Answered before they can be claimed, so that whoever hears of a task's creation hears it first.
        answers.fill_many(own)
        for tell, answer in followers:
            tell(answer)
        if failure is not None:
            return
        revocations = []
        with self._lock:
            for _, task in created:
                if task.state is TaskState.PENDING and task.task_id not in self._revoking:
                    self._enqueue(task, counted=True)
                    revocations.extend(self._doomed_meanwhile(task.task_id))
        self._revoke_dependents(revocations)
        self._work_arrived()

    def _enqueue(self, task: Task, *, counted: bool = False) -> None:
        """Put a PENDING task where claim() finds it (counted: it is in `_queued` already); one waiting for
        dependencies is only counted, and put there once they are met. Holds _lock."""
        if not counted:
            self._count_queued(task.task_id, task_bytes(task.args, task.labels))
        if self._waiting.get(task.task_id):
            return
        if task.run_after is not None:
            heapq.heappush(self._delayed, (task.run_after, task.submit_order, task.task_id))
        else:
            heapq.heappush(self._ready, (-task.priority, task.submit_order, task.task_id))

    # ------------------------------------------------------------------ dependencies

    def _ended(self, finals: Sequence[Task]) -> None:
        """These tasks' ends are durable: their dependents are released (SUCCESS) or revoked (any other end).
        Takes _lock."""
        if not self._dependents:
            # Nothing waits (read without the lock: a task naming one of `finals` registered before that one left
            # _unfinished, under the lock, or else found it ended and decided then). The common case, on every end.
            return
        released = False
        revocations: list[tuple[Task, TaskState]] = []
        with self._lock:
            for final in finals:
                for task_id in self._dependents.pop(final.task_id, ()):
                    unmet = self._waiting.get(task_id)
                    if unmet is None:
                        continue
                    if final.state is not TaskState.SUCCESS:
                        revocations.extend(self._revocation(task_id, final))
                        continue
                    unmet.discard(final.task_id)
                    task = self._unfinished.get(task_id)
                    if not unmet and task is not None:
                        del self._waiting[task_id]
                        if task.state is TaskState.PENDING and task_id not in self._revoking:
                            self._enqueue(task, counted=True)
                            released = True
                    elif not unmet:
                        del self._waiting[task_id]  # its write is on the way; it is queued once durable
        self._revoke_dependents(revocations)
        if released:
            self._work_arrived()

    def _revocation(self, task_id: str, dep: Task) -> list[tuple[Task, TaskState]]:
        """`task_id` ends because `dep` did not succeed: the write to make (none yet if its own write is on the
        way: it is revoked once that is durable). Holds _lock."""
        task = self._unfinished.get(task_id)
        if task is None or task.state is not TaskState.PENDING or task_id in self._revoking:
            if task_id in self._inflight or task_id in self._retrying:
                self._doomed[task_id] = dep
            return []
        self._revoking.add(task_id)
        self._uncount_queued(task_id)
        self._stop_waiting(task_id)
        return [(revoked_for(task, dep, dep.ended_at or time.time()), TaskState.PENDING)]

    def _doomed_meanwhile(self, task_id: str) -> list[tuple[Task, TaskState]]:
        """A task just durable whose dependency failed while its write was on the way. Holds _lock."""
        dep = self._doomed.pop(task_id, None)
        return self._revocation(task_id, dep) if dep is not None else []

    def _revoke_dependents(self, revocations: list[tuple[Task, TaskState]]) -> None:
        """Write these dependents' ends; then show them, and go on down the chain."""
        if not revocations:
            return

        def written(error: BaseException | None) -> None:
            with self._lock:
                for final, _ in revocations:
                    self._revoking.discard(final.task_id)
                    if error is None:
                        self._unfinished.pop(final.task_id, None)
            if error is not None:  # they stay PENDING, never claimed; the next start revokes them
                log.warning("could not revoke %d tasks whose dependency failed: %s", len(revocations), error)
                return
            for listener in self._ended_listeners:
                listener(revocations)
            self._ended([final for final, _ in revocations])

        self._writer.write(*(SaveTask(final.copy()) for final, _ in revocations), then=written)

    # ------------------------------------------------------------------ running

    def claim(
        self, node: str, task_types: Collection[str] | None, n: int, *, lease_until: float, now: float
    ) -> ClaimBatch:
        claims: list[Claim] = []
        passed_over: list[tuple[int, int, str]] = []
        with self._lock:
            self._release_due(now)
            while self._ready and len(claims) < n:
                entry = heapq.heappop(self._ready)
                task = self._unfinished.get(entry[2])
                if task is None or task.state is not TaskState.PENDING or task.task_id in self._revoking:
                    continue  # revoked, or claimed through an older entry
                if task_types is not None and task.task_type not in task_types:
                    passed_over.append(entry)
                    continue
                self._uncount_queued(task.task_id)
                task.state = TaskState.RUNNING
                task.attempt += 1
                task.started_at = now
                task.run_after = None
                task.progress = Progress()
                task.event_sequence += 1
                claim = Claim(task.copy(), node, lease_until)
                self._owners[task.task_id] = claim
                claims.append(claim)
            for entry in passed_over:
                heapq.heappush(self._ready, entry)
            # RUNNING is written lazily: when the owner waits for it (wait_durable, before it starts a handler of a
            # type that must not run twice), else with the next progress flush once its handler started, or never
            # when its end comes first and supersedes it. Nobody reads this storage but this board, and after a
            # crash a task whose RUNNING never reached the disk is PENDING and runs again: what a type safe to re-run
            # accepts, and right for a claimed task whose handler never started.
            for claim in claims:
                self._lazy[claim.task_id] = SaveTask(claim.task)
        if not claims:
            return ClaimBatch([])
        return ClaimBatch(claims, self._make_durable, self._mark_started)

    def _mark_started(self, task_id: str) -> None:
        with self._lock:
            if task_id in self._lazy:
                self._started.add(task_id)

    def _make_durable(self, task_id: str) -> BaseException | None:
        """Write the lazy RUNNING state of this claim now, and wait; the error if it could not be."""
        with self._lock:
            write = self._lazy.pop(task_id, None)
        if write is None:
            return None  # its end or a stop was written already
        try:
            self._writer.commit(write).result()
        except Exception as exc:
            return exc
        return None

    def _release_due(self, now: float) -> None:
        """Move delayed tasks whose run_after has come to the ready queue. Holds _lock."""
        while self._delayed and self._delayed[0][0] <= now:
            _, order, task_id = heapq.heappop(self._delayed)
            task = self._unfinished.get(task_id)
            if task is not None and task.state is TaskState.PENDING:
                heapq.heappush(self._ready, (-task.priority, order, task_id))

    def stops_for(self, node: str) -> list[tuple[str, int, str]]:
        told = []
        with self._lock:
            for task_id, (attempt, reason) in list(self._stops.items()):
                owner = self._owners.get(task_id)
                if owner is None or owner.attempt != attempt:
                    del self._stops[task_id]  # that run ended meanwhile
                elif owner.node == node:
                    del self._stops[task_id]
                    told.append((task_id, attempt, reason))
        return told

    def next_due(self) -> float | None:
        with self._lock:
            return self._delayed[0][0] if self._delayed else None

    def renew(self, node: str, claims: Sequence[Claim], lease_until: float) -> Renewal:
        lost = []
        with self._lock:
            for claim in claims:
                owner = self._owners.get(claim.task_id)
                if owner is not None and _same_run(owner, claim):
                    self._owners[claim.task_id] = replace(owner, lease_until=lease_until)
                else:
                    lost.append(claim)
        return Renewal(lost)

    def mark_stopping(self, claim: Claim, task: Task, then: FencedThen) -> None:
        with self._lock:
            owned = self._owns(claim)
            if owned:
                self._lazy.pop(claim.task_id, None)
                self._unfinished[task.task_id] = task.copy()
        self._fenced_write(owned, [SaveTask(task.copy())] if owned else [], then)

    def finish_many(self, ends: Sequence[tuple[Claim, Task]], then: FencedManyThen) -> None:
        with self._lock:
            owned = [self._owns(claim) for claim, _ in ends]
            for (claim, _), mine in zip(ends, owned, strict=True):
                if mine:
                    self._lazy.pop(claim.task_id, None)
        writes = [SaveTask(final.copy()) for (_, final), mine in zip(ends, owned, strict=True) if mine]

        def done(error: BaseException | None) -> None:
            if error is not None:
                then([False] * len(ends), error)
                return
            applied = []
            with self._lock:
                for (claim, final), mine in zip(ends, owned, strict=True):
                    mine = mine and self._owns(claim)  # not reaped meanwhile
                    if mine:
                        del self._owners[final.task_id]
                        self._unfinished.pop(final.task_id, None)
                        self._progress.pop(final.task_id, None)
                    applied.append(mine)
            then(applied, None)
            self._ended([final for (_, final), mine in zip(ends, applied, strict=True) if mine])

        self._writer.write(*writes, then=done)

    def retry_at(self, claim: Claim, task: Task, due: float, then: FencedThen) -> None:
        pending = task.copy()
        pending.state = TaskState.PENDING
        pending.run_after = due
        with self._lock:
            owned = self._owns(claim)
            if owned:
                self._lazy.pop(claim.task_id, None)

        def done(error: BaseException | None) -> None:
            applied = False
            if error is None:
                with self._lock:
                    applied = self._owns(claim)
                    if applied:
                        del self._owners[pending.task_id]
                        self._progress.pop(pending.task_id, None)
                        self._unfinished[pending.task_id] = pending
                        self._enqueue(pending)
            then(applied, error)
            if applied:
                self._work_arrived()

        if not owned:
            self._writer.write(then=lambda _error: then(False, None))
            return
        self._writer.write(SaveTask(pending.copy()), then=done)

    def _fenced_write(self, owned: bool, writes: list[Write], then: FencedThen) -> None:
        self._writer.write(*writes, then=lambda error: then(owned and error is None, error))

    def _owns(self, claim: Claim) -> bool:
        """Holds _lock."""
        owner = self._owners.get(claim.task_id)
        return owner is not None and _same_run(owner, claim)

    def save_progress(self, updates: Sequence[tuple[Claim, Progress, int]]) -> None:
        with self._lock:
            for claim, progress, sequence in updates:
                if self._owns(claim):
                    self._progress[claim.task_id] = SaveProgress(claim.task_id, progress, sequence)
                    task = self._unfinished[claim.task_id]
                    task.progress = progress
                    task.event_sequence = max(task.event_sequence, sequence)

    def _take_progress(self) -> list[Write]:
        """The writer's call, once per flush interval: the RUNNING states of started runs not written yet, then the
        latest progress of every task that moved (not of a task still PENDING on disk)."""
        with self._lock:
            running = [self._lazy.pop(task_id) for task_id in self._started if task_id in self._lazy]
            self._started.clear()
            taken, self._progress = self._progress, {}
            return [*running, *(write for task_id, write in taken.items() if task_id not in self._lazy)]

    def request_stop(self, task_id: str, reason: str, now: float, then: StopThen) -> None:
        owned: StopEffect | None = None  # set when the task runs: its owner stops it
        final: Task | None = None
        with self._lock:
            task = self._unfinished.get(task_id)
            if task is not None and task.state is TaskState.PENDING and task_id not in self._revoking:
                self._revoking.add(task_id)
                self._uncount_queued(task_id)
                final = task.copy()
                final.state = TaskState.REVOKED
                final.error = TaskError(ErrorType.REVOKED, reason)
                final.ended_at = now
                final.run_after = None
                final.event_sequence += 1
            elif task is not None:
                # Running: its owner stops it, told through stops_for().
                effect = StopEffect.STOPPING if task.state is TaskState.RUNNING else StopEffect.UNCHANGED
                owner = self._owners.get(task_id)
                if effect is StopEffect.STOPPING and owner is not None:
                    self._stops[task_id] = (owner.attempt, reason)
                snapshot = task.copy()
                self._writer.write(then=lambda _error: then(StopResult(effect, snapshot), None))
                owned = effect
        if owned is not None:
            if owned is StopEffect.STOPPING:
                # With no lock held: a listener (the watchdog) takes the engine's own locks, in their own order.
                for listener in self._stop_listeners:
                    listener()
            return
        if final is None:
            stored = self._store.get(task_id)
            result = None if stored is None else StopResult(StopEffect.UNCHANGED, stored)
            error = TaskNotFound(task_id) if stored is None else None
            self._writer.write(then=lambda _error: then(result, error))
            return

        def revoked(error: BaseException | None) -> None:
            with self._lock:
                self._revoking.discard(task_id)
                if error is None:
                    self._unfinished.pop(task_id, None)
                    self._stop_waiting(task_id)
                else:  # still PENDING: it will run after all
                    assert task is not None  # it was PENDING in memory: that is how `final` was made
                    self._enqueue(task)
            if error is None:
                then(StopResult(StopEffect.REVOKED, final), None)
                self._ended([final])
            else:
                then(None, error)
                self._work_arrived()

        self._writer.write(SaveTask(final), then=revoked)

    def delete(self, task_id: str, then: TaskThen) -> None:
        with self._lock:
            task = self._unfinished.get(task_id)
            busy = task is not None or task_id in self._retrying or task_id in self._deleting
            if not busy:
                self._deleting.add(task_id)
        if busy:
            error = not_ended(task) if task is not None else WrongState(f"task {task_id!r} is being changed")
            self._writer.write(then=lambda _error: then(None, error))
            return
        stored = self._store.get(task_id)  # not unfinished: the store holds it as it ended
        if stored is None:
            with self._lock:
                self._deleting.discard(task_id)
            self._writer.write(then=lambda _error: then(None, TaskNotFound(task_id)))
            return

        def deleted(error: BaseException | None) -> None:
            with self._lock:
                self._deleting.discard(task_id)
            then(None if error is not None else stored, error)

        self._writer.write(DeleteTasks((task_id,)), then=deleted)

    def delete_ended(self, task_filter: TaskFilter, ended_before: float | None, limit: int) -> list[str]:
        return self._delete_now(self._store.ended_ids(task_filter, ended_before, limit))

    def expire(self, now: float, retention: float, limit: int) -> list[str]:
        return self._delete_now(self._store.expired_ids(now, retention, limit))

    def _delete_now(self, task_ids: list[str]) -> list[str]:
        """Delete these ended tasks, but those being retried or deleted meanwhile; the ids deleted."""
        with self._lock:
            free = [t for t in task_ids if t not in self._unfinished and t not in self._retrying | self._deleting]
            self._deleting.update(free)
        try:
            if free:
                self._writer.commit(DeleteTasks(tuple(free))).result()
        finally:
            with self._lock:
                self._deleting.difference_update(free)
        return free

    def retry(self, task_id: str, now: float, then: RetryThen) -> None:
        with self._lock:
            task = self._unfinished.get(task_id)
            busy = task is not None or task_id in self._retrying or task_id in self._deleting
            if not busy:
                self._retrying.add(task_id)  # a second retry meanwhile finds it busy, as if already PENDING
        if busy:
            error = not_retryable(task) if task is not None else WrongState(f"task {task_id!r} is being retried")
            self._writer.write(then=lambda _error: then(None, error))
            return
        # Not unfinished: its end is committed, so the store's copy is the task as it ended.
        stored = self._store.get(task_id)
        refusal: TaskServiceError | None = TaskNotFound(task_id) if stored is None else None
        if stored is not None and stored.state not in RETRYABLE_STATES:
            refusal = not_retryable(stored)
        dependencies = self._read_stored(stored.after) if stored is not None else {}
        with self._lock:
            verdict = (
                judge(stored.after, lambda dep: self._dependency(dep, dependencies) or _DELETED) if stored else None
            )
            if verdict is not None and verdict.failed is not None:
                refusal = not_retryable_before(task_id, verdict.failed)
            elif verdict is not None and verdict.unmet and refusal is None:
                self._wait(task_id, verdict.unmet)  # from now on, so that an end meanwhile is not missed
        if stored is None or refusal is not None:
            with self._lock:
                self._retrying.discard(task_id)
            self._writer.write(then=lambda _error: then(None, refusal))
            return
        pending = retried(stored)

        def written(error: BaseException | None) -> None:
            revocations = []
            with self._lock:
                self._retrying.discard(task_id)
                if error is None:
                    self._unfinished[task_id] = pending
                    self._enqueue(pending)
                    revocations = self._doomed_meanwhile(task_id)
                else:
                    self._stop_waiting(task_id)
                    self._doomed.pop(task_id, None)
            then(None if error is not None else (pending.copy(), stored.state), error)
            if error is None:
                self._revoke_dependents(revocations)
                self._work_arrived()

        self._writer.write(SaveTask(pending.copy()), then=written)

    def reap(self, now: float, rerunnable: Collection[str]) -> list[tuple[Task, TaskState]]:
        changed: list[tuple[Task, TaskState]] = []
        with self._lock:
            for task_id, owner in list(self._owners.items()):
                if owner.lease_until >= now:
                    continue
                del self._owners[task_id]
                self._progress.pop(task_id, None)
                never_started = self._lazy.pop(task_id, None) is not None and task_id not in self._started
                self._started.discard(task_id)
                task = self._unfinished[task_id]
                previous = task.state
                task.event_sequence += REAP_SEQUENCE_GAP
                if never_started:  # claimed, but its handler never ran: as if never claimed
                    task.attempt -= 1
                    task.started_at = None
                if never_started or task.task_type in rerunnable:
                    task.state = TaskState.PENDING
                    self._enqueue(task)
                else:
                    task.state = TaskState.LOST
                    task.ended_at = now
                    task.error = TaskError(
                        ErrorType.SERVER_RESTARTED,
                        f"the server running attempt {task.attempt} of this task stopped (a crash, or it lost "
                        f"contact), and task type {task.task_type!r} is not re-run after a crash",
                    )
                    del self._unfinished[task_id]
                changed.append((task.copy(), previous))
        if changed:
            self._writer.commit(*(SaveTask(task) for task, _ in changed)).result()
            self._work_arrived()
            self._ended([task for task, _ in changed if task.state.is_terminal])
        return changed

    # ------------------------------------------------------------------ reads

    def get(self, task_id: str) -> Task | None:
        return self.peek(task_id) or self._store.get(task_id)

    def peek(self, task_id: str) -> Task | None:
        with self._lock:
            task = self._unfinished.get(task_id)
            return task.copy() if task is not None else None

    def list(self, task_filter: TaskFilter, *, before_order: int | None, limit: int) -> list[Task]:
        found = self._store.list(task_filter, before_order=before_order, limit=limit)
        with self._lock:  # unfinished tasks as they are now, not as last written
            return [self._unfinished.get(t.task_id, t).copy() for t in found]

    def queued(self) -> int:
        with self._lock:
            return self._queued

    def queued_bytes(self) -> int:
        with self._lock:
            return self._queued_bytes

    def queued_tasks(self) -> builtins.list[Task]:
        """The PENDING tasks, for gauges that count them at start."""
        with self._lock:
            return [t.copy() for t in self._unfinished.values() if t.state is TaskState.PENDING]

    # ------------------------------------------------------------------ schedules

    def add_schedule(self, schedule: Schedule) -> tuple[Schedule, bool]:
        with self._schedule_lock:
            existing = self._schedules.get(schedule.schedule_id)
            if existing is not None:
                return existing.copy(), False
            self._store.put_schedule(schedule)
            self._schedules[schedule.schedule_id] = schedule.copy()
            return schedule.copy(), True

    def get_schedule(self, schedule_id: str) -> Schedule | None:
        with self._schedule_lock:
            found = self._schedules.get(schedule_id)
            return found.copy() if found is not None else None

    def list_schedules(self, after_id: str, limit: int) -> builtins.list[Schedule]:
        with self._schedule_lock:
            ids = sorted(schedule_id for schedule_id in self._schedules if schedule_id > after_id)[:limit]
            return [self._schedules[schedule_id].copy() for schedule_id in ids]

    def save_schedule(self, schedule: Schedule, expected: Schedule) -> bool:
        with self._schedule_lock:
            stored = self._schedules.get(schedule.schedule_id)
            if stored is None or (stored.next_due, stored.paused) != (expected.next_due, expected.paused):
                return False
            self._store.put_schedule(schedule)
            self._schedules[schedule.schedule_id] = schedule.copy()
            return True

    def remove_schedule(self, schedule_id: str) -> Schedule | None:
        with self._schedule_lock:
            if schedule_id not in self._schedules:
                return None
            self._store.delete_schedule(schedule_id)
            return self._schedules.pop(schedule_id)

    def due_schedules(self, now: float, limit: int) -> builtins.list[Schedule]:
        with self._schedule_lock:
            due = [s for s in self._schedules.values() if not s.paused and s.next_due <= now]
            return [s.copy() for s in sorted(due, key=lambda s: s.next_due)[:limit]]

    def next_schedule_due(self) -> float | None:
        with self._schedule_lock:
            return min((s.next_due for s in self._schedules.values() if not s.paused), default=None)

    # ------------------------------------------------------------------ life

    def on_work(self, listener: Callable[[], None]) -> None:
        self._work_listeners.append(listener)

    def _work_arrived(self) -> None:
        for listener in self._work_listeners:
            listener()

    def on_stop(self, listener: Callable[[], None]) -> None:
        self._stop_listeners.append(listener)

    def on_ended(self, listener: EndedListener) -> None:
        self._ended_listeners.append(listener)

    def close(self) -> None:
        self._writer.close()
        if self._owns_store:
            self._store.close()


_NO_DEPENDENCIES = Verdict()
# A dependency no longer stored: it was deleted, which only an ended task can be, so it counts as met.
_DELETED = Task("", "", {}, TaskState.SUCCESS, 0.0)


def _same_run(owner: Claim, claim: Claim) -> bool:
    return owner.node == claim.node and owner.attempt == claim.attempt


def _follower(answers: Answers, index: int) -> Callable[[Answer], None]:
    """Tells a Submit of an id being inserted by another what that insert answered (not created by it)."""
    return lambda answer: answers.fill(index, not_created(answer))
