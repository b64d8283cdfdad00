"""GetStats against a real server: its counts are ListTasks' totals, its minutes hold the ends just made."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from taskservice.client import AsyncTaskClient, Stats, TaskState
from taskservice.server.app import RunningServer
from tests.support.inprocess import StartServer
from tests.support.task_types import Gates
from tests.support.waiting import wait_async


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[AsyncTaskClient]:
    async with AsyncTaskClient(f"127.0.0.1:{server.port}") as made:
        yield made


async def test_stats_count_what_list_tasks_lists_and_the_last_minutes_ends(client: AsyncTaskClient) -> None:
    before = await client.stats()
    assert before.counts == [] and before.oldest_runnable_age is None and len(before.minutes) == 60
    ids = [(await client.submit("echo", {"value": n})).task.task_id for n in range(3)]
    ids.append((await client.submit("fail", {})).task.task_id)
    await client.wait_all(ids, timeout=30)
    await client.submit("echo", {}, delay=3600)  # PENDING, not due: nothing could run now

    expected = {("echo", TaskState.SUCCESS): 3, ("fail", TaskState.FAILURE): 1, ("echo", TaskState.PENDING): 1}

    async def counted() -> Stats | None:  # counts are shared by callers for up to STATS_MAX_AGE
        found = await client.stats()
        return found if {(c.task_type, c.state): c.count for c in found.counts} == expected else None

    stats = await wait_async(counted, timeout=10, what="the counts of the tasks just made")
    totals = stats.by_state()
    for state in (TaskState.SUCCESS, TaskState.FAILURE, TaskState.PENDING):
        listed = len((await client.list(states=[state], page_size=1000)).tasks)
        assert totals.get(state, 0) == listed, state
    recent = stats.minutes[-2:]  # the ends may straddle a minute's turn
    assert sum(m.succeeded for m in recent) == 3 and sum(m.failed for m in recent) == 1
    assert sum(m.started for m in recent) == 4
    assert stats.oldest_runnable_age is None
    assert stats.minutes[-1].start is not None and stats.time is not None
    assert stats.minutes[-1].start <= stats.time


async def test_list_nodes_says_each_servers_types_and_busy_workers(start_server: StartServer, gates: Gates) -> None:
    server = await start_server(lease_seconds=2.0, renew_seconds=0.2)
    async with AsyncTaskClient(f"127.0.0.1:{server.port}") as client:
        (node,) = await client.nodes()
        assert node.workers == 4 and node.busy == 0
        assert {"echo", "gate", "demo"} <= set(node.task_types) and node.only_labels == {}
        assert node.started_at is not None and node.last_seen is not None and node.started_at <= node.last_seen
        await client.submit("gate", {"name": "busy"})

        async def busy_said() -> bool:
            return (await client.nodes())[0].busy == 1

        await wait_async(busy_said, timeout=10, what="the server says one worker is busy")
        gates.open("busy")


async def test_list_nodes_says_how_many_abandoned_handlers_still_run(start_server: StartServer, gates: Gates) -> None:
    server = await start_server(lease_seconds=2.0, renew_seconds=0.2, stop_grace=0.2)
    async with AsyncTaskClient(f"127.0.0.1:{server.port}") as client:

        async def abandoned_said(count: int) -> bool:
            return (await client.nodes())[0].abandoned == count

        async def handler_runs() -> bool:  # not only RUNNING: a stop before the handler starts ends it unrun
            return "deaf" in gates.ran

        assert await abandoned_said(0)
        deaf = (await client.submit("stubborn", {"name": "deaf"})).task.task_id
        await wait_async(handler_runs, timeout=10, what="the stubborn handler runs")
        await client.stop(deaf)
        # It ignores the stop: past the grace its task ends REVOKED and its thread is abandoned, still running.
        await client.wait(deaf, timeout=10)
        await wait_async(lambda: abandoned_said(1), timeout=10, what="the server says one handler is abandoned")
        assert (await client.nodes())[0].workers == 4, "a fresh worker took its place"
        gates.open("deaf")  # the handler returns at last: its thread ends
        await wait_async(lambda: abandoned_said(0), timeout=10, what="the server says none is abandoned any more")


async def test_stats_say_what_each_limit_runs_and_holds_back(client: AsyncTaskClient, gates: Gates) -> None:
    await client.create_limit("one-gate", task_type="gate", max_running=1)
    ids = [(await client.submit("gate", {"name": f"g{n}"})).task.task_id for n in range(2)]

    async def one_runs_one_waits() -> bool:  # the counts are at most STATS_MAX_AGE old
        (limit,) = (await client.stats()).limits
        return (limit.limit_id, limit.running, limit.waiting) == ("one-gate", 1, 1)

    await wait_async(one_runs_one_waits, timeout=10, what="the limit runs one and holds the other back")
    gates.open("g0")
    gates.open("g1")  # before it runs: its gate is open when it gets there
    await client.wait_all(ids, timeout=30)

    async def none_left() -> bool:
        (limit,) = (await client.stats()).limits
        return (limit.running, limit.waiting) == (0, 0)

    await wait_async(none_left, timeout=10, what="the limit's counts back to none")
