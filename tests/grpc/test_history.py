"""GetTaskHistory against a real server: a task's life as stored, its state changes and progress samples in order,
with times; NOT_FOUND for an unknown id."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from taskservice.client import AsyncTaskClient, TaskNotFound, TaskState
from tests.support.inprocess import StartServer


@pytest.fixture
async def client(start_server: StartServer) -> AsyncIterator[AsyncTaskClient]:
    server = await start_server(progress_seconds=0.05)  # progress saved often enough to pass each tenth
    async with AsyncTaskClient(f"127.0.0.1:{server.port}") as made:
        yield made


async def test_a_tasks_history_holds_its_changes_and_a_sample_of_its_progress(client: AsyncTaskClient) -> None:
    task_id = (await client.submit("demo", {"steps": 10, "step_seconds": 0.05})).task.task_id
    done = await client.wait(task_id, timeout=30)
    assert done.state is TaskState.SUCCESS
    history = await client.history(task_id)
    changes = [(e.state, e.attempt) for e in history if e.progress is None]
    assert changes == [(TaskState.PENDING, 0), (TaskState.RUNNING, 1), (TaskState.SUCCESS, 1)]
    samples = [e.progress.percent for e in history if e.progress is not None]
    assert len(samples) >= 3 and samples == sorted(samples) and all(0 < p <= 100 for p in samples), samples
    times = [e.time for e in history]
    assert all(t is not None for t in times) and times == sorted(times)  # type: ignore[type-var]
    assert history[0].time == done.submitted_at and history[-1].time == done.ended_at


async def test_the_history_of_an_unknown_task_is_not_found(client: AsyncTaskClient) -> None:
    with pytest.raises(TaskNotFound):
        await client.history("no-such-task")
