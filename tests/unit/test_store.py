"""Both stores behave the same; the SQLite one also versions its schema and refuses foreign files."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskservice.core.models import Progress, Task, TaskError, TaskFilter, TaskState
from taskservice.core.store import (
    InsertTask,
    MemoryStore,
    SaveProgress,
    SaveTask,
    SQLiteStore,
    StoreOpenError,
    TaskStore,
)
from taskservice.core.store.sqlite import SCHEMA_VERSION


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TaskStore]:
    made: TaskStore = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "t.db")
    yield made
    made.close()


def task(seq: int, **fields: object) -> Task:
    values: dict = {
        "task_id": f"t{seq}",
        "task_type": "echo",
        "args": {"n": seq},
        "state": TaskState.PENDING,
        "submitted_at": 1000.0 + seq,
        "seq": seq,
        "sequence": 1,
        "request_digest": "d",
    }
    values.update(fields)
    return Task(**values)


def test_insert_get_and_save_round_trip_every_field(store: TaskStore) -> None:
    original = task(1, labels={"team": "a"}, time_limit=2.5, priority=-3)
    store.apply([InsertTask(original)])
    assert store.get("t1") == original
    finished = original.copy()
    finished.state = TaskState.FAILURE
    finished.error = TaskError("ValueError", "bad", "Traceback ...")
    finished.result = None
    finished.progress = Progress(50.0, "half", 5, 10, 1001.5)
    finished.started_at, finished.ended_at, finished.attempt, finished.sequence = 1001.0, 1002.0, 1, 7
    store.apply([SaveTask(finished)])
    assert store.get("t1") == finished
    assert store.get("missing") is None


def test_results_of_every_json_kind_round_trip(store: TaskStore) -> None:
    for seq, result in enumerate([{"a": [1, 2.5, None]}, "text", 3, False, [1]], start=1):
        stored = task(seq, state=TaskState.SUCCESS, result=result)
        store.apply([InsertTask(stored)])
        assert store.get(stored.task_id).result == result  # type: ignore[union-attr]


def test_progress_writes_keep_the_highest_sequence(store: TaskStore) -> None:
    store.apply([InsertTask(task(1))])
    store.apply([SaveProgress("t1", Progress(10.0, "a"), 9), SaveProgress("t1", Progress(20.0, "b"), 5)])
    stored = store.get("t1")
    assert stored is not None and stored.progress.percent == 20.0 and stored.sequence == 9


def test_list_is_newest_first_pages_and_filters(store: TaskStore) -> None:
    store.apply(
        [
            InsertTask(task(i, state=TaskState.SUCCESS if i % 2 else TaskState.PENDING, labels={"k": str(i % 3)}))
            for i in range(1, 11)
        ]
    )
    page = store.list(TaskFilter(), before_seq=None, limit=4)
    assert [t.seq for t in page] == [10, 9, 8, 7]
    assert [t.seq for t in store.list(TaskFilter(), before_seq=7, limit=4)] == [6, 5, 4, 3]
    done = store.list(TaskFilter(states=frozenset({TaskState.SUCCESS})), before_seq=None, limit=100)
    assert [t.seq for t in done] == [9, 7, 5, 3, 1]
    labelled = store.list(TaskFilter(labels=(("k", "0"),)), before_seq=None, limit=100)
    assert [t.seq for t in labelled] == [9, 6, 3]
    assert store.list(TaskFilter(task_type="other"), before_seq=None, limit=100) == []
    assert store.max_seq() == 10 and store.count() == 10


def test_load_unfinished_returns_pending_running_and_stopping_in_order(store: TaskStore) -> None:
    states = [TaskState.RUNNING, TaskState.SUCCESS, TaskState.PENDING, TaskState.STOPPING, TaskState.LOST]
    store.apply([InsertTask(task(i, state=s)) for i, s in enumerate(states, start=1)])
    assert [t.seq for t in store.load_unfinished()] == [1, 3, 4]


def test_a_failing_batch_leaves_nothing_behind(store: TaskStore) -> None:
    store.apply([InsertTask(task(1))])
    with pytest.raises(Exception):  # noqa: B017 - each store raises its own duplicate-key error
        store.apply([InsertTask(task(2)), InsertTask(task(1, seq=3))])
    assert store.get("t2") is None and store.count() == 1


def test_sqlite_schema_is_versioned_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    first = SQLiteStore(path)
    first.apply([InsertTask(task(1))])
    first.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    second = SQLiteStore(path)
    assert second.get("t1") is not None
    second.close()


def test_sqlite_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreOpenError, match="not a usable taskservice database"):
        SQLiteStore(path)
    assert path.read_bytes().startswith(b"this is not sqlite"), "never reset silently"


def test_sqlite_refuses_another_applications_database(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(StoreOpenError, match="invoices"):
        SQLiteStore(path)


def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreOpenError, match="newer"):
        SQLiteStore(path)
