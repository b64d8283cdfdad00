"""Pure conversion between protobuf messages and the client's plain objects (no server)."""

from __future__ import annotations

import ast
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import taskctl
from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2

from taskservice import client as c
from taskservice.client import convert, wire
from taskservice.v1 import task_service_pb2 as pb


def _ts(seconds: int, nanos: int = 0) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def test_timestamp_becomes_aware_utc_datetime() -> None:
    dt = wire.timestamp_to_datetime(_ts(1_700_000_000, 250_000_000))
    assert dt == datetime(2023, 11, 14, 22, 13, 20, 250_000, tzinfo=UTC)
    assert dt.utcoffset() is not None and dt.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


@pytest.mark.parametrize("seconds", [0.0, 0.25, 1.5, 30.0, 3600.0, 0.000000001])
def test_duration_round_trips_float_seconds(seconds: float) -> None:
    d = wire.seconds_to_duration(seconds)
    assert isinstance(d, duration_pb2.Duration)
    assert wire.duration_to_seconds(d) == pytest.approx(seconds, abs=1e-9)


def test_duration_splits_seconds_and_nanos() -> None:
    d = wire.seconds_to_duration(2.5)
    assert (d.seconds, d.nanos) == (2, 500_000_000)


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_duration_rejects_non_finite(bad: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        wire.seconds_to_duration(bad)


def test_struct_round_trip_and_integral_numbers_become_ints() -> None:
    data = {
        "steps": 10,
        "rate": 0.5,
        "name": "x",
        "flag": True,
        "none": None,
        "nested": {"xs": [1, 2.5, "a"]},
    }
    s = convert.dict_to_struct(data)
    # On the wire every number is a double, as the contract says.
    assert s.fields["steps"].number_value == 10.0
    back = convert.struct_to_dict(s)
    assert back == data
    assert type(back["steps"]) is int
    assert type(back["nested"]["xs"][0]) is int
    assert type(back["rate"]) is float


def test_dict_to_struct_of_none_is_empty() -> None:
    assert convert.dict_to_struct(None) == struct_pb2.Struct()
    assert convert.struct_to_dict(struct_pb2.Struct()) == {}


def test_value_unset_is_none_and_set_values_convert() -> None:
    assert convert.value_to_python(struct_pb2.Value()) is None
    assert convert.value_to_python(struct_pb2.Value(null_value=struct_pb2.NULL_VALUE)) is None
    assert convert.value_to_python(struct_pb2.Value(number_value=3.0)) == 3
    assert convert.value_to_python(struct_pb2.Value(number_value=3.5)) == 3.5
    assert convert.value_to_python(struct_pb2.Value(string_value="ok")) == "ok"
    assert convert.value_to_python(struct_pb2.Value(bool_value=False)) is False
    listed = struct_pb2.Value()
    listed.list_value.extend([1, "two"])
    assert convert.value_to_python(listed) == [1, "two"]


@pytest.mark.parametrize("state", list(c.TaskState))
def test_state_round_trip(state: c.TaskState) -> None:
    assert convert.state_from_pb(convert.state_to_pb(state)) is state


def test_state_from_unknown_numbers_is_unspecified() -> None:
    assert convert.state_from_pb(pb.TASK_STATE_UNSPECIFIED) is c.TaskState.UNSPECIFIED
    assert convert.state_from_pb(999) is c.TaskState.UNSPECIFIED


def test_state_to_pb_takes_names_in_any_case() -> None:
    assert convert.state_to_pb("running") == pb.TASK_STATE_RUNNING
    assert convert.state_to_pb("TIMED_OUT") == pb.TASK_STATE_TIMED_OUT
    with pytest.raises(ValueError):
        convert.state_to_pb("sleeping")


def test_terminal_states() -> None:
    terminal = {s for s in c.TaskState if s.is_terminal}
    assert terminal == {
        c.TaskState.SUCCESS,
        c.TaskState.FAILURE,
        c.TaskState.REVOKED,
        c.TaskState.TIMED_OUT,
        c.TaskState.LOST,
    }
    assert all(isinstance(s.value, str) and s.value == s.name for s in c.TaskState)


def _full_task() -> pb.Task:
    t = pb.Task(
        task_id="t-1",
        task_type="demo",
        state=pb.TASK_STATE_FAILURE,
        priority=3,
        labels={"team": "a"},
        attempt=1,
        error=pb.TaskError(type="RuntimeError", message="boom", traceback="Traceback ..."),
        progress=pb.Progress(percent=40.0, message="step 4/10", current=4, total=10, updated_at=_ts(20)),
        submitted_at=_ts(10),
        started_at=_ts(11),
        ended_at=_ts(21, 500_000_000),
    )
    t.args.update({"steps": 10, "fail_rate": 1})
    t.time_limit.FromSeconds(30)
    return t


def test_task_from_pb_full() -> None:
    task = convert.task_from_pb(_full_task())
    assert task == c.Task(
        task_id="t-1",
        task_type="demo",
        args={"steps": 10, "fail_rate": 1},
        state=c.TaskState.FAILURE,
        progress=c.Progress(40.0, "step 4/10", 4, 10, datetime.fromtimestamp(20, UTC)),
        result=None,
        error=c.TaskError("RuntimeError", "boom", "Traceback ..."),
        submitted_at=datetime.fromtimestamp(10, UTC),
        started_at=datetime.fromtimestamp(11, UTC),
        ended_at=datetime.fromtimestamp(21.5, UTC),
        time_limit=30.0,
        priority=3,
        labels={"team": "a"},
        attempt=1,
    )


def test_task_from_pb_unset_fields_are_none() -> None:
    task = convert.task_from_pb(pb.Task(task_id="t-2", task_type="sleep", state=pb.TASK_STATE_PENDING))
    assert task.state is c.TaskState.PENDING
    assert task.started_at is None and task.ended_at is None and task.submitted_at is None
    assert task.time_limit is None
    assert task.result is None
    assert task.error is None
    assert task.progress == c.Progress()
    assert task.args == {} and task.labels == {}


def test_task_result_value() -> None:
    t = pb.Task(task_id="t-3", state=pb.TASK_STATE_SUCCESS)
    t.result.struct_value.update({"steps": 10, "ok": True})
    assert convert.task_from_pb(t).result == {"steps": 10, "ok": True}
    t.result.Clear()
    t.result.number_value = 0.0
    # An explicitly set zero is a result, not "unset".
    assert convert.task_from_pb(t).result == 0


def test_event_from_pb_progress_only_and_state_change() -> None:
    progress_only = pb.WatchProgressResponse(
        task_id="t-1", sequence=7, state=pb.TASK_STATE_RUNNING, progress=pb.Progress(percent=50), time=_ts(5)
    )
    event = convert.event_from_pb(progress_only)
    assert event == c.TaskEvent(
        "t-1", 7, c.TaskState.RUNNING, c.Progress(percent=50.0), datetime.fromtimestamp(5, UTC), None
    )
    change = pb.WatchProgressResponse(task_id="t-1", sequence=8, state=pb.TASK_STATE_FAILURE, task=_full_task())
    event = convert.event_from_pb(change)
    assert event.task is not None and event.task.error == c.TaskError("RuntimeError", "boom", "Traceback ...")
    assert event.time is None


def test_page_from_pb() -> None:
    page = convert.page_from_pb(pb.ListTasksResponse(tasks=[_full_task(), pb.Task(task_id="t-0")], next_page_token="n"))
    assert [t.task_id for t in page.tasks] == ["t-1", "t-0"]
    assert page.next_page_token == "n"


def test_submit_request_fields() -> None:
    req = c.submit_request("demo", {"steps": 3}, task_id="my-id", time_limit=1.5, priority=2, labels={"k": "v"})
    assert req.task_type == "demo" and req.task_id == "my-id" and req.priority == 2
    assert dict(req.labels) == {"k": "v"}
    assert req.args.fields["steps"].number_value == 3.0
    assert (req.time_limit.seconds, req.time_limit.nanos) == (1, 500_000_000)


def test_submit_request_defaults_leave_optional_fields_unset() -> None:
    req = c.submit_request("sleep")
    assert req.task_id == ""
    assert not req.HasField("time_limit")
    assert len(req.args.fields) == 0 and len(req.labels) == 0


def test_list_request_filters() -> None:
    req = c.list_request(states=[c.TaskState.RUNNING, "pending"], task_type="demo", labels={"a": "b"}, page_size=5)
    assert list(req.states) == [pb.TASK_STATE_RUNNING, pb.TASK_STATE_PENDING]
    assert req.task_type == "demo" and dict(req.labels) == {"a": "b"} and req.page_size == 5


def test_resolve_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(c.ADDRESS_ENV, raising=False)
    assert c.resolve_address(None) == "127.0.0.1:50051"
    monkeypatch.setenv(c.ADDRESS_ENV, "example:1234")
    assert c.resolve_address(None) == "example:1234"
    assert c.resolve_address("other:1") == "other:1"


def test_channel_options() -> None:
    options = dict(c.CHANNEL_OPTIONS)
    assert options["grpc.keepalive_time_ms"] == 30_000
    assert options["grpc.keepalive_timeout_ms"] == 10_000
    assert options["grpc.keepalive_permit_without_calls"] == 1
    assert options["grpc.max_send_message_length"] == 16 * 1024 * 1024
    assert options["grpc.max_receive_message_length"] == 16 * 1024 * 1024


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _ours(names: set[str]) -> set[str]:
    """The names that are not the standard library."""
    return {n for n in names if n.split(".")[0] not in sys.stdlib_module_names}


def test_client_imports_only_grpc_and_the_generated_code() -> None:
    # opentelemetry: imported when installed, to send the caller's trace context.
    allowed = ("grpc", "google.protobuf", "google.rpc", "taskservice.v1", "opentelemetry", "taskservice.client",
               "taskservice.handles")  # fmt: skip
    modules = list(Path(c.__file__).parent.glob("*.py"))
    assert len(modules) > 5, "the check sees the package's modules"
    imported = set().union(*(_ours(_imported_modules(module)) for module in modules))
    assert imported, "the check sees imports"
    assert {n for n in imported if not n.startswith(allowed)} == set()


def test_taskctl_imports_only_the_client() -> None:
    package = Path(taskctl.__file__).parent
    imported = set().union(*(_imported_modules(p) for p in package.glob("*.py")))
    ours = {n for n in _ours(imported) if n.startswith("taskservice")}
    assert ours == {"taskservice.client"}


def test_importing_the_client_loads_neither_engine_nor_server() -> None:
    # A fresh interpreter: other tests may have imported the server already. The package itself
    # (taskservice/__init__.py) may load what task authors need; the client must add nothing of it.
    code = (
        "import sys, taskservice\n"
        "before = set(sys.modules)\n"
        "import taskservice.client\n"
        "added = [m for m in set(sys.modules) - before if m.startswith(('taskservice.core', 'taskservice.server'))]\n"
        "assert not added, added\n"
        "assert not [m for m in sys.modules if m.startswith('taskservice.server')]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_task_from_pb_says_what_a_pending_task_waits_for() -> None:
    held = pb.Task(task_id="t-4", state=pb.TASK_STATE_PENDING,
                   waiting_for=pb.WaitingFor(limit_ids=["per-customer"], task_ids=["dep"]))  # fmt: skip
    task = convert.task_from_pb(held)
    assert task.waiting_for_limits == ("per-customer",) and task.waiting_for_tasks == ("dep",)
    assert convert.task_from_pb(pb.Task(task_id="t-5")).waiting_for_limits == ()
