"""The board contract (contract.py) run against every board this project ships: in memory, SQLite, PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from taskservice.core.board import Board, MemoryBoard, SQLiteBoard
from taskservice.core.board.sqlite.board import SharedSQLiteBoard
from tests.board.contract import *  # noqa: F403 - the contract's tests run here
from tests.board.contract import new, submit
from tests.support.postgres import pg_database, pg_dsn

__all__ = ["pg_database", "pg_dsn"]

Factory = Callable[..., Board]


@pytest.fixture(params=["memory", "sqlite", "sqlite-sql", "postgres"])
def make_board(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    opened: list[Board] = []
    memory = MemoryBoard().memory
    dsn = request.getfixturevalue("pg_dsn") if request.param == "postgres" else ""

    def make(**options: object) -> Board:
        board: Board
        if request.param == "memory":
            board = MemoryBoard(memory, **options)  # type: ignore[arg-type]
        elif request.param == "sqlite":
            board = SQLiteBoard(tmp_path / "t.db", **options)  # type: ignore[arg-type]
        elif request.param == "sqlite-sql":
            board = SharedSQLiteBoard(tmp_path / "t.db", **options)  # type: ignore[arg-type]
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
