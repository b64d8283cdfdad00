"""The HTTP face's JSON writer (server/http/fast_json.py) writes what json_format writes, for every message of the
contract: empty, fully set, and with any JSON in a task's args and result."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from hypothesis import given
from hypothesis import strategies as st

from taskservice.server.http.fast_json import message_to_dict
from taskservice.v1 import task_service_pb2 as pb


def json_format_dict(message: Message) -> Any:
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def same(message: Message) -> None:
    ours, theirs = message_to_dict(message), json_format_dict(message)
    assert ours == theirs
    assert list(ours) == list(theirs), "the same keys in the same order"


@pytest.mark.parametrize("name", sorted(pb.DESCRIPTOR.message_types_by_name))
def test_every_message_of_the_contract_empty(name: str) -> None:
    same(getattr(pb, name)())


def full_task() -> pb.Task:
    task = pb.Task(
        task_id="t-1", task_type="demo", state=pb.TASK_STATE_RUNNING, priority=-3, attempt=2,
        labels={"a": "b", "c": ""}, after=["x", "y"], parent_id="p", detached=True,
        progress=pb.Progress(percent=33.5, message="a third", current=2**40, total=3, updated_at={"seconds": 5}),
        error=pb.TaskError(type="ValueError", message="bad", traceback="line 1"),
        waiting_for=pb.WaitingFor(limit_ids=["l"], task_ids=["x"]),
    )  # fmt: skip
    task.args.update({"n": 1, "f": 1.5, "s": "é", "nested": {"list": [1, None, True, {"k": []}]}, "none": None})
    task.result.list_value.values.add().string_value = "r"
    for stamp, nanos in ((task.submitted_at, 0), (task.started_at, 123_000_000), (task.ended_at, 123_456_789)):
        stamp.seconds, stamp.nanos = 1_796_000_000, nanos
    task.scheduled_at.seconds = 1_796_000_100
    task.time_limit.seconds, task.time_limit.nanos = 90, 500_000_000
    task.retention.seconds = 0
    return task


def test_a_task_with_every_field_set_and_the_responses_that_carry_tasks() -> None:
    task = full_task()
    same(task)
    same(pb.ListTasksResponse(tasks=[task, pb.Task(task_id="empty")], next_page_token="tok"))
    same(pb.WatchProgressResponse(task_id="t", sequence=2**63, state=pb.TASK_STATE_SUCCESS, task=task,
                                  progress=task.progress, time=task.ended_at))  # fmt: skip
    same(pb.WatchProgressResponse(task_id="t", sequence=7, progress=pb.Progress(percent=float("nan"))))
    same(pb.WatchLogsResponse(task_id="t", offset=5, data=b"\x00\xffbytes"))
    same(pb.Task(state=99))  # a state this build does not know: its number
    same(pb.Limit(limit_id="l", weights={"gold": 2.5, "inf": float("inf"), "-inf": float("-inf")}, max_running=3))
    schedule = pb.Schedule(
        schedule_id="s",
        cron=pb.CronSchedule(expression="* * * * *", time_zone="UTC"),
        task=pb.SubmitRequest(task_type="x"),
    )
    same(pb.ListSchedulesResponse(schedules=[schedule, pb.Schedule(schedule_id="i", interval={"seconds": 60})]))
    arg = pb.TaskArg(name="n", kind="int", choices=[{"number_value": 1}, {"string_value": "x"}])
    arg.default_value.null_value = 0
    same(pb.ListTaskTypesResponse(task_types=[pb.TaskType(name="t", args=[arg])]))
    same(pb.GetStatsResponse(counts=[pb.TaskCount(task_type="t", state=pb.TASK_STATE_FAILURE, count=-1)]))


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@given(args=st.dictionaries(st.text(max_size=6), json_values, max_size=5), result=json_values)
def test_any_args_and_result(args: dict[str, Any], result: Any) -> None:
    task = pb.Task(task_id="t")
    task.args.update(args)
    json_format.ParseDict(result, task.result)
    same(task)
