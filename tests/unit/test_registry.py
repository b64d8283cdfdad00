from __future__ import annotations

from typing import Annotated, Any

import pytest

from taskservice import Length, OneOf, Range
from taskservice.core.handlers.context import TaskContext
from taskservice.core.handlers.registry import TaskRegistry, default_registry
from taskservice.core.model.errors import InvalidRequest, RegistryError


def handler(ctx: TaskContext, *, n: int = 1) -> int:
    return n


def test_duplicate_names_fail_at_registration_naming_both_handlers() -> None:
    registry = TaskRegistry()
    registry.register("job", handler)
    with pytest.raises(RegistryError, match="registered twice"):
        registry.register("job", handler)


def test_handler_must_take_the_context_first() -> None:
    def no_ctx(*, n: int) -> int:
        return n

    with pytest.raises(RegistryError, match="TaskContext"):
        TaskRegistry().register("bad", no_ctx)


def test_handler_parameters_must_be_json_types() -> None:
    def takes_object(ctx: TaskContext, *, when: object) -> None: ...

    with pytest.raises(RegistryError, match="when"):
        TaskRegistry().register("bad", takes_object)


def test_var_positional_is_refused_and_var_keyword_accepts_any_arg() -> None:
    def star(ctx: TaskContext, *items: int) -> None: ...

    def kwargs(ctx: TaskContext, **rest: Any) -> None: ...

    with pytest.raises(RegistryError):
        TaskRegistry().register("star", star)
    kind = TaskRegistry().register("kw", kwargs)
    assert kind.validate_args({"anything": [1, "x"]}) == {"anything": [1, "x"]}


def test_built_in_task_types_are_registered_and_not_rerun_after_a_crash() -> None:
    import taskservice.tasks  # noqa: F401 - registers demo and sleep

    for name in ("demo", "sleep"):
        kind = default_registry.get(name)
        assert kind is not None and not kind.rerun_on_restart


def test_constraints_in_a_signature_are_checked_at_submit_naming_the_arg() -> None:
    def handler(
        ctx: object,
        *,
        seconds: Annotated[float, Range(0, 60)],
        count: Annotated[int, Range(1)] | None = None,
        mode: Annotated[str, OneOf("fast", "slow")] = "fast",
        name: Annotated[str, Length(1, 8)] = "x",
    ) -> None: ...

    kind = TaskRegistry().register("constrained", handler)
    assert kind.validate_args({"seconds": 60, "count": 3, "mode": "slow", "name": "abc"})["seconds"] == 60.0
    assert kind.validate_args({"seconds": 0, "count": None})["count"] is None
    for args, field, reason in (
        ({"seconds": -0.5}, "args.seconds", "must be from 0 to 60, got -0.5"),
        ({"seconds": 1e300}, "args.seconds", "must be from 0 to 60"),
        ({"seconds": 1, "count": 0}, "args.count", "must be at least 1, got 0"),
        ({"seconds": 1, "mode": "warp"}, "args.mode", "must be one of 'fast', 'slow', got 'warp'"),
        ({"seconds": 1, "name": ""}, "args.name", "at least 1 and at most 8"),
    ):
        with pytest.raises(InvalidRequest) as caught:
            kind.validate_args(args)
        assert caught.value.field_violations[0][0] == field
        assert reason in caught.value.field_violations[0][1]


def test_a_constraint_that_does_not_fit_its_type_or_its_own_default_fails_registration() -> None:
    def wrong_type(ctx: object, *, name: Annotated[str, Range(0, 1)]) -> None: ...

    def wrong_default(ctx: object, *, level: Annotated[int, Range(1, 9)] = 0) -> None: ...

    with pytest.raises(RegistryError, match="does not fit"):
        TaskRegistry().register("a", wrong_type)
    with pytest.raises(RegistryError, match="default of 'level' does not fit"):
        TaskRegistry().register("b", wrong_default)
    with pytest.raises(ValueError, match="min is above max"):
        Range(2, 1)
