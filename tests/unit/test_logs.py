"""Per-task logs: capped, with absolute offsets a reader can resume from."""

from __future__ import annotations

from pathlib import Path

from taskservice.core.handlers.logs import TaskLogs
from taskservice.core.handlers.paths import DataRoot
from taskservice.core.model.models import TaskState
from tests.support.engine import wait_final
from tests.support.task_types import Gates
from tests.unit.conftest import MakeManager


def read_all(logs: TaskLogs, task_id: str, offset: int = 0) -> tuple[bytes, int]:
    data = b""
    while True:
        chunk = logs.read(task_id, offset, max_bytes=1000)
        if not chunk.data:
            return data, offset
        data += chunk.data
        offset = chunk.offset + len(chunk.data)


def test_appends_read_back_from_any_offset(tmp_path: Path) -> None:
    logs = TaskLogs(tmp_path)
    logs.append("t", b"one\n")
    logs.append("t", b"two\n")
    assert read_all(logs, "t") == (b"one\ntwo\n", 8)
    assert read_all(logs, "t", 4) == (b"two\n", 8)
    assert logs.read("unknown", 0).data == b"" and logs.end("unknown") == 0


def test_past_the_cap_the_oldest_lines_go_with_a_marker_and_offsets_stay_absolute(tmp_path: Path) -> None:
    logs = TaskLogs(tmp_path, max_bytes=1000)
    lines = [f"line {i:04d}\n".encode() for i in range(300)]  # 10 bytes each: 3,000 bytes in all
    for line in lines:
        logs.append("t", line)
    assert logs.end("t") == 3000, "the end offset counts every byte ever written"
    data, end = read_all(logs, "t")
    assert data.startswith(b"[taskservice: ") and b"older log bytes dropped]\n" in data
    kept = data.split(b"dropped]\n", 1)[1]
    assert kept.endswith(b"line 0299\n") and len(data) <= 1000, "the file stays within its cap"
    assert end == logs.end("t")
    # A reader that had everything up to offset 2,990 gets exactly the last line.
    assert read_all(logs, "t", 2990) == (b"line 0299\n", end)
    # A reader far behind resumes at the marker, never at a byte twice.
    first = logs.read("t", 10, max_bytes=50)
    assert first.offset > 10 and first.data.startswith(b"[taskservice: ")


def test_handlers_write_their_log_with_ctx_log(make_manager: MakeManager, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.txt").write_text("x")
    logs = TaskLogs(tmp_path / "logs")
    manager = make_manager(data_root=DataRoot(tmp_path / "data"), logs=logs)
    task_id = manager.submit("read_input", {"input_fpath": "in.txt"}).task.task_id
    wait_final(manager, task_id)
    assert read_all(logs, task_id)[0] == b"reading in.txt\n"


def test_lines_that_would_eat_the_reserve_are_dropped_then_marked_once_there_is_room(tmp_path: Path) -> None:
    logs = TaskLogs(tmp_path, min_free_bytes=2**62)  # more than any disk has: nothing fits
    logs.append("t", b"first\n")
    logs.append("t", b"second\n")
    assert read_all(logs, "t") == (b"", 0), "nothing written into the reserve"
    logs.min_free_bytes = 0  # space came back
    logs.append("t", b"third\n")
    data, _ = read_all(logs, "t")
    assert data.startswith(b"[taskservice: 13 log bytes dropped: less than the ")
    assert b"(--min-free-space)" in data and data.endswith(b"]\nthird\n")


def test_a_log_that_cannot_be_written_never_raises_and_is_marked_at_the_end(tmp_path: Path) -> None:
    logs = TaskLogs(tmp_path)
    (tmp_path / "t.log").mkdir()  # in the way of the log file
    logs.append("t", b"lost line\n")
    (tmp_path / "t.log").rmdir()
    logs.finish("t")
    data, _ = read_all(logs, "t")
    assert data.startswith(b"[taskservice: 10 log bytes dropped: the log could not be written")


def test_a_task_whose_log_cannot_be_written_is_not_failed_for_it(
    make_manager: MakeManager, tmp_path: Path, gates: Gates
) -> None:
    logs = TaskLogs(tmp_path / "logs")
    (tmp_path / "logs" / "blocked.log").mkdir()  # in the way of the task's log file
    manager = make_manager(logs=logs)
    gates.open("go")
    manager.submit("chatty", {"name": "go", "lines": 4}, task_id="blocked")
    final = wait_final(manager, "blocked")
    assert final.state is TaskState.SUCCESS and final.result == 4


def test_past_the_folder_cap_the_oldest_finished_logs_go_first_and_live_ones_stay(tmp_path: Path) -> None:
    import os

    logs = TaskLogs(tmp_path, max_total_bytes=10_000)
    logs.protect(lambda task_id: task_id == "live")
    logs.append("live", b"x" * 3000)
    os.utime(tmp_path / "live.log", (1, 1))  # the oldest of all, but still running
    for index in range(3):
        logs.append(f"done-{index}", b"y" * 2000)
        os.utime(tmp_path / f"done-{index}.log", (10 + index, 10 + index))
    assert len(list(tmp_path.iterdir())) == 4, "9,000 bytes: under the cap, nothing removed"
    logs.append("new", b"z" * 2000)  # 11,000 bytes in all: over the cap of 10,000
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["done-2.log", "live.log", "new.log"], "oldest finished first, down to 80% of the cap"
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) <= 8000
    assert read_all(logs, "done-0") == (b"", 0)
