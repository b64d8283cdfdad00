"""Per-task logs: capped, with absolute offsets a reader can resume from."""

from __future__ import annotations

from pathlib import Path

from taskservice.core.logs import TaskLogs
from taskservice.core.paths import DataRoot
from tests.support.engine import wait_final
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
