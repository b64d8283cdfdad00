"""Tasks submitted by function against a real server: typed results, typed failures, batches, options, asyncio."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from taskservice.client import InvalidArgument, TaskClient, TaskFailed, TaskRun, TaskState
from taskservice.testing import TaskServer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "typed"
sys.path.insert(0, str(EXAMPLE))
from photo_tasks import Thumbnail, count, thumbnail  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server() -> Iterator[TaskServer]:
    with TaskServer(tasks=["photo_tasks"], workers=2) as running:
        yield running


@pytest.fixture
def client(server: TaskServer) -> Iterator[TaskClient]:
    with server.client() as made:
        yield made


def test_a_typed_submit_returns_the_handlers_own_type(client: TaskClient) -> None:
    run = thumbnail.submit(client, name="cat.jpg", width=600)
    assert isinstance(run, TaskRun) and run.created
    result = run.result(timeout=30)
    assert result == Thumbnail(name="cat.jpg", width=600, height=400)
    # The server stores it as JSON, as every other client reads it.
    assert client.get(run.task_id).result == {"name": "cat.jpg", "width": 600, "height": 400}
    assert count.submit(client, names=["a.JPG", "b.jpg", "c.png"]).result(timeout=30) == {"jpg": 2, "png": 1}


def test_a_failed_task_raises_task_failed_with_the_remote_error(client: TaskClient) -> None:
    run = thumbnail.submit(client, name="cat.jpg", width=0)
    with pytest.raises(TaskFailed) as failed:
        run.result(timeout=30)
    assert failed.value.state is TaskState.FAILURE
    assert failed.value.error_type == "ValueError" and failed.value.message == "width must be positive, got 0"
    assert "raise ValueError" in failed.value.remote_traceback
    assert run.task_id in str(failed.value) and "ValueError" in str(failed.value)


def test_a_stopped_task_raises_task_failed_revoked(client: TaskClient) -> None:
    later = thumbnail.with_options(delay=3600).submit(client, name="late.jpg", width=10)
    later.stop("not needed")
    with pytest.raises(TaskFailed) as failed:
        later.result(timeout=30)
    assert failed.value.state is TaskState.REVOKED


def test_submit_options_travel_with_the_handle(client: TaskClient) -> None:
    handle = thumbnail.with_options(task_id="thumb-options-1", priority=7, labels={"team": "photos"})
    first = handle.submit(client, name="a.jpg", width=30)
    again = handle.submit(client, name="a.jpg", width=30)
    assert first.task_id == again.task_id == "thumb-options-1"
    assert first.created and not again.created
    task = first.wait(timeout=30)
    assert task.priority == 7 and task.labels == {"team": "photos"}
    # The original handle is unchanged.
    assert thumbnail.options.priority == 0 and thumbnail.options.task_id is None


def test_a_batch_of_handles_gives_one_run_or_error_each(client: TaskClient) -> None:
    calls = [thumbnail.bind(name=f"{n}.jpg", width=30 * (n + 1)) for n in range(3)]
    calls.append(thumbnail.with_options(task_id="not a valid id!").bind(name="x.jpg", width=1))
    results = client.submit_batch(calls)
    assert [type(r) for r in results[:3]] == [TaskRun, TaskRun, TaskRun]
    assert isinstance(results[3], InvalidArgument)
    widths = [cast(TaskRun[Thumbnail], r).result(timeout=30).width for r in results[:3]]
    assert widths == [30, 60, 90]


def test_a_mistyped_arg_is_still_refused_by_the_server(client: TaskClient) -> None:
    untyped: Any = thumbnail
    with pytest.raises(InvalidArgument, match=r"args\.width"):
        untyped.submit(client, name="cat.jpg", width="wide")
    # Python's own check, before any call.
    with pytest.raises(TypeError, match=r"'photos\.thumbnail': got an unexpected keyword argument 'hieght'"):
        untyped.submit(client, name="cat.jpg", width=1, hieght=2)


async def test_the_async_client_awaits_the_run_for_its_result(server: TaskServer) -> None:
    async with server.async_client() as client:
        run = await thumbnail.submit(client, name="dog.png", width=300)
        assert await run == Thumbnail(name="dog.png", width=300, height=200)
        assert (await run.get()).state is TaskState.SUCCESS
        results = await client.submit_batch([thumbnail.bind(name="e.png", width=3)])
        run = results[0]
        assert not isinstance(run, Exception)
        assert (await run.result(timeout=30)).height == 2
        with pytest.raises(TaskFailed):
            await (await thumbnail.submit(client, name="dog.png", width=-1))


def test_the_typed_example_runs_as_written(server: TaskServer) -> None:
    env = {"TASKSERVICE_ADDR": server.address, "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, str(EXAMPLE / "make_thumbnails.py"), "cat.jpg", "dog.png"],
                          capture_output=True, text=True, timeout=120, env=env, cwd=EXAMPLE)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "cat.jpg: 640x426",
        "cat.jpg: 320x213",
        "dog.png: 320x213",
        "jpg: 1, png: 1",
        "failed as expected: ValueError: width must be positive, got 0",
    ]
