"""Misbehaving clients against a real in-process server: watchers that vanish, a watcher that stops reading,
a Submit flood beyond --max-queue, deadlines that expire mid-call. Other clients must not notice."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import grpc
import pytest

from taskservice.core.model.events import Watcher
from taskservice.core.model.models import TaskEvent
from taskservice.server.app import RunningServer
from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc
from tests.faults.conftest import StartServer
from tests.faults.helpers import (
    assert_service_fine,
    connect,
    final,
    list_all,
    state_name,
    submit,
    wait_exists,
    wait_state,
    watch_to_end,
)
from tests.grpc.helpers import eventually, struct
from tests.support.fault_task_types import Probe
from tests.support.faulty_board import FaultyBoard
from tests.support.task_types import Gates

REPO_ROOT = Path(__file__).resolve().parents[2]


def rss_bytes() -> int:
    """This process's resident memory (the in-process server's too), from /proc."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


class RecordingWatcher(Watcher):
    """The server's per-stream Watcher, recording how full its buffer got and how much it handed out."""

    made: list[RecordingWatcher] = []

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.max_pending = 0
        self.pushed = 0
        self.handed_out = 0
        RecordingWatcher.made.append(self)

    def push(self, event: TaskEvent) -> None:
        super().push(event)
        self.pushed += 1
        self.max_pending = max(self.max_pending, self.pending())

    def drain(self) -> list[TaskEvent]:
        events = super().drain()
        self.handed_out += len(events)
        return events


class WatchClient:
    """tests/faults/watch_client.py as a child process holding WatchProgress streams (see its docstring)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(
        cls, port: int, task_ids: list[str], *, streams: int, channels: int = 1, small_window: bool = False
    ) -> WatchClient:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.faults.watch_client",
            f"127.0.0.1:{port}",
            *task_ids,
            f"--streams={streams}",
            f"--channels={channels}",
            *(["--small-window"] if small_window else []),
            cwd=REPO_ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        client = cls(proc)
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)  # type: ignore[union-attr]
        except BaseException:
            client.kill()
            raise
        if line.decode().split() != ["READY", str(streams)]:
            client.kill()
            raise AssertionError(f"the watch client did not open its {streams} streams: {line!r}")
        return client

    def signal(self, signum: int) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signum)

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()

    async def finish(self, timeout: float = 30) -> list[dict[str, Any]]:
        """Let it read every stream to the end; its report, one dict per stream."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        await self.proc.stdin.drain()
        out, _ = await asyncio.wait_for(self.proc.communicate(), timeout=timeout)
        assert self.proc.returncode == 0, f"the watch client exited with {self.proc.returncode}"
        return [json.loads(line) for line in out.decode().splitlines()]


# ---------------------------------------------------------------------------------------------------------------
# A watcher that reads one event and never reads again


@pytest.mark.slow
async def test_a_watcher_that_stops_reading_is_coalesced_not_buffered_and_others_see_every_state_change(
    server: RunningServer, stub: pb_grpc.TaskServiceStub, probe: Probe, monkeypatch: pytest.MonkeyPatch
) -> None:
    RecordingWatcher.made = []
    monkeypatch.setattr("taskservice.server.servicer.Watcher", RecordingWatcher)
    task_id = await submit(stub, "flood", name="flood", message_bytes=1000, burst=20)
    await wait_state(stub, task_id, {pb.TASK_STATE_RUNNING})

    # A client in another process reads the snapshot, then freezes (SIGSTOP): it never reads again.
    slow_client = await WatchClient.start(server.port, [task_id], streams=1, small_window=True)
    try:
        slow_client.signal(signal.SIGSTOP)
        fast = asyncio.create_task(watch_to_end(stub, task_id, timeout=60))
        await eventually(lambda: len(RecordingWatcher.made) == 2, what="both watchers attached")
        slow, quick = RecordingWatcher.made
        rss_before = rss_bytes()
        reports_before = probe.count("flood:reports")
        # The handler floods ~1 KB progress reports. Once the frozen client's flow-control window is full, the
        # server must stop sending to it (and coalesce) while it keeps sending to the client that reads.
        await eventually(
            lambda: (
                quick.handed_out - slow.handed_out >= 1000 and probe.count("flood:reports") >= reports_before + 20_000
            ),
            timeout=30,
            what="the reading watcher pulls ahead of the frozen one during a flood of 20,000 reports",
        )
        reports = probe.count("flood:reports") - reports_before
        rss_growth = rss_bytes() - rss_before
        print(
            f"flood: {reports} reports; frozen watcher: {slow.pushed} pushed, {slow.coalesced} coalesced, "
            f"{slow.handed_out} sent, max pending {slow.max_pending}; reading watcher: {quick.handed_out} sent; "
            f"rss +{rss_growth / 2**20:.1f} MiB"
        )
        assert slow.max_pending <= 2, "a watcher's buffer holds the latest progress and the state changes, no more"
        assert slow.coalesced > reports / 2, "what the frozen client could not take was coalesced"
        assert rss_growth < 10 * 2**20, f"memory grew by {rss_growth / 2**20:.1f} MiB while one client did not read"

        stop_sent = time.monotonic()
        await stub.Stop(pb.StopRequest(task_id=task_id, reason="enough"))
        fast_events = await asyncio.wait_for(fast, timeout=5)
        fast_end = time.monotonic() - stop_sent
        changes = [e.state for e in fast_events[1:] if e.HasField("task")]
        assert changes == [pb.TASK_STATE_STOPPING, pb.TASK_STATE_REVOKED], [state_name(s) for s in changes]
        assert fast_end < 2.0, f"the watcher that reads saw the end {fast_end:.2f} s after the stop"
        # STOPPING and REVOKED queue up behind the latest progress of each moment: two events per state change.
        assert slow.max_pending <= 4

        # The frozen client wakes up and reads on: every state change, in order, then the end with OK.
        slow_client.signal(signal.SIGCONT)
        [report] = await slow_client.finish()
        assert report["code"] == "OK"
        assert report["states"] == ["TASK_STATE_RUNNING", "TASK_STATE_STOPPING", "TASK_STATE_REVOKED"], report
        assert report["sequences"] == sorted(set(report["sequences"])), "sequence only grows"
        assert report["events"] < reports / 10, "it got the latest progress, not every report"
        print(f"the frozen client read {report['events']} events in all")
    finally:
        slow_client.signal(signal.SIGCONT)
        slow_client.kill()
    await eventually(lambda: server.manager.stats().watchers == 0, what="watchers detached")
    await assert_service_fine(server, stub)


# ---------------------------------------------------------------------------------------------------------------
# 1,000 watchers that vanish without closing


@pytest.mark.slow
async def test_1000_watchers_killed_with_sigkill_are_detached_and_other_clients_never_notice(
    server: RunningServer, stub: pb_grpc.TaskServiceStub, gates: Gates
) -> None:
    held = [await submit(stub, "gate", name="g1"), await submit(stub, "gate", name="g2")]
    ticking = await submit(stub, "progress_then_wait", name="ticks")
    for task_id in (*held, ticking):
        await wait_state(stub, task_id, {pb.TASK_STATE_RUNNING})
    # 1,000 streams over 10 connections from another process, a third of them on a task that reports every 10 ms.
    crowd = await WatchClient.start(server.port, [*held, ticking], streams=1000, channels=10)
    try:
        await eventually(lambda: server.manager.stats().watchers == 1000, timeout=30, what="1,000 watchers attached")
        survivor = asyncio.create_task(watch_to_end(stub, held[0], timeout=60))
        await eventually(lambda: server.manager.stats().watchers == 1001, what="the survivor attached")
        started = time.monotonic()
        await final(stub, await submit(stub, "echo", value=1))
        busy_latency = time.monotonic() - started
        crowd.signal(signal.SIGKILL)
        await asyncio.wait_for(crowd.proc.wait(), timeout=10)
    finally:
        crowd.kill()
    # The server notices every dead stream (the connections reset) and lets go of its watcher.
    await eventually(lambda: server.manager.stats().watchers == 1, timeout=10, what="dead watchers detached")
    print(f"a task ran in {busy_latency * 1000:.0f} ms with 1,000 watchers attached")
    assert busy_latency < 2.0
    gates.open("g1")
    events = await asyncio.wait_for(survivor, timeout=5)
    assert [e.state for e in events] == [pb.TASK_STATE_RUNNING, pb.TASK_STATE_SUCCESS]
    gates.open("g2")
    gates.open("ticks")
    for task_id in (*held, ticking):
        watched = await watch_to_end(stub, task_id)
        assert watched[-1].state == pb.TASK_STATE_SUCCESS
    await eventually(lambda: server.manager.stats().watchers == 0, what="no watcher left")
    await assert_service_fine(server, stub)


# ---------------------------------------------------------------------------------------------------------------
# A flood of Submits beyond --max-queue


async def test_a_submit_flood_beyond_max_queue_is_refused_cleanly_and_nothing_is_lost_or_half_stored(
    start_server: StartServer, gates: Gates
) -> None:
    max_queue = 20
    running = await start_server(workers=1, max_queue=max_queue)
    rng = random.Random(7)
    async with contextlib.AsyncExitStack() as stack:
        stubs = [await stack.enter_async_context(connect(running)) for _ in range(5)]
        blocker = await submit(stubs[0], "gate", name="hold")
        await wait_state(stubs[0], blocker, {pb.TASK_STATE_RUNNING})  # the one worker is busy: nothing dequeues
        requests = [
            pb.SubmitRequest(task_type="echo", args=struct(value=i), task_id=f"flood-{i}", labels={"run": "flood"})
            for i in range(300)
        ]
        # The same request twice (a client retrying) for some of them, in the same burst.
        burst = requests + [requests[i] for i in range(0, 100, 3)]
        rng.shuffle(burst)
        answers = await asyncio.gather(
            *(stubs[i % len(stubs)].Submit(r, timeout=30) for i, r in enumerate(burst)), return_exceptions=True
        )

        created: dict[str, int] = {}
        acked: set[str] = set()
        for request, answer in zip(burst, answers, strict=True):
            if isinstance(answer, grpc.aio.AioRpcError):
                assert answer.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, f"{answer.code()}: {answer.details()}"
                assert "max-queue" in answer.details()
                continue
            assert isinstance(answer, pb.SubmitResponse), repr(answer)
            assert answer.task.task_id == request.task_id and answer.task.args == request.args
            acked.add(request.task_id)
            created[request.task_id] = created.get(request.task_id, 0) + answer.created
        refused = {r.task_id for r in requests} - acked
        print(f"flood: {len(burst)} Submits, {len(acked)} acknowledged, {len(refused)} refused")
        assert len(acked) == max_queue, "exactly the queue's room was taken"
        assert all(count == 1 for count in created.values()), f"created once per id: {created}"

        stub = stubs[0]
        listed = [t.task_id for t in await list_all(stub)]
        assert len(listed) == len(set(listed)), "no task twice"
        assert set(listed) == acked | {blocker}, "every acknowledged task and nothing else"
        for task_id in sorted(refused)[:50]:
            with pytest.raises(grpc.aio.AioRpcError) as missing:
                await stub.GetState(pb.GetStateRequest(task_id=task_id))
            assert missing.value.code() == grpc.StatusCode.NOT_FOUND, "nothing half-stored"
        # While the queue is still full: a retry of an acknowledged request returns it; a new one is refused.
        again = await stub.Submit(next(r for r in requests if r.task_id in acked))
        assert not again.created
        with pytest.raises(grpc.aio.AioRpcError) as full:
            await stub.Submit(next(r for r in requests if r.task_id in refused))
        assert full.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

        gates.open("hold")
        for task_id in sorted(acked):
            done = await final(stub, task_id)
            assert done.state == pb.TASK_STATE_SUCCESS and done.result.number_value == int(task_id.split("-")[1])
        # The queue has room again.
        late = await stub.Submit(next(r for r in requests if r.task_id in refused))
        assert late.created
        assert (await final(stub, late.task.task_id)).state == pb.TASK_STATE_SUCCESS
        await assert_service_fine(running, stub)


# ---------------------------------------------------------------------------------------------------------------
# Deadlines that expire mid-call


async def test_a_watch_whose_deadline_passes_ends_deadline_exceeded_and_leaves_nothing_behind(
    server: RunningServer, stub: pb_grpc.TaskServiceStub, gates: Gates
) -> None:
    task_id = await submit(stub, "progress_then_wait", name="long")
    await wait_state(stub, task_id, {pb.TASK_STATE_RUNNING})
    calls = [stub.WatchProgress(pb.WatchProgressRequest(task_id=task_id), timeout=0.3) for _ in range(20)]
    started = time.monotonic()
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            async for _ in call:
                pass
        assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 5
    await eventually(lambda: server.manager.stats().watchers == 0, what="expired watchers detached")
    gates.open("long")
    events = await watch_to_end(stub, task_id)
    assert events[-1].state == pb.TASK_STATE_SUCCESS
    await assert_service_fine(server, stub)


async def test_submit_and_stop_whose_deadline_passes_while_the_disk_is_slow_take_effect_exactly_once(
    start_server: StartServer, tmp_path: Path, gates: Gates
) -> None:
    store = FaultyBoard(tmp_path / "slow.db")
    running = await start_server(board=store, workers=1)
    async with connect(running) as stub:
        blocker = await submit(stub, "gate", name="hold")
        await wait_state(stub, blocker, {pb.TASK_STATE_RUNNING})
        await submit(stub, "gate", task_id="queued", name="queued")

        store.pause()
        request = pb.SubmitRequest(task_type="echo", args=struct(value="once"), task_id="slow-1")
        with pytest.raises(grpc.aio.AioRpcError) as first:
            await stub.Submit(request, timeout=0.3)
        assert first.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert store.waiting.is_set(), "the Submit was waiting for its commit"
        with pytest.raises(grpc.aio.AioRpcError) as stop:
            await stub.Stop(pb.StopRequest(task_id="queued"), timeout=0.3)
        assert stop.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        # A client retrying while the disk is still slow joins the first Submit and times out the same way.
        with pytest.raises(grpc.aio.AioRpcError) as retry:
            await stub.Submit(request, timeout=0.3)
        assert retry.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        # Reads of live tasks and health do not wait for the disk.
        assert (await stub.GetState(pb.GetStateRequest(task_id=blocker), timeout=1)).task.state == pb.TASK_STATE_RUNNING

        store.resume()
        # The Submit its caller gave up on was stored all the same; the retry (after the commit) returns it.
        assert (await wait_exists(stub, "slow-1")).state == pb.TASK_STATE_PENDING
        again = await stub.Submit(request, timeout=10)
        assert again.task.task_id == "slow-1" and not again.created
        gates.open("hold")
        done = await final(stub, "slow-1")
        assert done.state == pb.TASK_STATE_SUCCESS and done.result.string_value == "once"
        revoked = await final(stub, "queued")
        assert revoked.state == pb.TASK_STATE_REVOKED, "the Stop took effect though its caller gave up"
        await final(stub, blocker)
        assert "queued" not in gates.ran, "a revoked task never runs"
        listed = [t.task_id for t in await list_all(stub)]
        assert sorted(listed) == sorted([blocker, "queued", "slow-1"]), "stored exactly once"
        await assert_service_fine(running, stub)


async def test_a_retry_that_joins_a_submit_whose_caller_gave_up_is_answered_once_the_commit_lands(
    start_server: StartServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FaultyBoard(tmp_path / "slow.db")
    running = await start_server(board=store, workers=1)
    accepted: list[Future[Any]] = []
    submit_async = running.manager.submit_async

    def recording(*args: Any, **kwargs: Any) -> Future[Any]:
        future = submit_async(*args, **kwargs)
        accepted.append(future)
        return future

    monkeypatch.setattr(running.manager, "submit_async", recording)
    async with connect(running) as stub:
        store.pause()
        request = pb.SubmitRequest(task_type="echo", args=struct(value="once"), task_id="retried")
        with pytest.raises(grpc.aio.AioRpcError) as first:
            await stub.Submit(request, timeout=0.3)
        assert first.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        # The client retries at once, with a longer deadline, while the first commit is still on its way.
        retry = asyncio.ensure_future(stub.Submit(request, timeout=3))
        await eventually(lambda: len(accepted) == 2, what="the retry reached the engine")
        store.resume()
        started = time.monotonic()
        answer = await retry
        assert answer.task.task_id == "retried"
        assert time.monotonic() - started < 2, "answered when the commit landed"
        assert (await final(stub, "retried")).state == pb.TASK_STATE_SUCCESS
        await assert_service_fine(running, stub)


# ---------------------------------------------------------------------------------------------------------------
# A storage read that hangs


class SlowReadBoard(FaultyBoard):
    """Reads of the tasks named `slow-*` wait until let go: a disk (or network file system) that hangs."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reads_go = threading.Event()
        self.reading = threading.Event()

    def get(self, task_id: str) -> Any:
        if task_id.startswith("slow-") and not self.reads_go.is_set():
            self.reading.set()
            self.reads_go.wait(30)
        return super().get(task_id)


async def test_a_hanging_storage_read_holds_up_neither_the_event_loop_nor_other_tasks(
    start_server: StartServer, tmp_path: Path
) -> None:
    store = SlowReadBoard(tmp_path / "slow-reads.db")
    server = await start_server(board=store)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as chan:
        stub = pb_grpc.TaskServiceStub(chan)
        hanging = [asyncio.ensure_future(stub.GetState(pb.GetStateRequest(task_id=f"slow-{i}"), timeout=30))
                   for i in (1, 2)]  # fmt: skip
        await eventually(store.reading.is_set, what="a GetState reading the storage")
        try:
            # Meanwhile the event loop answers, and other tasks are claimed, run and ended (board lock free).
            started = time.monotonic()
            others = [await submit(stub, "echo", value=i) for i in range(5)]
            for task_id in others:
                assert (await final(stub, task_id)).state == pb.TASK_STATE_SUCCESS
            assert time.monotonic() - started < 10
            assert not hanging[0].done()
        finally:
            store.reads_go.set()
        for call in hanging:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_watch_of_a_task_that_just_ended_here_needs_no_storage_read(
    start_server: StartServer, tmp_path: Path
) -> None:
    store = SlowReadBoard(tmp_path / "recent.db")
    store.reads_go.set()  # reads go through while the tasks are submitted
    server = await start_server(board=store)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as chan:
        stub = pb_grpc.TaskServiceStub(chan)
        task_ids = [await submit(stub, "echo", task_id=f"slow-{i}", value=i) for i in range(3)]
        for task_id in task_ids:
            await final(stub, task_id)
        try:
            # From now on every read of these tasks from storage hangs: the watches must not need one.
            store.reads_go.clear()
            store.reading.clear()
            for task_id in task_ids:
                events = await watch_to_end(stub, task_id, timeout=5)
                assert events[-1].state == pb.TASK_STATE_SUCCESS
            assert not store.reading.is_set()
        finally:
            store.reads_go.set()
