"""PostgreSQL's GetStats counts (schema 11): triggers write each change's +1/-1 rows, a node's reap folds them into
the totals, and a read adds the changes not folded yet. Held to a GROUP BY over the tasks themselves: after folds,
with nodes changing and folding at once, and for tasks stored before the counts existed."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from taskservice.core.board import Board
from taskservice.core.model.models import TaskState
from tests.board.contract import NOW, claim, ended, finish, new, submit
from tests.support.postgres import pg_database, pg_dsn

__all__ = ["pg_database", "pg_dsn"]


def _open(dsn: str) -> Board:
    from taskservice.core.board.postgres.board import PostgresBoard

    return PostgresBoard(dsn)


def _query(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        return list(conn.execute(sql).fetchall())


def _truth(dsn: str) -> dict[tuple[str, str], int]:
    rows = _query(dsn, "SELECT task_type, state, count(*) FROM taskservice_tasks GROUP BY 1, 2")
    return {(task_type, state): int(n) for task_type, state, n in rows}


def _counted(board: Board) -> dict[tuple[str, str], int]:
    return {(c.task_type, c.state.value): c.count for c in board.task_counts()}


def test_a_reap_folds_the_changes_and_the_counts_read_the_same(pg_dsn: str) -> None:
    board = _open(pg_dsn)
    try:
        submit(board, [new(f"t{i}") for i in range(6)] + [new("o1", task_type="other")])
        first, second = claim(board, 2, types={"echo"})
        assert finish(board, first, ended(first, TaskState.SUCCESS))
        assert finish(board, second, ended(second, TaskState.FAILURE))
        before = _counted(board)
        assert before == _truth(pg_dsn) == {("echo", "PENDING"): 4, ("echo", "SUCCESS"): 1, ("echo", "FAILURE"): 1,
                                            ("other", "PENDING"): 1}  # fmt: skip
        assert _query(pg_dsn, "SELECT count(*) FROM taskservice_task_count_changes")[0][0] > 0
        board.reap(NOW, ())
        assert _query(pg_dsn, "SELECT count(*) FROM taskservice_task_count_changes")[0][0] == 0, "folded"
        assert _counted(board) == before
        claim(board, 4, types={"echo"})
        board.reap(NOW, ())
        assert _counted(board) == _truth(pg_dsn) and _counted(board)[("echo", "RUNNING")] == 4
        totals = _query(pg_dsn, "SELECT state, n FROM taskservice_task_counts WHERE task_type = 'echo'")
        assert dict(totals)["PENDING"] == 0, "a pair that emptied stays a row of 0, and is not read as a count"
        assert ("echo", "PENDING") not in _counted(board)
    finally:
        board.close()


def test_nodes_changing_and_folding_at_once_keep_the_counts_true(pg_dsn: str) -> None:
    boards = [_open(pg_dsn) for _ in range(3)]
    failures: list[BaseException] = []

    def work(board: Board, node: int) -> None:
        try:
            for round_ in range(8):
                submit(board, [new(f"n{node}-{round_}-{i}", task_type=f"type{i % 2}") for i in range(5)])
                owned = claim(board, 3, node=f"node{node}")
                for number, run in enumerate(owned):
                    state = TaskState.SUCCESS if number % 2 else TaskState.FAILURE
                    assert finish(board, run, ended(run, state))
                board.reap(NOW, ())
        except BaseException as exc:  # reported by the test's thread below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(board, n)) for n, board in enumerate(boards)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not failures, failures
        truth = _truth(pg_dsn)
        assert sum(truth.values()) == 3 * 8 * 5
        assert all(_counted(board) == truth for board in boards)
        boards[0].reap(NOW, ())
        assert _counted(boards[1]) == truth
        folded = _query(pg_dsn, "SELECT coalesce(sum(n), 0)::bigint FROM taskservice_task_counts")[0][0]
        assert folded == sum(truth.values()), "every change folded into the totals"
    finally:
        for board in boards:
            board.close()


def test_tasks_stored_before_the_counts_existed_are_counted(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    from taskservice.core.board.postgres import schema

    monkeypatch.setattr(schema, "SCHEMA_VERSION", 10)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")  # a database as a server of schema 10 left it
        conn.execute("CREATE SCHEMA public")
        schema.migrate(conn, "the test database")
        conn.execute(
            """INSERT INTO taskservice_tasks (task_id, task_type, args, state, priority, labels, submitted_at,
                   event_sequence, request_digest)
               SELECT 'old' || g, 'legacy', '{}', CASE WHEN g % 3 = 0 THEN 'SUCCESS' ELSE 'PENDING' END, 0, '{}', 1,
                   1, 'digest' FROM generate_series(1, 30) g"""
        )
    monkeypatch.undo()
    board = _open(pg_dsn)
    try:
        assert _query(pg_dsn, "SELECT max(version) FROM taskservice_schema")[0][0] == schema.SCHEMA_VERSION
        assert _counted(board) == {("legacy", "SUCCESS"): 10, ("legacy", "PENDING"): 20}
        (run,) = claim(board, 1, types={"legacy"})
        assert finish(board, run, ended(run, TaskState.SUCCESS))
        assert _counted(board) == _truth(pg_dsn) == {("legacy", "SUCCESS"): 11, ("legacy", "PENDING"): 19}
    finally:
        board.close()
