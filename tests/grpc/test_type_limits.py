"""A task type's own limit, declared in code (`@task(max_running=..., rate=...)`): stored as the limit
"type:<name>" when the server starts, brought up to date when the code changes it, and obeyed like any limit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from taskservice.core.board import SQLiteBoard
from taskservice.core.engine.clock import SystemClock
from taskservice.core.engine.limits import LimitBook
from taskservice.core.handlers.context import TaskContext
from taskservice.core.handlers.registry import TaskRegistry
from taskservice.core.model.errors import RegistryError
from taskservice.core.model.limits import LimitSpec, Rate
from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc
from tests.grpc.helpers import eventually_holds, struct
from tests.support.task_types import Gates, make_registry


@pytest.fixture
def task_types(gates: Gates) -> Callable[[], TaskRegistry]:
    def registry() -> TaskRegistry:
        types = make_registry(gates)

        @types.task("capped", max_running=1, rate="50/s")
        def capped(ctx: TaskContext, *, name: str) -> str:
            gates.gate(name).wait(30)
            return name

        return types

    return registry


async def test_a_types_own_limit_is_stored_at_start_and_obeyed(stub: pb_grpc.TaskServiceStub, gates: Gates) -> None:
    limit = (await stub.GetLimit(pb.GetLimitRequest(limit_id="type:capped"))).limit
    assert limit.task_type == "capped" and limit.max_running == 1 and limit.rate.count == 50
    for name in ("one", "two"):
        await stub.Submit(pb.SubmitRequest(task_id=name, task_type="capped", args=struct(name=name)))

    async def one_runs() -> bool:
        return (await stub.GetState(pb.GetStateRequest(task_id="one"))).task.state == pb.TASK_STATE_RUNNING

    await eventually_holds(one_runs, 10.0, "the first running")
    await stub.Submit(pb.SubmitRequest(task_id="other", task_type="echo"))

    async def other_done() -> bool:
        return (await stub.GetState(pb.GetStateRequest(task_id="other"))).task.state == pb.TASK_STATE_SUCCESS

    await eventually_holds(other_done, 10.0, "a task of another type runs meanwhile")
    second = (await stub.GetState(pb.GetStateRequest(task_id="two"))).task
    assert second.state == pb.TASK_STATE_PENDING and list(second.waiting_for.limit_ids) == ["type:capped"]
    gates.open("one")

    async def two_runs() -> bool:
        return (await stub.GetState(pb.GetStateRequest(task_id="two"))).task.state == pb.TASK_STATE_RUNNING

    await eventually_holds(two_runs, 10.0, "the second once the first ended")


def test_declaring_a_types_limit_again_brings_the_stored_one_up_to_date(tmp_path: Path) -> None:
    board = SQLiteBoard(tmp_path / "t.db")
    try:
        book = LimitBook(board, SystemClock(), lambda: None)
        declared = LimitSpec("type:capped", task_type="capped", max_running=1, rate=Rate(50, 1.0))
        book.declare([declared])
        book.update(LimitSpec("type:capped", task_type="capped", max_running=7))  # an operator's change
        book.declare([declared])  # the next start
        assert book.get("type:capped").spec == declared, "the code says what a type's own limit is"
    finally:
        board.close()


@pytest.mark.parametrize(
    ("options", "why"), [({"max_running": -1}, "max_running"), ({"rate": "often"}, "COUNT/PERIOD")]
)
def test_a_declaration_no_limit_could_hold_is_refused_at_registration(options: dict[str, object], why: str) -> None:
    with pytest.raises(RegistryError, match=why):
        TaskRegistry().register("bad", lambda ctx: None, **options)  # type: ignore[arg-type]
