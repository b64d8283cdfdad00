"""taskservice.testing's eager mode: a handler run inline, its args and result treated as a server treats them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import pytest

from taskservice import Range, StopTask, TaskContext
from taskservice.core.handlers.children import ChildSubmitError
from taskservice.core.handlers.registry import TaskRegistry
from taskservice.core.model.errors import InvalidRequest
from taskservice.testing import EagerContext, run_eagerly

registry = TaskRegistry()


@dataclass(frozen=True)
class Counted:
    words: int
    steps: int


@registry.task("eager.count")
def count_words(ctx: TaskContext, *, text: str, steps: Annotated[int, Range(1, 10)] = 2) -> Counted:
    for step in range(steps):
        ctx.progress(current=step + 1, total=steps, message=f"step {step + 1}")
    ctx.log(f"counted {ctx.args['text']!r}")
    return Counted(len(text.split()), steps)


@registry.task("eager.unportable")
def unportable(ctx: TaskContext) -> object:
    return object()


def test_run_eagerly_returns_the_result_as_a_run_would() -> None:
    assert run_eagerly(count_words, text="a b c") == Counted(3, 2)


def test_the_context_records_progress_and_log_lines() -> None:
    ctx = EagerContext()
    assert ctx.run(count_words, text="one two", steps=3) == Counted(2, 3)
    assert [(p.current, p.total, p.message) for p in ctx.record.progress] == [(1, 3, "step 1"), (2, 3, "step 2"),
                                                                              (3, 3, "step 3")]  # fmt: skip
    assert ctx.record.log == ["counted 'one two'"]
    assert ctx.task_type == "eager.count" and ctx.args == {"text": "one two", "steps": 3}


def test_args_are_checked_as_submit_checks_them() -> None:
    with pytest.raises(InvalidRequest) as refused:
        run_eagerly(count_words, text="a", steps=11)
    assert refused.value.field_violations[0][0] == "args.steps"
    with pytest.raises(InvalidRequest, match="args do not fit"):
        run_eagerly(count_words, text=3)  # type: ignore[arg-type]


def test_a_stop_raises_stop_task_at_the_next_progress() -> None:
    ctx = EagerContext()
    ctx.request_stop()
    with pytest.raises(StopTask):
        ctx.run(count_words, text="a")
    assert len(ctx.record.progress) == 1


def test_a_result_no_server_could_store_fails_here_too() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        run_eagerly(unportable)


@registry.task("eager.square")
def square(ctx: TaskContext, *, n: int) -> int:
    if n < 0:
        raise ValueError(f"no square of {n}")
    return n * n


@registry.task("eager.fan_out")
def fan_out(ctx: TaskContext, *, numbers: list[int]) -> list[object]:
    ids = [ctx.submit(square.bind(n=n)) for n in numbers]
    ids.append(ctx.submit("eager.square", {"n": numbers[0]}, key="again"))
    return [c.result if c.succeeded else c.error_type for c in ctx.wait(ids)]


def test_children_run_inline_and_the_parent_waits_for_them() -> None:
    ctx = EagerContext(task_id="p", registry=registry)
    assert ctx.run(fan_out, numbers=[2, -1]) == [4, "ValueError", 4]
    assert list(ctx.record.children) == ["p.1", "p.2", "p.again"]
    assert ctx.record.children["p.2"].error_message == "no square of -1"


def test_a_child_of_an_unknown_type_is_refused_as_the_server_refuses_it() -> None:
    ctx = EagerContext(registry=registry)
    with pytest.raises(ChildSubmitError, match="unknown task type 'nope'"):
        ctx.submit("nope", {})
