"""@task handles (taskservice.handles), typed results decoded (client/results.py) and encoded (json_values.py)."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypedDict

import pytest

from taskservice import TaskContext
from taskservice.client import Task, TaskError, TaskFailed, TaskState
from taskservice.client.results import ResultTypeError, decode, outcome
from taskservice.core.handlers.json_values import as_json
from taskservice.core.handlers.registry import TaskRegistry
from taskservice.handles import TaskCall, TaskDef


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True)
class Size:
    width: int
    height: int


@dataclass(frozen=True)
class Photo:
    name: str
    size: Size
    colours: list[Colour]
    taken: datetime | None = None


class Summary(TypedDict):
    count: int
    sizes: list[Size]


def test_decode_builds_nested_dataclasses_enums_and_datetimes() -> None:
    value = {"name": "a", "size": {"width": 3, "height": 2.0}, "colours": ["red"], "taken": "2026-12-07T10:00:00+00:00"}
    photo = decode(value, Photo)
    assert photo == Photo("a", Size(3, 2), [Colour.RED], datetime(2026, 12, 7, 10, tzinfo=UTC))
    assert isinstance(photo.size.height, int)


def test_decode_fills_typed_dicts_unions_tuples_and_literals() -> None:
    assert decode({"count": 1, "sizes": [{"width": 1, "height": 1}]}, Summary) == {"count": 1, "sizes": [Size(1, 1)]}
    assert decode(None, Size | None) is None
    assert decode([1, "x"], tuple[int, str]) == (1, "x")
    assert decode([1, 2], tuple[int, ...]) == (1, 2)
    assert decode({"a": [1.0]}, dict[str, list[float]]) == {"a": [1.0]}
    assert decode("on", Literal["on", "off"]) == "on"
    assert decode({"anything": [1]}, Any) == {"anything": [1]}
    assert decode(3, float) == 3.0 and isinstance(decode(3, float), float)


@pytest.mark.parametrize(
    ("value", "annotation", "reason"),
    [
        ("3", int, "expected an integer"),
        (2.5, int, "expected an integer"),
        (True, int, "expected an integer"),
        (1, bool, "expected a boolean"),
        ([1], Size, "expected an object for Size"),
        ({"width": "wide", "height": 1}, Size, "expected an integer"),
        ([1, 2, 3], tuple[int, int], "expected 2 items"),
        ("green", Literal["on", "off"], "expected one of"),
        (1, None, "expected null"),
    ],
)
def test_decode_refuses_what_does_not_fit(value: Any, annotation: Any, reason: str) -> None:
    with pytest.raises(TypeError, match=reason):
        decode(value, annotation)


def test_outcome_raises_task_failed_or_result_type_error() -> None:
    failed = Task("t-1", "photos", state=TaskState.FAILURE, error=TaskError("ValueError", "bad", "Traceback ..."))
    with pytest.raises(TaskFailed) as info:
        outcome(failed, Size)
    assert (info.value.error_type, info.value.message, info.value.remote_traceback) == (
        "ValueError",
        "bad",
        "Traceback ...",
    )
    lost = Task("t-2", "photos", state=TaskState.LOST)
    with pytest.raises(TaskFailed, match="ended LOST: LOST"):
        outcome(lost, Size)
    with pytest.raises(ResultTypeError, match="t-3 does not fit Size"):
        outcome(Task("t-3", "photos", state=TaskState.SUCCESS, result=[1]), Size)


def test_as_json_writes_what_decode_reads_back() -> None:
    photo = Photo("a", Size(3, 2), [Colour.BLUE], datetime(2026, 1, 2, tzinfo=UTC))
    text = json.dumps(photo, default=as_json)
    assert json.loads(text)["size"] == {"width": 3, "height": 2}
    assert decode(json.loads(text), Photo) == photo
    for unportable in (object(), {1, 2}):
        with pytest.raises(TypeError, match="is not JSON serializable"):
            json.dumps(unportable, default=as_json)


def _resize(ctx: TaskContext, *, width: int, height: int = 0, **extra: Any) -> Size:
    return Size(width, height or width)


def test_a_handle_stays_the_handler_and_binds_args_by_name() -> None:
    registry = TaskRegistry()
    handle = registry.task("resize")(_resize)
    assert isinstance(handle, TaskDef) and handle.name == "resize" and handle.__name__ == "_resize"
    assert handle(None, width=4) == Size(4, 4)
    assert registry.require("resize").handler is _resize
    call = handle.bind(width=5, height=1, tint="red")
    assert call == TaskCall("resize", {"width": 5, "height": 1, "tint": "red"}, call.options, Size)
    assert call.options["priority"] == 0 and call.options["task_id"] is None
    with pytest.raises(TypeError, match="'resize': missing a required argument: 'width'"):
        handle.bind()


def test_with_options_copies_the_handle_and_keeps_what_is_not_given() -> None:
    handle = TaskDef("resize", _resize)
    urgent = handle.with_options(priority=9, labels={"team": "a"}).with_options(after=["t-1"])
    assert urgent.bind(width=1).options | {} == {**handle.bind(width=1).options, "priority": 9,
                                                  "labels": {"team": "a"}, "after": ("t-1",)}  # fmt: skip
    assert handle.options.priority == 0
    with pytest.raises(TypeError, match="list of task ids"):
        handle.with_options(after="t-1")


def test_a_handle_registered_again_registers_its_handler() -> None:
    handle = TaskDef("resize", _resize)
    assert TaskRegistry().register("resize", handle).handler is _resize  # type: ignore[arg-type]


class _Model:
    """Shaped as a pydantic model is, for the one method decode() calls (pydantic is not a dependency)."""

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    def model_validate(cls, value: Any) -> _Model:
        return cls(value["name"])


def test_decode_hands_a_pydantic_style_model_its_json() -> None:
    assert decode({"name": "x"}, _Model).name == "x"
    assert [m.name for m in decode([{"name": "a"}], list[_Model])] == ["a"]
