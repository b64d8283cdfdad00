"""Both clients against the real server, run as a process (tests/support/server.py)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from taskservice import client as c
from taskservice.client import InvalidArgument, TaskNotFound, TaskState
from tests.support.server import ServerProcess
from tests.support.waiting import wait_until

from .facades import FACADES, ClientFacade

pytestmark = pytest.mark.slow

FAST_DEMO = {"steps": 5, "step_seconds": 0.02}


@pytest.fixture(params=sorted(FACADES))
def client(request: pytest.FixtureRequest, server_process: ServerProcess) -> Iterator[ClientFacade]:
    facade = FACADES[request.param](server_process.address, timeout=10.0, reconnect_timeout=10.0)
    yield facade
    facade.close()


def _wait_for_state(client: ClientFacade, task_id: str, state: TaskState) -> None:
    wait_until(lambda: client.get(task_id).state is state, what=f"task {task_id} to be {state.value}")


def test_submit_and_get(client: ClientFacade) -> None:
    before = datetime.now(UTC)
    result = client.submit("demo", FAST_DEMO, priority=5, time_limit=30, labels={"suite": "client"})
    assert result.created is True
    task = result.task
    assert task.task_id
    assert task.task_type == "demo"
    assert task.args == FAST_DEMO
    assert type(task.args["steps"]) is int
    assert task.priority == 5
    assert task.time_limit == 30.0
    assert task.labels == {"suite": "client"}
    assert task.submitted_at is not None and task.submitted_at.tzinfo is not None
    assert abs(task.submitted_at - before) < timedelta(seconds=30)
    got = client.get(task.task_id)
    assert (got.task_id, got.task_type, got.args, got.labels) == (task.task_id, "demo", FAST_DEMO, {"suite": "client"})


def test_submit_after_runs_a_task_once_its_dependency_succeeded(client: ClientFacade) -> None:
    first = client.submit("demo", FAST_DEMO).task.task_id
    second = client.submit("demo", FAST_DEMO, after=[first]).task
    assert second.after == (first,)
    assert client.watch(second.task_id)[-1].state is TaskState.SUCCESS
    assert client.get(second.task_id).started_at >= client.get(first).ended_at  # type: ignore[operator]
    with pytest.raises(TypeError):
        client.submit("demo", FAST_DEMO, after=first)


def test_schedules_are_created_fire_and_are_paused_listed_and_deleted(client: ClientFacade) -> None:
    name = f"every-second-{client.kind}"
    definition = {"interval": 1, "catch_up": "all", "labels": {"k": "v"}}
    made = client.call("create_schedule", name, "demo", FAST_DEMO, **definition)
    assert made.created and made.schedule.interval == 1.0 and made.schedule.catch_up == "ALL"
    assert client.call("create_schedule", name, "demo", FAST_DEMO, **definition).created is False
    fired = wait_until(lambda: client.iter_tasks(labels={"schedule": name}), what="a firing")
    assert fired[0].task_id.startswith(f"{name}:") and fired[0].labels == {"k": "v", "schedule": name}
    assert client.call("pause_schedule", name).paused
    got = client.call("get_schedule", name)
    assert got.paused and got.args == FAST_DEMO and got.labels == {"k": "v"} and got.next_due is not None
    assert name in [s.schedule_id for s in client.call("list_schedules").schedules]
    assert not client.call("resume_schedule", name).paused
    assert client.call("delete_schedule", name).schedule_id == name
    with pytest.raises(TaskNotFound):
        client.call("get_schedule", name)
    cron = client.call("create_schedule", f"cron-{client.kind}", "demo", cron="0 9 * * 1-5", time_zone="Europe/Paris")
    assert cron.schedule.cron == "0 9 * * 1-5" and cron.schedule.time_zone == "Europe/Paris"
    with pytest.raises(InvalidArgument) as caught:
        client.call("create_schedule", "never", "demo", cron="0 0 30 2 *")
    assert caught.value.field_violations[0][0] == "schedule.cron.expression"


def test_limits_are_created_read_listed_replaced_and_deleted(client: ClientFacade) -> None:
    name = f"per-customer-{client.kind}"
    definition = {"task_type": "demo", "key_label": "customer", "max_running": 2, "rate": "5/30s", "burst": 2}
    made = client.call("create_limit", name, **definition)
    assert made.created and made.limit.rate == (5, 30.0, 2) and made.limit.on_full == "QUEUE"
    assert client.call("create_limit", name, **definition).created is False
    with pytest.raises(c.AlreadyExists):
        client.call("create_limit", name, max_running=9)
    updated = client.call("update_limit", name, key_label="customer", max_running=3, weights={"gold": 2.0})
    assert updated.max_running == 3 and updated.rate is None and updated.weights == {"gold": 2.0}
    assert client.call("get_limit", name) == updated
    assert name in [limit.limit_id for limit in client.call("list_limits").limits]
    assert client.call("delete_limit", name).limit_id == name
    with pytest.raises(TaskNotFound):
        client.call("get_limit", name)
    with pytest.raises(InvalidArgument) as caught:
        client.call("create_limit", "bad", max_running=-1)
    assert caught.value.field_violations[0][0] == "limit.max_running"
    with pytest.raises(ValueError, match="COUNT/PERIOD"):
        client.call("create_limit", "bad", rate="often")


def test_task_types_carry_defaults_and_what_the_docstrings_say(client: ClientFacade) -> None:
    types = {kind.name: kind for kind in client.call("task_types")}
    compress = types["file.compress"]
    assert compress.description.startswith("Gzip a file at `level`")
    level = {arg.name: arg for arg in compress.args}["level"]
    assert (level.has_default, level.default, level.rule) == (True, 6, "from 1 to 9")
    assert level.description == "1 (fastest) to 9 (smallest)."


def test_a_watch_resumed_after_the_terminal_event_ends_at_once(client: ClientFacade) -> None:
    task_id = client.submit("demo", FAST_DEMO).task.task_id
    terminal = client.watch(task_id)[-1]
    assert terminal.state is TaskState.SUCCESS
    assert client.watch(task_id, after_sequence=terminal.sequence) == []


def test_submit_with_an_id_is_idempotent(client: ClientFacade) -> None:
    first = client.submit("sleep", {"seconds": 0.01}, task_id=f"fixed-{client.kind}")
    again = client.submit("sleep", {"seconds": 0.01}, task_id=f"fixed-{client.kind}")
    assert first.created is True and again.created is False
    assert again.task.task_id == first.task.task_id == f"fixed-{client.kind}"
    with pytest.raises(c.AlreadyExists) as info:
        client.submit("sleep", {"seconds": 5}, task_id=f"fixed-{client.kind}")
    assert str(info.value).startswith("ALREADY_EXISTS: ")


def test_watch_a_demo_to_success(client: ClientFacade) -> None:
    task_id = client.submit("demo", FAST_DEMO).task.task_id
    events = client.watch(task_id)
    assert events[0].task is not None, "the first event is a snapshot with the task"
    sequences = [e.sequence for e in events]
    assert sequences == sorted(set(sequences)), "sequences only grow"
    assert [e.state.is_terminal for e in events] == [False] * (len(events) - 1) + [True]
    final = events[-1]
    assert final.state is TaskState.SUCCESS
    assert final.task is not None and final.task.state is TaskState.SUCCESS
    assert final.task.ended_at is not None and final.task.started_at is not None
    assert final.progress.percent == 100.0
    percents = [e.progress.percent for e in events if e.state is TaskState.RUNNING]
    assert percents == sorted(percents)
    assert client.get(task_id).state is TaskState.SUCCESS


def test_wait_for_a_failing_demo(client: ClientFacade) -> None:
    task_id = client.submit("demo", {"steps": 3, "fail_rate": 1}).task.task_id
    task = client.wait(task_id, timeout=30)
    assert task.state is TaskState.FAILURE
    assert task.error is not None and task.error.type and task.error.message
    assert "Traceback" in task.error.traceback
    assert task.result is None


def test_stop_a_running_task(client: ClientFacade) -> None:
    task_id = client.submit("sleep", {"seconds": 60}).task.task_id
    _wait_for_state(client, task_id, TaskState.RUNNING)
    stopped = client.stop(task_id, reason="the test says stop")
    assert stopped.state in (TaskState.STOPPING, TaskState.REVOKED)
    final = client.wait(task_id, timeout=10)
    assert final.state is TaskState.REVOKED
    assert final.error is not None and final.error.type == "Revoked"
    assert "the test says stop" in final.error.message
    # Stopping a finished task returns it unchanged.
    assert client.stop(task_id).state is TaskState.REVOKED


def test_time_limit(client: ClientFacade) -> None:
    task_id = client.submit("sleep", {"seconds": 60}, time_limit=0.3).task.task_id
    final = client.wait(task_id, timeout=20)
    assert final.state is TaskState.TIMED_OUT
    assert final.error is not None and final.error.type == "TimeLimitExceeded"
    assert final.time_limit == pytest.approx(0.3)
    assert final.started_at and final.ended_at and final.ended_at - final.started_at < timedelta(seconds=10)


def test_typed_errors(client: ClientFacade) -> None:
    with pytest.raises(c.TaskNotFound):
        client.get("no-such-task")
    with pytest.raises(c.TaskNotFound):
        client.stop("no-such-task")
    with pytest.raises(c.TaskNotFound):
        client.watch("no-such-task")
    with pytest.raises(c.InvalidArgument) as info:
        client.submit("demo", {"steps": 10.5})
    assert [f for f, _ in info.value.field_violations] == ["args.steps"]
    assert str(info.value).startswith("INVALID_ARGUMENT: ") and "args.steps" in str(info.value)
    with pytest.raises(c.InvalidArgument) as info:
        client.submit("no-such-type")
    assert [f for f, _ in info.value.field_violations] == ["task_type"]
    with pytest.raises(c.InvalidArgument):
        client.submit("sleep", {"seconds": 1}, task_id="bad id with spaces")


def test_list_filters_and_pages(client: ClientFacade) -> None:
    sleeps = [client.submit("sleep", {"seconds": 0.01}, labels={"group": "a"}).task.task_id for _ in range(3)]
    one_step = {"steps": 1, "step_seconds": 0.01}
    demos = [client.submit("demo", one_step, labels={"group": "b"}).task.task_id for _ in range(2)]
    for task_id in sleeps + demos:
        assert client.wait(task_id, timeout=30).state is TaskState.SUCCESS
    newest_first = list(reversed(sleeps + demos))
    assert [t.task_id for t in client.iter_tasks(page_size=2)] == newest_first
    page = client.list(page_size=2)
    assert len(page.tasks) == 2 and page.next_page_token
    assert [t.task_id for t in client.list(task_type="demo").tasks] == list(reversed(demos))
    assert [t.task_id for t in client.list(labels={"group": "a"}).tasks] == list(reversed(sleeps))
    assert {t.task_id for t in client.list(states=[TaskState.SUCCESS]).tasks} == set(sleeps + demos)
    assert client.list(states=["failure", TaskState.REVOKED]).tasks == []


def test_stop_a_pending_task_revokes_it_at_once(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "tasks.db", workers=1) as server, c.TaskClient(server.start().address) as client:
        blocker = client.submit("sleep", {"seconds": 60}).task.task_id
        wait_until(lambda: client.get(blocker).state is TaskState.RUNNING)
        pending = client.submit("demo", FAST_DEMO).task.task_id
        assert client.get(pending).state is TaskState.PENDING
        revoked = client.stop(pending)
        assert revoked.state is TaskState.REVOKED
        assert revoked.started_at is None, "a revoked pending task never runs"


def test_queue_full(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "tasks.db", workers=1, extra_args=["--max-queue", "1"])
    with server, c.TaskClient(server.start().address) as client:
        running = client.submit("sleep", {"seconds": 60}).task.task_id
        wait_until(lambda: client.get(running).state is TaskState.RUNNING)
        client.submit("sleep", {"seconds": 60})
        with pytest.raises(c.QueueFull) as info:
            client.submit("sleep", {"seconds": 60})
        assert str(info.value).startswith("RESOURCE_EXHAUSTED: ")


def test_a_killed_server_is_unavailable(server_process: ServerProcess) -> None:
    with c.TaskClient(server_process.address, timeout=5) as client:
        client.list()
        server_process.kill()
        with pytest.raises(c.Unavailable):
            client.get("anything")


@pytest.mark.parametrize("kind", sorted(FACADES))
def test_watch_survives_a_server_restart(kind: str, tmp_path: Path) -> None:
    """SIGKILL while a watched task is PENDING, restart on the same db: the watch ends with SUCCESS."""
    with ServerProcess(tmp_path / "tasks.db", workers=1) as server:
        server.start()
        setup = c.TaskClient(server.address)
        # A long sleep holds the only worker, so the watched demo stays PENDING until after the restart.
        blocker = setup.submit("sleep", {"seconds": 120}).task.task_id
        # On disk too: a blocker the crash finds PENDING would run again, ahead of the watched task.
        wait_until(lambda: server.committed(blocker) == ("RUNNING", 1), what="the blocker RUNNING on disk")
        watched = setup.submit("demo", FAST_DEMO).task.task_id
        first_event = threading.Event()
        outcome: dict[str, object] = {}

        def watch() -> None:
            facade = FACADES[kind](server.address, timeout=10.0, reconnect_timeout=30.0)
            try:
                outcome["events"] = facade.watch(watched, on_event=lambda _: first_event.set())
            except BaseException as err:
                outcome["error"] = err
                first_event.set()
            finally:
                facade.close()

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        assert first_event.wait(10), "no first event"
        server.kill()
        server.restart()
        thread.join(60)
        assert not thread.is_alive(), "the watch did not end"
        assert "error" not in outcome, outcome.get("error")
        events = outcome["events"]
        assert isinstance(events, list)
        assert events[0].state is TaskState.PENDING
        assert events[-1].state is TaskState.SUCCESS
        assert all(not e.state.is_terminal for e in events[:-1])
        # The blocker was running when the server died.
        assert setup.get(blocker).state is TaskState.LOST
        setup.close()


async def test_async_client_waits_concurrently(server_process: ServerProcess) -> None:
    async with c.AsyncTaskClient(server_process.address) as client:
        submitted = await asyncio.gather(*(client.submit("demo", FAST_DEMO, labels={"n": str(i)}) for i in range(4)))
        finals = await asyncio.gather(*(client.wait(s.task.task_id, timeout=30) for s in submitted))
        assert [f.state for f in finals] == [TaskState.SUCCESS] * 4
        listed = [t.task_id async for t in client.iter_tasks(states=[TaskState.SUCCESS], page_size=3)]
        assert sorted(listed) == sorted(s.task.task_id for s in submitted)


def test_wait_all_and_as_completed_follow_many_tasks_on_one_stream(client: ClientFacade) -> None:
    slow = client.submit("demo", {"steps": 10, "step_seconds": 0.05}).task.task_id
    quick = [client.submit("demo", FAST_DEMO).task.task_id for _ in range(3)]
    ended = client.wait_all([slow, *quick], timeout=30)
    assert [task.task_id for task in ended] == [slow, *quick], "in the order asked"
    assert {task.state for task in ended} == {TaskState.SUCCESS}
    order = [task.task_id for task in client.as_completed([slow, *quick], timeout=30)]
    assert sorted(order) == sorted([slow, *quick])
    events = client.watch_many([slow, *quick], timeout=30)
    assert {event.task_id for event in events} == {slow, *quick}
    with pytest.raises(TaskNotFound):
        client.wait_all([slow, "no-such-task"], timeout=10)
    assert [e.task_id for e in client.watch_many([slow, "no-such-task"], ignore_missing=True)] == [slow]
