"""OpenTelemetry traces against a real server process exporting to a real OTLP receiver (tests/support/otlp.py):
one trace holds the caller's span, the Submit, each attempt's queued and run spans and the handler's own spans,
across a retry, a restart of the server between Submit and run, a worker process and a command."""

from __future__ import annotations

import json
import secrets
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from taskservice.client import TaskClient, TaskState
from tests.support.otlp import OtlpReceiver, ReceivedSpan
from tests.support.server import ServerProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

SERVER_KIND, CONSUMER_KIND = 2, 5
ERROR_STATUS = 2
COMMANDS = f"""
[commands.act]
argv = {json.dumps([sys.executable, str(Path(__file__).parents[1] / "support" / "commands" / "act.py"), "{program}"])}
[commands.act.args]
program = {{ type = "string" }}
"""
# The caller's own spans: a tracer of this test's, exporting nowhere (only its ids matter).
CALLER = TracerProvider().get_tracer("tests.caller")


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


@pytest.fixture
def server(tmp_path: Path, receiver: OtlpReceiver) -> Iterator[ServerProcess]:
    """A server tracing to `receiver`, with the task types of tests/support/traced_tasks.py."""
    args = ["--tasks", "tests.support.traced_tasks"]
    with ServerProcess(tmp_path / "t.db", extra_args=args, env=receiver.environment()) as server:
        yield server.start()


def _hex(number: int, width: int) -> str:
    return format(number, f"0{width}x")


def _named(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return sorted((s for s in spans if s.name == name), key=lambda s: s.attributes.get("taskservice.task.attempt", 0))


def test_one_trace_holds_the_callers_span_the_submit_both_attempts_and_the_handlers_spans(
    server: ServerProcess, receiver: OtlpReceiver
) -> None:
    with TaskClient(server.address) as client:
        with CALLER.start_as_current_span("caller") as caller:
            task_id = client.submit("traced.flaky").task.task_id
        final = client.wait(task_id, timeout=30)
    assert final.state is TaskState.SUCCESS and final.attempt == 2, f"{final}\n{server.log_tail()}"
    trace_id = _hex(caller.get_span_context().trace_id, 32)

    def complete(spans: list[ReceivedSpan]) -> bool:
        return len(_named(spans, "handler work")) == 2 and len(_named(spans, "run traced.flaky")) == 2

    spans = receiver.wait_for(complete, trace_id=trace_id, what="both attempts' spans")
    [submit] = _named(spans, "taskservice.v1.TaskService/Submit")
    assert submit.parent_id == _hex(caller.get_span_context().span_id, 16), "the Submit continues the caller's span"
    assert submit.kind == SERVER_KIND and submit.attributes["rpc.system"] == "grpc"
    assert submit.attributes["rpc.method"] == "Submit" and submit.attributes["rpc.grpc.status_code"] == 0
    assert submit.service == "taskservice-under-test"

    first, second = _named(spans, "run traced.flaky")
    for attempt, run in enumerate((first, second), start=1):
        assert run.parent_id == submit.span_id and run.kind == CONSUMER_KIND
        assert run.attributes["messaging.message.id"] == task_id and run.attributes["messaging.system"] == "taskservice"
        assert run.attributes["taskservice.task.attempt"] == attempt
        assert run.attributes["messaging.destination.name"] == "traced.flaky"
    assert first.attributes["taskservice.task.state"] == "FAILURE" and first.status_code == ERROR_STATUS
    assert first.attributes["error.type"] == "FirstRunFails"
    assert second.attributes["taskservice.task.state"] == "SUCCESS" and second.status_code != ERROR_STATUS
    assert first.end_ns <= second.start_ns

    queued = _named(spans, "queued traced.flaky")
    assert queued and all(q.parent_id == submit.span_id for q in queued)
    assert queued[0].end_ns <= first.start_ns + 50_000_000, "queued ends as the first run starts"
    handler_parents = sorted(s.parent_id for s in _named(spans, "handler work"))
    assert handler_parents == sorted([first.span_id, second.span_id]), "each handler span nests under its run"
    # The handler saw its run's context: the last attempt's.
    assert final.result["traceparent"].startswith(f"00-{trace_id}-{second.span_id}-")


def test_a_task_submitted_over_http_joins_its_callers_trace_after_a_restart_in_a_worker_process(
    server: ServerProcess, receiver: OtlpReceiver
) -> None:
    # Submitted to run 3 s later, and the server stopped at once: the next server runs it.
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    request = urllib.request.Request(
        f"{server.http_url}/v1/tasks",
        data=json.dumps({"taskType": "traced.in_process", "delay": "3s"}).encode(),
        headers={"Content-Type": "application/json", "traceparent": f"00-{trace_id}-{parent}-01"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        task_id = json.load(response)["task"]["taskId"]
    assert server.terminate() == 0
    server.start()
    with TaskClient(server.address) as client:
        final = client.wait(task_id, timeout=30)
    assert final.state is TaskState.SUCCESS, f"{final}\n{server.log_tail()}"
    spans = receiver.wait_for(
        lambda spans: _named(spans, "handler work"), trace_id=trace_id, what="the worker process's span"
    )
    [http] = _named(spans, "POST /v1/tasks")
    assert http.parent_id == parent and http.kind == SERVER_KIND
    assert http.attributes["http.route"] == "/v1/tasks" and http.attributes["http.response.status_code"] == 200
    [run] = _named(spans, "run traced.in_process")
    assert run.parent_id == http.span_id, "the run, on the next server, continues the stored context"
    [work] = _named(spans, "handler work")
    assert work.parent_id == run.span_id, "the worker process's span nests under the run"
    assert final.result["traceparent"].startswith(f"00-{trace_id}-{run.span_id}-")


def test_a_command_gets_its_runs_context_as_traceparent(tmp_path: Path, receiver: OtlpReceiver) -> None:
    (tmp_path / "commands.toml").write_text(COMMANDS)
    args = ["--commands", str(tmp_path / "commands.toml"), "--data-root", str(tmp_path)]
    with ServerProcess(tmp_path / "t.db", extra_args=args, env=receiver.environment()) as server:
        server.start()
        with TaskClient(server.address) as client:
            with CALLER.start_as_current_span("caller") as caller:
                task_id = client.submit("command", {"name": "act", "program": "env=TRACEPARENT"}).task.task_id
            assert client.wait(task_id, timeout=30).state is TaskState.SUCCESS
            log = b"".join(chunk.data for chunk in client.logs(task_id)).decode()
        trace_id = _hex(caller.get_span_context().trace_id, 32)
        spans = receiver.wait_for(lambda spans: _named(spans, "run command"), trace_id=trace_id, what="the run")
    [run] = _named(spans, "run command")
    assert f"TRACEPARENT=00-{trace_id}-{run.span_id}-" in log


def test_taskctl_sends_the_traceparent_of_its_environment(tmp_path: Path, receiver: OtlpReceiver) -> None:
    import subprocess

    with ServerProcess(tmp_path / "t.db", env=receiver.environment()) as server:
        server.start()
        trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
        shown = subprocess.run(
            [sys.executable, "-m", "taskctl", "--server", server.address, "submit", "sleep", "--arg", "seconds=0"],
            env={"PATH": "/usr/bin:/bin", "TRACEPARENT": f"00-{trace_id}-{parent}-01"},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        spans = receiver.wait_for(lambda spans: _named(spans, "run sleep"), trace_id=trace_id, what="the run")
    [submit] = _named(spans, "taskservice.v1.TaskService/Submit")
    assert submit.parent_id == parent


def test_the_metrics_go_out_through_opentelemetry_too(tmp_path: Path, receiver: OtlpReceiver) -> None:
    """No --metrics-listen: the OTLP endpoint alone turns the export on; the numbers are the Prometheus ones."""
    with ServerProcess(tmp_path / "t.db", env=receiver.environment()) as server:
        server.start()
        with TaskClient(server.address) as client:
            task_id = client.submit("sleep", {"seconds": 0}).task.task_id
            assert client.wait(task_id, timeout=30).state is TaskState.SUCCESS
        wait_until(
            lambda: receiver.metric("taskservice_tasks_total", task_type="sleep", state="SUCCESS") == 1,
            timeout=30, what="the SUCCESS counted through OTLP",
        )  # fmt: skip
        wait_until(lambda: receiver.metric("taskservice_task_wait_seconds_count", task_type="sleep") == 1,
                   timeout=30, what="the wait histogram's count")  # fmt: skip
        assert (receiver.metric("taskservice_workers") or 0) >= 1, "the engine gauges too"
