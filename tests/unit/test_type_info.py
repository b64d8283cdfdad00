"""What ListTaskTypes says of a handler's args: kinds, required, path roles, choices and checks."""

from __future__ import annotations

from typing import Annotated

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
        """Convert a video."""

    registry.register("video.convert", convert)
    info = describe(registry.require("video.convert"))
    assert info.description == "Convert a video." and info.accepts_extra_args
    assert info.args == (
        ArgInfo("source", "string", True, "input"),
        ArgInfo("target", "string", True, "output"),
        ArgInfo("codec", "string", False, choices=("h264", "av1")),
        ArgInfo("quality", "integer", False, rule="from 1 to 9"),
        ArgInfo("tag", "string", False, rule="1 to 20 characters or items"),
    )
