from __future__ import annotations

from typing import Any

import pytest

from taskservice.core.context import TaskContext
from taskservice.core.errors import RegistryError
from taskservice.core.registry import TaskRegistry, default_registry


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
