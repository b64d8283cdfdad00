"""The group-commit writer while its database fails (a fake session: what it is asked to run, and a switch that
makes every transaction fail as a lost connection does): a caller who waits is told at once until the next try,
and the server's own patient writes wait for that try rather than failing unseen."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from taskservice.core.board.sql import writer as writer_module
from taskservice.core.board.sql.writer import GroupWriter
from taskservice.core.model.errors import StoreUnavailable

# Long enough that nothing a test does right after a refusal falls after the next try, even on a busy machine.
RETRY_SECONDS = 2.0
WAIT = 10.0


class Lost(Exception):
    """The database went away."""


class FakeSession:
    lost_errors: tuple[type[BaseException], ...] = (Lost,)
    op_errors: tuple[type[BaseException], ...] = (ValueError,)

    def __init__(self) -> None:
        self.down = threading.Event()
        self.tried: list[str] = []  # each op's name, as each transaction was attempted

    def transaction(self, ops: list[Any], hints: list[str]) -> list[Any]:
        self.tried.extend(op(None) for op in ops)
        if self.down.is_set():
            raise Lost("disk is full")
        return [f"{name} done" for name in (op(None) for op in ops)]

    def reset(self) -> None:
        pass

    def close(self) -> None:
        pass


class Told:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def __call__(self, result: Any, error: BaseException | None) -> None:
        self.result, self.error = result, error
        self.done.set()

    def wait(self) -> Told:
        assert self.done.wait(WAIT), "never told"
        return self


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> FakeSession:
    monkeypatch.setattr(writer_module, "RECONNECT_SECONDS", RETRY_SECONDS)
    return FakeSession()


@pytest.fixture
def writer(session: FakeSession) -> Iterator[GroupWriter]:
    made = GroupWriter(session, name="test-writer")
    yield made
    made.close()


def _op(name: str) -> Any:
    return lambda cursor: name


def _fail_once(writer: GroupWriter, session: FakeSession) -> None:
    """The database refuses a transaction: the writer waits RETRY_SECONDS before it tries again."""
    session.down.set()
    first = Told()
    writer.submit(_op("first"), first)
    assert isinstance(first.wait().error, StoreUnavailable) and "disk is full" in str(first.error)
    assert not writer.healthy


def test_a_waiting_caller_is_told_at_once_and_a_patient_write_is_tried_at_the_next_try(
    writer: GroupWriter, session: FakeSession
) -> None:
    _fail_once(writer, session)
    submit, end = Told(), Told()
    writer.submit(_op("submit"), submit)
    writer.submit(_op("end"), end, patient=True)
    # The Submit hears at once, with the reason, and was not tried; the end waits for the next try.
    assert "failed a moment ago" in str(submit.wait().error) and "disk is full" in str(submit.error)
    assert "submit" not in session.tried and not end.done.is_set()
    # That try reaches the database, which refuses it: the end's caller hears of a refusal that happened.
    assert isinstance(end.wait().error, StoreUnavailable) and "disk is full" in str(end.error)
    assert session.tried.count("end") == 1


def test_a_patient_write_made_while_the_database_was_away_commits_once_it_is_back(
    writer: GroupWriter, session: FakeSession
) -> None:
    _fail_once(writer, session)
    end = Told()
    writer.submit(_op("end"), end, patient=True)
    session.down.clear()
    assert end.wait().error is None and end.result == "end done"
    assert writer.healthy


def test_close_tells_the_patient_writes_still_waiting(session: FakeSession, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module, "RECONNECT_SECONDS", WAIT)  # the next try would come after the test
    writer = GroupWriter(session, name="test-writer")
    _fail_once(writer, session)
    end = Told()
    writer.submit(_op("end"), end, patient=True)
    writer.close()
    assert isinstance(end.wait().error, StoreUnavailable) and "closed" in str(end.error)
    assert "end" not in session.tried
