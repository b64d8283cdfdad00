"""The board contract (contract.py) run against every board this project ships: SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from taskservice.core.board import Board, SQLiteBoard
from taskservice.core.model.models import TaskState
from tests.board.contract import *  # noqa: F403 - the contract's tests run here
from tests.board.contract import claim, ended, finish, new, submit
from tests.board.limits_contract import *  # noqa: F403 - and those of limits
from tests.board.nodes_contract import *  # noqa: F403 - and those of the servers on a board
from tests.support.postgres import pg_database, pg_dsn
from tests.support.waiting import wait_until

__all__ = ["pg_database", "pg_dsn"]

Factory = Callable[..., Board]


@pytest.fixture(params=["sqlite", "postgres"])
def make_board(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    opened: list[Board] = []
    dsn = request.getfixturevalue("pg_dsn") if request.param == "postgres" else ""

    def make(**options: object) -> Board:
        board: Board
        if request.param == "sqlite":
            board = SQLiteBoard(tmp_path / "t.db", **options)  # type: ignore[arg-type]
        else:
            from taskservice.core.board.postgres.board import PostgresBoard

            board = PostgresBoard(dsn, **options)  # type: ignore[arg-type]
        opened.append(board)
        return board

    yield make
    for board in opened:
        board.close()


@pytest.fixture
def board(make_board: Factory) -> Board:
    return make_board()


@pytest.fixture
def limited_board(make_board: Factory) -> Board:
    return make_board(max_queue=3)


@pytest.fixture
def reopen(make_board: Factory) -> Callable[[Board], Board]:
    def again(board: Board) -> Board:
        board.close()
        return make_board()

    return again


def test_a_second_board_on_one_sqlite_file_is_refused_while_the_first_is_open(tmp_path: Path) -> None:
    from taskservice.core.board import StoreInUse

    first = SQLiteBoard(tmp_path / "t.db")
    try:
        with pytest.raises(StoreInUse, match=r"in use by another taskservice server \(pid \d+\)"):
            SQLiteBoard(tmp_path / "t.db")
        submit(first, [new("still-works")])
    finally:
        first.close()
    SQLiteBoard(tmp_path / "t.db").close()  # free again once the first closed


def test_a_file_an_older_server_wrote_keeps_its_dependents_waiting(tmp_path: Path) -> None:
    """Servers before the SQL lifecycle kept the waits in memory only: the board builds them from `after` when it
    opens the file, and a dependency that had failed revokes its dependents then."""
    older = SQLiteBoard(tmp_path / "t.db")
    submit(older, [new("doomed"), new("never", after=("doomed",)), new("first"), new("then", after=("first",))])
    (doomed,) = claim(older, 1)
    assert finish(older, doomed, ended(doomed, TaskState.FAILURE))
    wait_until(lambda: older.get("never").state is TaskState.REVOKED, what="its dependent revoked")  # type: ignore[union-attr]
    older.close()
    # What an older server left: no waits as rows, and (a crash between an end and its dependents' revocation) a
    # waiting task whose dependency failed.
    with contextlib.closing(sqlite3.connect(tmp_path / "t.db")) as conn, conn:
        conn.execute("UPDATE tasks SET state = 'PENDING', ended_at = NULL, error_type = NULL WHERE task_id = 'never'")
        conn.execute("UPDATE tasks SET waiting = 0")
        conn.execute("DELETE FROM waits")

    board = SQLiteBoard(tmp_path / "t.db")
    try:
        never = board.get("never")
        assert never is not None and never.state is TaskState.REVOKED and "doomed" in never.error.message  # type: ignore[union-attr]
        (first,) = claim(board, 10)  # "then" waits for it
        assert first.task_id == "first" and finish(board, first, ended(first, TaskState.SUCCESS))
        assert [c.task_id for c in claim(board, 10)] == ["then"]
    finally:
        board.close()
