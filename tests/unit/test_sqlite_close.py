"""Closing the SQLite board while another thread reads: the close waits for the read to end before it closes the
connection (closing it under the read crashed the process), and a read after the close is a clear StoreUnavailable."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from taskservice.core.board import SQLiteBoard
from taskservice.core.model.errors import StoreUnavailable
from tests.support.waiting import wait_until


def test_a_close_waits_for_a_read_under_way_and_later_reads_are_refused(tmp_path: Path) -> None:
    board = SQLiteBoard(tmp_path / "t.db")
    reading, release = threading.Event(), threading.Event()
    answers: list[Any] = []

    def slow(cur: Any) -> int:
        reading.set()
        release.wait(10)
        cur.execute("SELECT count(*) FROM tasks")
        return int(cur.fetchone()[0])

    reader = threading.Thread(target=lambda: answers.append(board._read(slow)))
    reader.start()
    assert reading.wait(10)
    closer = threading.Thread(target=board.close)
    closer.start()
    wait_until(lambda: board._driver._closed, what="the close begun")  # type: ignore[attr-defined]
    assert closer.is_alive(), "the close waits while a read is under way"
    release.set()
    reader.join(10)
    closer.join(10)
    assert answers == [0] and not closer.is_alive()
    with pytest.raises(StoreUnavailable, match="closed"):
        board.get("any")
