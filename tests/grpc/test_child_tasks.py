"""Child tasks against a real server, from handlers in worker threads and in worker processes: ctx.submit records the
parent, ctx.wait waits for the children, a Stop of the parent stops them (not a detached one), a retried parent gets
the same children, and ListTasks(parent_id=) lists them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from taskservice.client import AsyncTaskClient, InvalidArgument, Task, TaskState
from taskservice.core.handlers.registry import TaskRegistry
from taskservice.server.app import RunningServer
from tests.support.child_tasks import register_child_tasks
from tests.support.task_types import Gates, make_registry
from tests.support.waiting import wait_async

PREFIXES = pytest.mark.parametrize("prefix", ["", "proc-"], ids=["thread", "process"])


@pytest.fixture
def task_types(gates: Gates) -> Callable[[], TaskRegistry]:
    return lambda: register_child_tasks(make_registry(gates))


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[AsyncTaskClient]:
    async with AsyncTaskClient(f"127.0.0.1:{server.port}") as made:
        yield made


async def _run(client: AsyncTaskClient, task_type: str, **args: object) -> Task:
    submitted = await client.submit(task_type, args)
    return await client.wait(submitted.task.task_id, timeout=60)


@PREFIXES
async def test_children_run_and_their_parent_waits_for_them(client: AsyncTaskClient, prefix: str) -> None:
    parent = await _run(client, f"{prefix}fan_out", prefix=prefix, numbers=[2, 3, -1])
    assert parent.state is TaskState.SUCCESS, parent.error
    ids = [f"{parent.task_id}.1", f"{parent.task_id}.2", f"{parent.task_id}.3"]
    assert parent.result == {"ids": ids, "results": [4, 9, "ValueError"]}
    children = (await client.list(parent_id=parent.task_id)).tasks
    assert sorted(c.task_id for c in children) == ids
    assert {c.parent_id for c in children} == {parent.task_id} and not any(c.detached for c in children)
    assert (await client.get(ids[0])).parent_id == parent.task_id
    assert (await client.get(parent.task_id)).parent_id == ""


@PREFIXES
async def test_a_stop_of_the_parent_stops_its_children_but_not_a_detached_one(
    client: AsyncTaskClient, prefix: str
) -> None:
    parent_id = (await client.submit(f"{prefix}hold_children", {"prefix": prefix})).task.task_id
    kept, free = f"{parent_id}.kept", f"{parent_id}.free"

    async def both_running() -> bool:
        running = (await client.list(parent_id=parent_id, states=["RUNNING"])).tasks
        return sorted(t.task_id for t in running) == sorted([kept, free])

    await wait_async(both_running, timeout=30, what="both children run")
    await client.stop(parent_id, "enough")
    assert (await client.wait(parent_id, timeout=30)).state is TaskState.REVOKED
    stopped = await client.wait(kept, timeout=30)
    assert stopped.state is TaskState.REVOKED and stopped.error is not None
    assert stopped.error.message == f"its parent {parent_id} was stopped"
    detached = await client.get(free)
    assert detached.detached and detached.state is TaskState.RUNNING
    await client.stop(free)


@PREFIXES
async def test_a_retried_parent_gets_the_same_children(client: AsyncTaskClient, prefix: str) -> None:
    parent = await _run(client, f"{prefix}retried_parent", prefix=prefix)
    assert parent.state is TaskState.SUCCESS and parent.attempt == 2, parent.error
    assert parent.result == [f"{parent.task_id}.1", f"{parent.task_id}.three"]
    children = (await client.list(parent_id=parent.task_id)).tasks
    assert sorted(c.task_id for c in children) == sorted(parent.result)
    assert all(c.attempt == 1 for c in children), "each child ran once"


@PREFIXES
async def test_a_refused_child_and_a_wait_that_times_out_are_the_handlers_to_handle(
    client: AsyncTaskClient, prefix: str
) -> None:
    refused = await _run(client, f"{prefix}refused_child", prefix=prefix)
    assert refused.state is TaskState.SUCCESS
    assert "refused" in refused.result and "args.n" in refused.result
    timed_out = await _run(client, f"{prefix}waits_forever", prefix=prefix)
    assert timed_out.state is TaskState.SUCCESS
    assert timed_out.result.startswith("children still running after 0.3 s")
    await client.stop(f"{timed_out.task_id}.1")


async def test_list_tasks_refuses_a_parent_id_no_task_could_have(client: AsyncTaskClient) -> None:
    with pytest.raises(InvalidArgument, match="parent_id"):
        await client.list(parent_id="not an id!")
