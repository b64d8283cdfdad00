"""GetStats against a real server: its counts are ListTasks' totals, its minutes hold the ends just made."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from taskservice.client import AsyncTaskClient, TaskState
from taskservice.server.app import RunningServer


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

    stats = await client.stats()
    totals = stats.by_state()
    for state in (TaskState.SUCCESS, TaskState.FAILURE, TaskState.PENDING):
        listed = len((await client.list(states=[state], page_size=1000)).tasks)
        assert totals.get(state, 0) == listed, state
    assert {(c.task_type, c.state): c.count for c in stats.counts} == {
        ("echo", TaskState.SUCCESS): 3,
        ("fail", TaskState.FAILURE): 1,
        ("echo", TaskState.PENDING): 1,
    }
    recent = stats.minutes[-2:]  # the ends may straddle a minute's turn
    assert sum(m.succeeded for m in recent) == 3 and sum(m.failed for m in recent) == 1
    assert sum(m.started for m in recent) == 4
    assert stats.oldest_runnable_age is None
    assert stats.minutes[-1].start is not None and stats.time is not None
    assert stats.minutes[-1].start <= stats.time
