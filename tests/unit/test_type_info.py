"""What ListTaskTypes says of a handler's args: kinds, required, path roles, choices and checks."""

from __future__ import annotations

from typing import Annotated, Any

from taskservice import Length, OneOf, Range, TaskContext
from taskservice.core.handlers.paths import InputFile, OutputFile
from taskservice.core.handlers.registry import TaskRegistry
from taskservice.core.handlers.type_info import ArgInfo, describe


def test_args_are_described_from_the_signature() -> None:
    registry = TaskRegistry()

    def convert(
        ctx: TaskContext,
        *,
        source: InputFile,
        target: OutputFile,
        codec: Annotated[str, OneOf("h264", "av1")] = "av1",
        quality: Annotated[int, Range(1, 9)] = 5,
        tag: Annotated[str, Length(1, 20)] | None = None,
        **extra: object,
    ) -> None:
        """Convert a video.

        Args:
            source: The video to convert.
            quality: 1 (smallest) to 9 (best).
        """

    registry.register("video.convert", convert)
    info = describe(registry.require("video.convert"))
    assert info.description == "Convert a video." and info.accepts_extra_args
    assert info.args == (
        ArgInfo("source", "string", True, "input", description="The video to convert."),
        ArgInfo("target", "string", True, "output"),
        ArgInfo("codec", "string", False, choices=("h264", "av1"), default="av1", has_default=True),
        ArgInfo(
            "quality",
            "integer",
            False,
            rule="from 1 to 9",
            default=5,
            has_default=True,
            description="1 (smallest) to 9 (best).",
        ),
        ArgInfo("tag", "string", False, rule="1 to 20 characters or items", default=None, has_default=True),
    )


SENTINEL = object()


def test_a_default_json_cannot_carry_is_left_unsaid() -> None:
    registry = TaskRegistry()

    def odd(ctx: TaskContext, *, when: Any = SENTINEL, pair: Any = (1, 2), size: int = 3) -> None:
        """Odd defaults: an object, and a tuple JSON would turn into a list."""

    registry.register("odd", odd)
    assert [(arg.name, arg.has_default) for arg in describe(registry.require("odd")).args] == [
        ("when", False),
        ("pair", False),
        ("size", True),
    ]
