"""The server killed with SIGKILL again and again while clients submit, then restarted on the same database.

A supervisor (this test) runs rounds: 2-3 client threads, each with its own TaskClient, submit `demo` and `sleep`
tasks (some under their own ids, some re-submitted to exercise idempotency) and sample states with GetState and
ListTasks, while the supervisor SIGKILLs the server at a random moment and restarts it. Every acknowledged Submit
is recorded; errors around a kill are expected and only remembered as "may or may not exist".

At the end, with the server up: every acknowledged task exists exactly once, nothing else is stored but what an
unanswered Submit may have left, every task is terminal and SUCCESS or LOST (LOST only when it had started
before a kill), and no task was ever seen leaving a terminal state or moving backwards. Some tasks run later (none
may start early); some run after others (none may start before those succeeded; those whose dependency was LOST
end REVOKED with DependencyFailed, never run).

The choices are seeded (FAULTS_SEED=<n> replays them; the timing of kills against requests still varies).
"""

from __future__ import annotations

import collections
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from taskservice.client import AlreadyExists, Task, TaskClient, TaskNotFound, TaskServiceError, TaskState
from tests.support.server import ServerProcess

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("FAULTS_SEED") or random.SystemRandom().randrange(2**32))
MIN_KILLS = 20
MAX_KILLS = 25
# Wall-clock budget of the kill rounds; the final checks come after it.
ROUNDS_BUDGET_SECONDS = 60.0
FINAL_WAIT_SECONDS = 30.0
# Errors a call may end with because the server died under it, or was down.
CRASH_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
RANK = {TaskState.PENDING: 0, TaskState.RUNNING: 1}  # terminal states rank 2
# REVOKED only for a task whose dependency did not succeed (checked at the end).
EXPECTED_STATES = {TaskState.PENDING, TaskState.RUNNING, TaskState.SUCCESS, TaskState.LOST, TaskState.REVOKED}

RequestKey = tuple[str, tuple[tuple[str, float], ...]]


@dataclass(frozen=True)
class Request:
    task_type: str
    args: dict[str, Any]
    delay: float | None = None  # run later: this long after it is accepted
    after: tuple[str, ...] = ()  # run after these acknowledged tasks succeeded

    @property
    def key(self) -> RequestKey:
        return self.task_type, tuple(sorted((k, float(v)) for k, v in self.args.items()))


@dataclass(frozen=True)
class Observation:
    """A state seen by a call that started at `start` and returned at `end` (monotonic seconds)."""

    start: float
    end: float
    state: TaskState
    via: str


def rank(state: TaskState) -> int:
    return 2 if state.is_terminal else RANK[state]


@dataclass
class Ledger:
    """What the clients were told, shared by the threads."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    # Acknowledged Submits: task id -> the request.
    acked: dict[str, Request] = field(default_factory=dict)
    # Every client-chosen id ever sent, with its request (one request per id), and how many Submits sent it.
    sent: dict[str, Request] = field(default_factory=dict)
    attempts: collections.Counter[str] = field(default_factory=collections.Counter)
    # How many answers said created=True, per task id.
    created: collections.Counter[str] = field(default_factory=collections.Counter)
    # Submits without an id that got no answer: each may have left one task with an id we never learnt.
    unanswered_generated: collections.Counter[RequestKey] = field(default_factory=collections.Counter)
    observations: dict[str, list[Observation]] = field(default_factory=lambda: collections.defaultdict(list))
    anomalies: list[str] = field(default_factory=list)
    # (wall-clock time just before the SIGKILL, just after it was reaped, wall-clock time the restart served)
    kills: list[tuple[float, float, float]] = field(default_factory=list)
    submits: int = 0
    crash_errors: int = 0
    resubmits: int = 0
    conflicts_refused: int = 0

    def observe(self, task: Task, start: float, end: float, via: str) -> None:
        with self.lock:
            self.observations[task.task_id].append(Observation(start, end, task.state, via))

    def anomaly(self, text: str) -> None:
        with self.lock:
            self.anomalies.append(text)


def new_request(rng: random.Random, acked_ids: list[str]) -> Request:
    # Some to run later: across kills they must neither be lost nor run before their time. Some to run after
    # others: never before those succeeded, and never at all when one was lost.
    delay = round(rng.uniform(0.2, 1.5), 3) if rng.random() < 0.15 else None
    recent = acked_ids[-50:]
    after = tuple(rng.sample(recent, min(len(recent), rng.randint(1, 2)))) if recent and rng.random() < 0.15 else ()
    if rng.random() < 0.7:
        return Request("demo", {"steps": rng.randint(0, 3), "step_seconds": 0.01, "fail_rate": 0.0}, delay, after)
    return Request("sleep", {"seconds": round(rng.uniform(0.05, 0.3), 3)}, delay, after)


class SubmitterThread(threading.Thread):
    """One client: submits, re-submits, samples, until the round is over."""

    def __init__(self, ledger: Ledger, address: str, rng: random.Random, name: str, round_over: threading.Event):
        super().__init__(name=name, daemon=True)
        self.ledger = ledger
        self.address = address
        self.rng = rng
        self.round_over = round_over
        self.count = 0

    def run(self) -> None:
        try:
            with TaskClient(self.address, timeout=5) as client:
                while not self.round_over.is_set():
                    self.step(client)
                    time.sleep(self.rng.uniform(0.005, 0.03))  # pacing, so the two workers keep up
        except Exception as exc:  # a bug in the test itself must not pass silently
            self.ledger.anomaly(f"{self.name} crashed: {exc!r}")

    def step(self, client: TaskClient) -> None:
        ledger, rng = self.ledger, self.rng
        with ledger.lock:
            acked_ids = list(ledger.acked)
            unknown_ids = [i for i in ledger.sent if i not in ledger.acked]
        roll = rng.random()
        if roll < 0.12 and acked_ids:
            task_id = rng.choice(acked_ids)
            self.submit(client, ledger.acked[task_id], task_id, resubmit=True)
        elif roll < 0.15 and acked_ids:
            self.conflict(client, rng.choice(acked_ids))
        elif roll < 0.20 and unknown_ids:
            task_id = rng.choice(unknown_ids)
            self.submit(client, ledger.sent[task_id], task_id, resubmit=True)
        elif roll < 0.38 and acked_ids:
            self.sample_get(client, rng.choice(acked_ids))
        elif roll < 0.45:
            self.sample_list(client)
        else:
            self.count += 1
            task_id = f"{self.name}-{self.count}" if rng.random() < 0.6 else None
            self.submit(client, new_request(rng, acked_ids), task_id, resubmit=False)

    def submit(self, client: TaskClient, request: Request, task_id: str | None, *, resubmit: bool) -> None:
        ledger = self.ledger
        with ledger.lock:
            ledger.submits += 1
            ledger.resubmits += resubmit
            if task_id is not None:
                ledger.attempts[task_id] += 1
            if task_id is not None:
                ledger.sent[task_id] = request
        start = time.monotonic()
        try:
            result = client.submit(
                request.task_type, request.args, task_id=task_id, delay=request.delay, after=request.after
            )
        except TaskServiceError as err:
            if err.code not in CRASH_CODES:
                ledger.anomaly(f"Submit {task_id or '(server id)'} {request}: {err}")
            with ledger.lock:
                ledger.crash_errors += 1
                if task_id is None:
                    ledger.unanswered_generated[request.key] += 1
            return
        end = time.monotonic()
        task = result.task
        if (task.task_type, task.args) != (request.task_type, request.args) or task_id not in (None, task.task_id):
            ledger.anomaly(f"Submit {task_id} {request} answered with another task: {task}")
        with ledger.lock:
            # Threads may re-submit an id while its first Submit is still on its way, so which answer says
            # created=True is a race; that at most one does is not (checked at the end with the attempts).
            ledger.created[task.task_id] += result.created
            ledger.acked[task.task_id] = request
        ledger.observe(task, start, end, "submit")

    def conflict(self, client: TaskClient, task_id: str) -> None:
        """A different request under an acknowledged id must be refused, before and after any crash."""
        try:
            client.submit("sleep", {"seconds": 9.5}, task_id=task_id)
        except AlreadyExists:
            with self.ledger.lock:
                self.ledger.conflicts_refused += 1
        except TaskServiceError as err:
            if err.code not in CRASH_CODES:
                self.ledger.anomaly(f"conflicting Submit of {task_id}: {err}")
        else:
            self.ledger.anomaly(f"a different request under the acknowledged id {task_id} was accepted")

    def sample_get(self, client: TaskClient, task_id: str) -> None:
        start = time.monotonic()
        try:
            task = client.get(task_id)
        except TaskNotFound:
            self.ledger.anomaly(f"GetState: the acknowledged task {task_id} is NOT_FOUND")
            return
        except TaskServiceError as err:
            if err.code not in CRASH_CODES:
                self.ledger.anomaly(f"GetState {task_id}: {err}")
            return
        self.ledger.observe(task, start, time.monotonic(), "get")

    def sample_list(self, client: TaskClient) -> None:
        start = time.monotonic()
        try:
            page = client.list(page_size=100)
        except TaskServiceError as err:
            if err.code not in CRASH_CODES:
                self.ledger.anomaly(f"ListTasks: {err}")
            return
        end = time.monotonic()
        ids = [t.task_id for t in page.tasks]
        if len(ids) != len(set(ids)):
            self.ledger.anomaly(f"ListTasks page holds a task twice: {collections.Counter(ids).most_common(3)}")
        for task in page.tasks:
            self.ledger.observe(task, start, end, "list")


def sweep(ledger: Ledger, client: TaskClient, what: str) -> list[Task]:
    """Every task, page after page (recorded as observations); checks that every acknowledged one is there."""
    start = time.monotonic()
    tasks = list(client.iter_tasks(page_size=200))
    end = time.monotonic()
    for task in tasks:
        ledger.observe(task, start, end, f"sweep {what}")
    ids = [t.task_id for t in tasks]
    duplicates = [i for i, n in collections.Counter(ids).items() if n > 1]
    if duplicates:
        ledger.anomaly(f"{what}: ListTasks shows tasks twice: {duplicates[:5]}")
    with ledger.lock:
        missing = sorted(set(ledger.acked) - set(ids))
    if missing:
        ledger.anomaly(f"{what}: {len(missing)} acknowledged tasks are gone: {missing[:5]}")
    return tasks


def sweep_once_all_ended(ledger: Ledger, client: TaskClient) -> list[Task]:
    """The queue left by the last kill drains; then every task must have ended: the final sweep."""
    deadline = time.monotonic() + FINAL_WAIT_SECONDS
    while True:
        unfinished = [t for t in client.iter_tasks(page_size=200) if not t.state.is_terminal]
        if not unfinished or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    if unfinished:
        ledger.anomaly(
            f"{len(unfinished)} tasks did not end within {FINAL_WAIT_SECONDS:g} s of the last kill: "
            + ", ".join(f"{t.task_id} {t.state.value}" for t in unfinished[:10])
        )
    return sweep(ledger, client, "at the end")


def check_history(ledger: Ledger, final: dict[str, Task]) -> None:
    """No task seen terminal is later seen otherwise; states never move backwards; only expected states."""
    end_of_run = time.monotonic()
    for task_id, seen in ledger.observations.items():
        last = final.get(task_id)
        history = sorted(seen, key=lambda o: o.start)
        if last is not None:
            history.append(Observation(end_of_run, end_of_run, last.state, "final"))
        for o in history:
            if o.state not in EXPECTED_STATES:
                ledger.anomalies.append(f"{task_id} was seen {o.state.value} ({o.via})")
        terminal = {o.state for o in history if o.state.is_terminal}
        if len(terminal) > 1:
            ledger.anomalies.append(f"{task_id} was seen in two terminal states: {sorted(s.value for s in terminal)}")
        # For two calls that did not overlap, the later one must not see an earlier state.
        for i, earlier in enumerate(history):
            for later in history[i + 1 :]:
                if later.start > earlier.end and rank(later.state) < rank(earlier.state):
                    ledger.anomalies.append(
                        f"{task_id} went back from {earlier.state.value} ({earlier.via}) to {later.state.value} "
                        f"({later.via}) {later.start - earlier.end:.3f} s later"
                    )
                    break


def lost_at_a_restart(ledger: Ledger) -> Callable[[float, float], bool]:
    """One server: a task started before a kill and was marked LOST by the recovery of the restart after it."""
    return lambda started, ended: any(started <= killed <= ended <= restarted for _, killed, restarted in ledger.kills)


def check_final(
    ledger: Ledger, tasks: list[Task], during_a_kill: Callable[[float, float], bool] | None = None
) -> collections.Counter[str]:
    """Every task terminal, SUCCESS with the right result or LOST because it ran during a kill (`during_a_kill`
    says whether a task started and ended LOST at those times is explained by one); the census."""
    explained = during_a_kill or lost_at_a_restart(ledger)
    census: collections.Counter[str] = collections.Counter()
    by_id = {t.task_id: t for t in tasks}
    unexplained = collections.Counter(ledger.unanswered_generated)
    for task in tasks:
        census[task.state.value] += 1
        request = ledger.acked.get(task.task_id) or ledger.sent.get(task.task_id)
        if request is None:
            key = Request(task.task_type, task.args).key
            if unexplained[key] <= 0:
                ledger.anomalies.append(f"unexpected task {task.task_id}: {task.task_type} {task.args}")
                continue
            unexplained[key] -= 1
            census["stored without an answer"] += 1
            # Its Submit's answer was lost: what it was to run after is what the server stored.
            request = Request(task.task_type, task.args, after=tuple(task.after))
        elif task.task_id not in ledger.acked:
            census["stored without an answer"] += 1
        if (task.task_type, task.args) != (request.task_type, request.args):
            ledger.anomalies.append(f"{task.task_id} holds {task.task_type} {task.args}, not {request}")
        if task.attempt != (1 if task.started_at is not None else 0):
            ledger.anomalies.append(f"{task.task_id} ran {task.attempt} times (demo and sleep never re-run)")
        if request.after:
            check_dependent(ledger, task, [by_id.get(dep) for dep in request.after])
        if request.delay is not None and task.started_at is not None and task.submitted_at is not None:
            early = (task.submitted_at + timedelta(seconds=request.delay)) - task.started_at
            if early > timedelta(0):
                ledger.anomalies.append(f"{task.task_id} ran {early.total_seconds():.3f} s before its delay ended")
        if task.state is TaskState.SUCCESS:
            expected = {"steps": request.args["steps"]} if task.task_type == "demo" else None
            if expected is not None and task.result != expected:
                ledger.anomalies.append(f"{task.task_id} SUCCESS with result {task.result}, expected {expected}")
            if task.task_type == "sleep" and not task.result["slept_seconds"] >= request.args["seconds"] * 0.9:
                ledger.anomalies.append(f"{task.task_id} SUCCESS too soon: {task.result}")
        elif task.state is TaskState.LOST:
            started = task.started_at.timestamp() if task.started_at else None
            ended = task.ended_at.timestamp() if task.ended_at else None
            ran_at_a_kill = started is not None and ended is not None and explained(started, ended)
            if task.error is None or task.error.type != "ServerRestarted" or not ran_at_a_kill:
                ledger.anomalies.append(
                    f"{task.task_id} is LOST but was not running at a kill: started {started}, ended {ended}, "
                    f"error {task.error}"
                )
        elif task.state is not TaskState.REVOKED or not request.after:  # a dependent's REVOKED: see check_dependent
            ledger.anomalies.append(f"{task.task_id} ended {task.state.value}: {task.error}")
    missing = sorted(set(ledger.acked) - set(by_id))
    if missing:
        ledger.anomalies.append(f"{len(missing)} acknowledged tasks do not exist at the end: {missing[:5]}")
    for task_id, count in ledger.created.items():
        if count > 1:
            ledger.anomalies.append(f"{count} Submits of {task_id} were answered created=True")
    for task_id in ledger.acked:
        if ledger.attempts[task_id] == 1 and ledger.created[task_id] == 0:
            ledger.anomalies.append(f"the only Submit of {task_id} was answered created=False")
    return census


def check_dependent(ledger: Ledger, task: Task, deps: list[Task | None]) -> None:
    """A task submitted after `deps`: run only after all of them succeeded; else REVOKED, DependencyFailed, never
    run."""
    if any(dep is None for dep in deps):
        ledger.anomalies.append(f"{task.task_id}: a dependency it was accepted after does not exist")
        return
    failed = [dep for dep in deps if dep is not None and dep.state is not TaskState.SUCCESS]
    if failed:
        error = task.error
        if task.state is not TaskState.REVOKED or error is None or error.type != "DependencyFailed":
            ledger.anomalies.append(f"{task.task_id} ended {task.state.value} though {failed[0].task_id} failed")
        elif task.started_at is not None:
            ledger.anomalies.append(f"{task.task_id} ran though its dependency {failed[0].task_id} failed")
        return
    for dep in deps:
        assert dep is not None and dep.ended_at is not None
        if task.started_at is not None and task.started_at < dep.ended_at:
            ledger.anomalies.append(f"{task.task_id} started before its dependency {dep.task_id} ended")
        if task.state is TaskState.REVOKED:
            ledger.anomalies.append(f"{task.task_id} REVOKED though its dependencies succeeded: {task.error}")


def test_sigkill_during_submits_loses_nothing_acknowledged_duplicates_nothing_and_reruns_the_queue(
    tmp_path: Path,
) -> None:
    print(f"crash loop seed: {SEED} (FAULTS_SEED={SEED} replays its choices)")
    rng = random.Random(SEED)
    ledger = Ledger()
    began = time.monotonic()
    with ServerProcess(tmp_path / "tasks.db", workers=2) as server:
        server.start()
        rounds = 0
        while len(ledger.kills) < MAX_KILLS and time.monotonic() - began < ROUNDS_BUDGET_SECONDS:
            rounds += 1
            round_over = threading.Event()
            threads = [
                SubmitterThread(
                    ledger, server.address, random.Random(rng.getrandbits(64)), f"r{rounds}c{i}", round_over
                )
                for i in range(rng.choice((2, 3)))
            ]
            for thread in threads:
                thread.start()
            time.sleep(rng.uniform(0.05, 0.5))  # the kill lands at a random moment: that is the point
            before = time.time()
            server.kill()
            killed = time.time()
            round_over.set()
            for thread in threads:
                thread.join(timeout=15)
                if thread.is_alive():
                    ledger.anomaly(f"{thread.name} did not stop within 15 s of the kill")
            server.restart()
            ledger.kills.append((before, killed, time.time()))
            with TaskClient(server.address, timeout=10) as client:
                sweep(ledger, client, f"after kill {len(ledger.kills)}")

        with TaskClient(server.address, timeout=10) as client:
            tasks = sweep_once_all_ended(ledger, client)
            for task_id in ledger.acked:
                task = client.get(task_id)  # NOT_FOUND would raise: every acknowledged task exists
                ledger.observe(task, time.monotonic(), time.monotonic(), "final get")
        log_tail = server.log_tail()

    final = {t.task_id: t for t in tasks}
    census = check_final(ledger, tasks)
    check_history(ledger, final)
    kills = len(ledger.kills)
    print(
        f"seed {SEED}: {kills} kills survived in {rounds} rounds, {time.monotonic() - began:.1f} s; "
        f"{ledger.submits} Submits ({ledger.resubmits} re-submits, {ledger.crash_errors} unanswered, "
        f"{ledger.conflicts_refused} conflicting ones refused); {len(ledger.acked)} acknowledged tasks checked, "
        f"{len(tasks)} stored ({sum(1 for r in ledger.acked.values() if r.delay)} to run later, "
        f"{sum(1 for r in ledger.acked.values() if r.after)} after others); {dict(census)}; "
        f"{sum(len(o) for o in ledger.observations.values())} state observations"
    )
    assert not ledger.anomalies, (
        f"seed {SEED}: {len(ledger.anomalies)} problems:\n"
        + "\n".join(ledger.anomalies[:30])
        + f"\n--- server log (tail) ---\n{log_tail}"
    )
    assert kills >= MIN_KILLS, f"seed {SEED}: only {kills} kills within {ROUNDS_BUDGET_SECONDS:g} s"
    assert census["LOST"] <= 2 * kills, "at most the two running tasks are lost per kill"
    assert len(ledger.acked) >= 10 * kills, f"seed {SEED}: too few acknowledged tasks to mean anything"
