"""Log formats: JSON lines carry the transition log's fields; the text format is the one the server always had."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from taskservice.core.handlers.logs import TaskLogs
from taskservice.core.model.models import TaskState
from taskservice.server.logformat import TEXT_FORMAT, JsonFormatter, configure_logging
from tests.support.engine import wait_final
from tests.support.task_types import Gates
from tests.support.waiting import wait_until
from tests.unit.conftest import MakeManager


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Put the root logger's handlers and level back after a test that configures logging."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def transitions(stream: io.StringIO, task_id: str) -> list[dict[str, Any]]:
    return [e for e in json_lines(stream) if e["logger"] == "taskservice.tasks" and e.get("task_id") == task_id]


def wait_transitions(stream: io.StringIO, task_id: str, count: int) -> list[dict[str, Any]]:
    """The transition lines of a task, once there are `count` (the last one may be logged after the event)."""
    return wait_until(
        lambda: lines if len(lines := transitions(stream, task_id)) == count else [],
        what=f"{count} transition lines of task {task_id}",
    )


@pytest.mark.usefixtures("root_logging")
def test_json_one_line_per_transition_with_the_task_fields(make_manager: MakeManager) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    manager = make_manager()
    before = datetime.now(UTC).replace(microsecond=0)
    task_id = manager.submit("echo", {"value": 1}).task.task_id
    assert wait_final(manager, task_id).state is TaskState.SUCCESS
    lines = wait_transitions(stream, task_id, 3)
    after = datetime.now(UTC)

    assert [(e["previous_state"], e["state"]) for e in lines] == [
        (None, "PENDING"),
        ("PENDING", "RUNNING"),
        ("RUNNING", "SUCCESS"),
    ]
    for entry in lines:
        assert entry["task_id"] == task_id and entry["task_type"] == "echo"
        assert entry["level"] == "INFO"
        assert task_id in entry["message"] and "echo" in entry["message"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"]), entry["time"]
        assert before <= datetime.fromisoformat(entry["time"]) <= after, entry["time"]
        assert {"attempt", "error_type"} <= entry.keys()
    assert lines[-1]["attempt"] == 1 and lines[-1]["error_type"] is None
    # Every line of the stream is one JSON object (json_lines would have raised otherwise).
    assert stream.getvalue().endswith("\n")


@pytest.mark.usefixtures("root_logging")
def test_json_failure_carries_the_error_type(make_manager: MakeManager) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    manager = make_manager()
    task_id = manager.submit("fail", {"message": "nope"}).task.task_id
    wait_final(manager, task_id)
    lines = wait_transitions(stream, task_id, 3)
    assert (lines[-1]["state"], lines[-1]["error_type"]) == ("FAILURE", "ValueError")
    assert lines[-1]["message"] == f"task {task_id} (fail) RUNNING -> FAILURE (ValueError: nope)"


@pytest.mark.usefixtures("root_logging")
def test_text_format_is_unchanged(make_manager: MakeManager) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "text", stream=stream)
    manager = make_manager()
    before = datetime.now().replace(microsecond=0)  # local time, as the text format writes it
    task_id = manager.submit("echo", {"value": 1}).task.task_id
    wait_final(manager, task_id)
    line = wait_until(
        lambda: next((ln for ln in stream.getvalue().splitlines() if "-> SUCCESS" in ln and task_id in ln), None),
        what="the SUCCESS line",
    )
    after = datetime.now()
    pattern = (
        r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) INFO taskservice\.tasks: task (\S+) \(echo\) RUNNING -> SUCCESS"
    )
    assert line is not None
    match = re.fullmatch(pattern, line)
    assert match and match.group(3) == task_id, line
    logged = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").replace(microsecond=int(match.group(2)) * 1000)
    assert before <= logged <= after, line
    assert TEXT_FORMAT == "%(asctime)s %(levelname)s %(name)s: %(message)s"


@pytest.mark.usefixtures("root_logging")
def test_a_stop_reason_with_line_breaks_cannot_forge_lines_of_the_text_log(
    make_manager: MakeManager, gates: Gates, tmp_path: Path
) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "text", stream=stream)
    logs = TaskLogs(tmp_path / "logs")
    manager = make_manager(logs=logs)
    forged = "2026-01-01 00:00:00,000 ERROR taskservice.tasks: task admin (backup) RUNNING -> SUCCESS"
    task_id = manager.submit("gate", {"name": "g"}).task.task_id
    wait_until(lambda: manager.get(task_id).state is TaskState.RUNNING, what="running")
    manager.stop(task_id, reason=f"bye\n{forged}\r\u2028{forged}")
    assert wait_final(manager, task_id).state is TaskState.REVOKED
    manager.retry_async(task_id, reason=f"again\n{forged}").result(timeout=10)
    line = wait_until(lambda: next((ln for ln in stream.getvalue().splitlines() if "-> REVOKED" in ln), None),
                      what="the REVOKED line")  # fmt: skip
    assert "bye\\n2026-01-01" in line and "\\u2028" in line, line
    assert not any(ln.startswith("2026-01-01 00:00:00,000") for ln in stream.getvalue().splitlines())
    gates.open("g")
    task_log = logs.read(task_id, 0).data
    assert task_log.count(b"\n") == 1 and b"again\\n2026" in task_log, task_log


@pytest.mark.usefixtures("root_logging")
def test_a_traceback_keeps_its_lines_in_the_text_log() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "text", stream=stream)
    try:
        raise ValueError("deep")
    except ValueError:
        logging.getLogger("taskservice.test").exception("it failed:\nsecond")
    logging.getLogger().handlers[-1].flush()
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("it failed:\\nsecond") and lines[1] == "Traceback (most recent call last):"


@pytest.mark.usefixtures("root_logging")
def test_configure_again_replaces_its_own_handler_only_and_sets_the_level() -> None:
    root = logging.getLogger()
    others = list(root.handlers)
    first, second = io.StringIO(), io.StringIO()
    configure_logging("DEBUG", "text", stream=first)
    assert root.level == logging.DEBUG
    configure_logging("warning", "json", stream=second)
    assert root.level == logging.WARNING
    assert len([h for h in root.handlers if h not in others]) == 1
    logging.getLogger("taskservice.test").warning("hello %s", "there")
    logging.getLogger("taskservice.test").info("not shown")
    flush_root_handlers()
    assert first.getvalue() == ""
    assert [e["message"] for e in json_lines(second)] == ["hello there"]
    configure_logging("NOT_A_LEVEL", "text", stream=second)
    assert root.level == logging.INFO
    with pytest.raises(ValueError, match="log format"):
        configure_logging("INFO", "xml")


def test_json_formatter_exceptions_odd_extras_and_clashing_names() -> None:
    logger = logging.getLogger("taskservice.formatter-test")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise RuntimeError("kaput\nsecond line")
        except RuntimeError:
            logger.exception("failed %s", "badly", extra={"path": Path("/tmp/x"), "level": "mine", "n": 3})
        logger.warning("plain", stack_info=True)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    failed, plain = json_lines(stream)
    assert failed["message"] == "failed badly" and failed["level"] == "ERROR"
    assert failed["logger"] == "taskservice.formatter-test"
    assert failed["path"] == "/tmp/x" and failed["n"] == 3
    assert failed["extra.level"] == "mine"
    assert failed["exc_info"].startswith("Traceback") and "RuntimeError: kaput" in failed["exc_info"]
    assert "exc_info" not in plain and "Stack (most recent call last)" in plain["stack_info"]
    assert len(stream.getvalue().splitlines()) == 2, "a multi-line exception stays on one line"


def flush_root_handlers() -> None:
    """Wait until the lines logged so far are written (the server's handler writes from a thread of its own)."""
    for handler in logging.getLogger().handlers:
        handler.flush()


@pytest.mark.usefixtures("root_logging")
def test_lines_are_written_in_order_by_the_background_writer_and_flush_waits_for_them() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "text", stream=stream)
    logger = logging.getLogger("taskservice.order-test")
    values = list(range(3000))
    for value in values:
        logger.info("line %d", value)
    flush_root_handlers()
    written = [int(line.rsplit(" ", 1)[1]) for line in stream.getvalue().splitlines() if "order-test" in line]
    assert written == values


@pytest.mark.usefixtures("root_logging")
def test_the_message_is_made_when_logged_not_when_written() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "text", stream=stream)
    changing = ["before"]
    logging.getLogger("taskservice.args-test").info("value %s", changing)
    changing[0] = "after"
    flush_root_handlers()
    assert "value ['before']" in stream.getvalue()


def test_a_repeating_fault_line_is_written_at_most_once_per_interval_with_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from taskservice.core.engine.throttle import ThrottledLog

    now = [100.0]
    throttled = ThrottledLog(logging.getLogger("test.throttle"), interval=5.0, clock=lambda: now[0])
    with caplog.at_level(logging.ERROR, logger="test.throttle"):
        for second in range(12):
            now[0] = 100.0 + second
            throttled.log("cannot write: %s", "disk full")
    assert [r.getMessage() for r in caplog.records] == [
        "cannot write: disk full",
        "cannot write: disk full (and 4 more like it in the last 5 s)",
        "cannot write: disk full (and 4 more like it in the last 5 s)",
    ]
