"""Both stores behave the same; the SQLite one also versions its schema and refuses foreign files."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskservice.core.models import Progress, Task, TaskError, TaskFilter, TaskState
from taskservice.core.store import (
    DeleteTasks,
    InsertTask,
    MemoryStore,
    SaveProgress,
    SaveTask,
    SQLiteStore,
    StoreOpenError,
    TaskStore,
)
from taskservice.core.store.sqlite import MIGRATIONS, SCHEMA_VERSION, _rows_per_statement


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
        "submit_order": seq,
        "event_sequence": 1,
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
    finished.started_at, finished.ended_at, finished.attempt, finished.event_sequence = 1001.0, 1002.0, 1, 7
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
    assert stored is not None and stored.progress.percent == 20.0 and stored.event_sequence == 9


def test_list_is_newest_first_pages_and_filters(store: TaskStore) -> None:
    store.apply(
        [
            InsertTask(task(i, state=TaskState.SUCCESS if i % 2 else TaskState.PENDING, labels={"k": str(i % 3)}))
            for i in range(1, 11)
        ]
    )
    page = store.list(TaskFilter(), before_order=None, limit=4)
    assert [t.submit_order for t in page] == [10, 9, 8, 7]
    assert [t.submit_order for t in store.list(TaskFilter(), before_order=7, limit=4)] == [6, 5, 4, 3]
    done = store.list(TaskFilter(states=frozenset({TaskState.SUCCESS})), before_order=None, limit=100)
    assert [t.submit_order for t in done] == [9, 7, 5, 3, 1]
    labelled = store.list(TaskFilter(labels=(("k", "0"),)), before_order=None, limit=100)
    assert [t.submit_order for t in labelled] == [9, 6, 3]
    assert store.list(TaskFilter(task_type="other"), before_order=None, limit=100) == []
    assert store.max_order() == 10 and store.count() == 10


def test_load_unfinished_returns_pending_running_and_stopping_in_order(store: TaskStore) -> None:
    states = [TaskState.RUNNING, TaskState.SUCCESS, TaskState.PENDING, TaskState.STOPPING, TaskState.LOST]
    store.apply([InsertTask(task(i, state=s)) for i, s in enumerate(states, start=1)])
    assert [t.submit_order for t in store.load_unfinished()] == [1, 3, 4]


@pytest.mark.parametrize("count", [1, 3, 4, 5, 17, 63, 64, 65, 300, 1000])
@pytest.mark.parametrize("row_by_row", [False, True], ids=["many-rows", "row-by-row"])
def test_sqlite_batches_of_every_size_store_what_the_memory_store_does(
    tmp_path: Path, count: int, row_by_row: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SQLite store writes a batch with statements of many rows each (256, 64, 16, 4, then single rows), or
    row by row where SQLite is older than 3.33: every count, remainders too, ends as the in-memory reference."""
    store = SQLiteStore(tmp_path / "t.db")
    if row_by_row:
        monkeypatch.setattr(store, "_rows_per_statement", (1,))
    reference = MemoryStore()
    inserts = [
        InsertTask(
            task(
                i,
                labels={"k": str(i % 3), "n": str(i)} if i % 2 else {},
                priority=i % 5,
                time_limit=float(i) if i % 4 else None,
            )
        )
        for i in range(1, count + 1)
    ]
    saves = []
    for write in inserts:
        saved = write.task.copy()
        i = saved.submit_order
        saved.state = (TaskState.SUCCESS, TaskState.FAILURE, TaskState.RUNNING)[i % 3]
        saved.result = {"i": i} if saved.state is TaskState.SUCCESS else None
        saved.error = TaskError("E", f"error {i}", "tb") if saved.state is TaskState.FAILURE else None
        saved.progress = Progress(i % 100, f"p{i}", i, count, 2000.0 + i)
        saved.started_at, saved.attempt, saved.event_sequence = 1500.0 + i, 1, 3 + i % 4
        saves.append(SaveTask(saved))
    # Progress of every other task: some newer than the save's sequence, some older (which must not lower it).
    progress = [
        SaveProgress(f"t{i}", Progress(99.0, f"late {i}"), 2 + (i // 2 % 2) * 12) for i in range(1, count + 1, 2)
    ]
    for target in (store, reference):
        target.apply(inserts)
        target.apply(saves)
        target.apply(progress)
    for i in range(1, count + 1):
        assert store.get(f"t{i}") == reference.get(f"t{i}"), f"task t{i} of {count}"
    labelled = TaskFilter(labels=(("k", "1"),))
    assert store.list(labelled, before_order=None, limit=count) == reference.list(
        labelled, before_order=None, limit=count
    )
    assert store.count() == count
    reference.close()
    store.close()


def test_statements_stay_within_the_variable_limit_of_the_sqlite_in_use() -> None:
    if sqlite3.sqlite_version_info < (3, 33, 0):
        pytest.skip("SQLite before 3.33 writes row by row")
    with contextlib.closing(sqlite3.connect(":memory:")) as conn:
        assert _rows_per_statement(conn) == (256, 64, 16, 4, 1)  # 32,766 variables since SQLite 3.32
        conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)  # the default before 3.32
        assert _rows_per_statement(conn) == (16, 4, 1)
        conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 20)
        assert _rows_per_statement(conn) == (1,)


def test_a_failing_batch_leaves_nothing_behind(store: TaskStore) -> None:
    store.apply([InsertTask(task(1))])
    with pytest.raises(Exception):  # noqa: B017 - each store raises its own duplicate-key error
        store.apply([InsertTask(task(2)), InsertTask(task(1, submit_order=3))])
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


def test_a_file_of_an_older_schema_is_migrated_and_keeps_its_tasks(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # as a server of schema 2 left it
        conn.executescript(MIGRATIONS[1] + MIGRATIONS[2])
        conn.execute(
            "INSERT INTO tasks (seq, task_id, task_type, args, state, priority, labels, submitted_at, attempt, "
            "sequence, request_digest) VALUES (1, 'old', 'demo', '{}', 'SUCCESS', 0, '{}', 1.0, 1, 3, 'd')"
        )
        conn.execute("PRAGMA user_version = 2")
    store = SQLiteStore(path)
    old = store.get("old")
    assert old is not None and old.state is TaskState.SUCCESS and old.retention is None
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


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


def test_ended_tasks_are_found_by_their_end_and_retention_and_deleted_with_their_labels(store: TaskStore) -> None:
    def ended(seq: int, at: float, **fields: object) -> Task:
        return task(seq, **{"state": TaskState.SUCCESS, "ended_at": at, "labels": {"batch": "b"}, **fields})

    store.apply(
        [
            InsertTask(ended(1, 100.0)),  # the server's retention
            InsertTask(ended(2, 200.0, retention=0.0)),  # kept for ever
            InsertTask(ended(3, 300.0, retention=10.0)),  # its own, short
            InsertTask(task(4, labels={"batch": "b"})),  # unfinished: never
            InsertTask(ended(5, 500.0, state=TaskState.FAILURE, labels={"batch": "c"})),
        ]
    )
    assert store.expired_ids(now=350.0, retention=100.0, limit=10) == ["t1", "t3"]
    assert store.expired_ids(now=350.0, retention=0.0, limit=10) == ["t3"], "0: the server keeps for ever"
    assert store.expired_ids(now=350.0, retention=100.0, limit=1) == ["t1"], "oldest end first"
    assert store.ended_ids(TaskFilter(labels=(("batch", "b"),)), None, 10) == ["t1", "t2", "t3"]
    assert store.ended_ids(TaskFilter(), ended_before=300.0, limit=10) == ["t1", "t2"]
    assert store.ended_ids(TaskFilter(states=frozenset({TaskState.FAILURE})), None, 10) == ["t5"]
    store.apply([DeleteTasks(("t1", "t3"))])
    assert store.get("t1") is None and store.get("t3") is None and store.get("t2") is not None
    assert [t.task_id for t in store.list(TaskFilter(labels=(("batch", "b"),)), before_order=None, limit=10)] == [
        "t4",
        "t2",
    ]
    store.apply([SaveTask(ended(1, 100.0))])  # a late write to a deleted task brings nothing back
    assert store.get("t1") is None
