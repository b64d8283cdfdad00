"""The group-commit writer: many writes per transaction, the latest state of a task written once, failures kept
to the writes that caused them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskservice.core.errors import StoreUnavailable
from taskservice.core.models import Progress, TaskFilter, TaskState
from taskservice.core.store import InsertTask, SaveProgress, SaveTask, SQLiteStore
from taskservice.core.store.writer import StoreWriter, coalesced
from tests.support.waiting import wait_until
from tests.unit.test_store import task


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    made = SQLiteStore(tmp_path / "t.db")
    yield made
    made.close()


def test_coalesced_keeps_the_last_save_of_each_task_in_place() -> None:
    first, second = task(1), task(2)
    running = first.copy()
    running.state = TaskState.RUNNING
    done = first.copy()
    done.state = TaskState.SUCCESS
    progress = SaveProgress("t2", Progress(10.0), 3)
    writes = [InsertTask(first), InsertTask(second), SaveTask(running), progress, SaveTask(second), SaveTask(done)]
    assert coalesced(writes) == [InsertTask(first), InsertTask(second), progress, SaveTask(second), SaveTask(done)]
    untouched = [InsertTask(first), SaveTask(running), SaveTask(second)]
    assert coalesced(untouched) == untouched


def test_writes_queued_together_share_commits_and_the_row_holds_the_latest_state(store: SQLiteStore) -> None:
    writer = StoreWriter(store, progress_source=None)
    blocker = threading.Event()
    # Hold the writer in a callback so that everything below queues up behind it and lands in one batch.
    writer.write(InsertTask(task(1)), then=lambda error: blocker.wait(5))
    versions = []
    for state in (TaskState.RUNNING, TaskState.SUCCESS):
        version = task(1, state=state, attempt=1, event_sequence=len(versions) + 2)
        versions.append(version)
    heard: list[BaseException | None] = []
    for version in versions:
        writer.write(SaveTask(version), then=heard.append)
    done = writer.commit(InsertTask(task(2)))
    blocker.set()
    done.result(timeout=5)
    writer.close()
    assert heard == [None, None]
    assert store.get("t1") == versions[-1]
    assert writer.commits <= 2  # 4 writes: the first insert, then (or with it) everything queued behind it


def test_a_failing_write_fails_alone_and_the_rest_of_its_batch_lands(store: SQLiteStore) -> None:
    store.apply([InsertTask(task(1))])
    writer = StoreWriter(store, progress_source=None)
    blocker = threading.Event()
    writer.write(InsertTask(task(2)), then=lambda error: blocker.wait(5))
    duplicate = writer.commit(InsertTask(task(1)))  # the same seq and id again: a constraint error
    fresh = writer.commit(InsertTask(task(3)))
    blocker.set()
    fresh.result(timeout=5)
    with pytest.raises(StoreUnavailable, match="could not be written"):
        duplicate.result(timeout=5)
    writer.close()
    assert [t.task_id for t in store.list(TaskFilter(), before_order=None, limit=10)] == ["t3", "t2", "t1"]


def test_a_closed_writer_refuses_at_once(store: SQLiteStore) -> None:
    writer = StoreWriter(store, progress_source=None)
    writer.close()
    heard: list[BaseException | None] = []
    writer.write(InsertTask(task(1)), then=heard.append)
    wait_until(lambda: heard, what="the refusal")
    assert isinstance(heard[0], StoreUnavailable)
    with pytest.raises(StoreUnavailable):
        writer.commit(InsertTask(task(2))).result(timeout=5)
    assert store.get("t1") is None


class FullDisk(SQLiteStore):
    """Refuses every write, as a full disk does; a write of nothing is no write and is not refused."""

    def apply(self, writes):  # type: ignore[no-untyped-def]
        if writes:
            raise OSError(28, "No space left on device")

    def probe_write(self) -> None:
        raise OSError(28, "No space left on device")


def test_a_batch_of_callbacks_alone_is_no_commit_and_says_nothing_of_health(tmp_path: Path) -> None:
    store = FullDisk(tmp_path / "full.db")
    writer = StoreWriter(store, progress_source=None)
    heard: list[bool] = []
    writer.health.listen(heard.append)
    with pytest.raises(StoreUnavailable):
        writer.commit(InsertTask(task(1))).result(timeout=5)
    assert writer.healthy is False and heard == [False]
    for _ in range(5):  # what waits its turn behind earlier writes (a Stop's answer does)
        writer.commit().result(timeout=5)
    assert writer.healthy is False and heard == [False], "no write succeeded: health must not flap to SERVING"
    assert writer.commits == 0
    writer.close()
    store.close()
