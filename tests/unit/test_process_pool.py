"""The pool of worker processes on its own: whatever happens, it keeps its size."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from taskservice.core.handlers import process_pool
from taskservice.core.handlers.process_pool import ProcessPool, Relay
from taskservice.core.model.models import TaskState
from tests.support import process_types

META = {"task_id": "t", "task_type": "x", "attempt": 1, "args": {}, "stop_grace": 5.0, "time_left": None,
        "min_free_bytes": 0, "data_root": None, "given": {}}  # fmt: skip


def relay() -> Relay:
    return Relay(lambda *progress: None, lambda data: None, lambda: False, 5.0)


@pytest.fixture
def pool() -> Iterator[ProcessPool]:
    made = ProcessPool(1)
    made.start()
    yield made
    made.close()


def test_a_process_that_could_not_be_started_is_started_by_the_next_call(
    pool: ProcessPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = process_pool._Slot
    failures = [OSError(24, "Too many open files")]

    def flaky_slot(context: Any) -> Any:
        if failures:
            raise failures.pop()
        return real(context)

    monkeypatch.setattr(process_pool, "_Slot", flaky_slot)
    died = pool.run(process_types.crash, {"how": "kill"}, META, relay())
    assert died.state is TaskState.FAILURE and died.error is not None and died.error.type == "WorkerProcessDied"
    assert pool.pids() == [], "its replacement could not be started"
    ran = pool.run(process_types.pid, {}, META, relay())
    assert ran.state is TaskState.SUCCESS and len(pool.pids()) == 1, "the next call started it"
