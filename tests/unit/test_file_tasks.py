"""file.checksum, file.copy, file.compress, file.decompress through the engine, on real files."""

from __future__ import annotations

import gzip
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskservice.core.board import SQLiteBoard
from taskservice.core.engine.manager import ManagerConfig, WorkerManager
from taskservice.core.handlers.context import TaskContext
from taskservice.core.handlers.logs import TaskLogs
from taskservice.core.handlers.paths import DataRoot
from taskservice.core.handlers.registry import TaskRegistry, default_registry
from taskservice.core.model.errors import InvalidRequest
from taskservice.core.model.events import Watcher
from taskservice.core.model.models import TaskEvent, TaskState
from taskservice.tasks import files
from taskservice.tasks.files import register_file_tasks
from tests.support.engine import stored, wait_final

MIB = 1024 * 1024
# Sparse: costs no disk, and takes seconds to hash or copy, so a stop surely lands mid-file.
HUGE_SPARSE_BYTES = 8 * 1024 * MIB


class EveryEvent(Watcher):
    """A watcher that also records every event pushed to it, before a slow reader's progress is coalesced (a
    loaded machine must not change what the test sees)."""

    def __init__(self) -> None:
        super().__init__()
        self.every: list[TaskEvent] = []

    def push(self, event: TaskEvent) -> None:
        if not self.every or event.sequence > self.every[-1].sequence:
            self.every.append(event)
        super().push(event)


class Harness:
    """A started manager whose registry holds the file types and a `hold` type that keeps the one worker busy."""

    def __init__(self, tmp_path: Path, min_free_bytes: int = 0) -> None:
        self.root = DataRoot(tmp_path / "data", min_free_bytes=min_free_bytes)
        (self.root.root / "in").mkdir()
        self.store = SQLiteBoard(tmp_path / "tasks.db")
        self.release = threading.Event()
        registry = TaskRegistry()
        register_file_tasks(registry)

        def hold(ctx: TaskContext) -> None:
            while not self.release.wait(0.005):
                ctx.check_stop()

        registry.register("hold", hold)
        self.manager = WorkerManager(
            self.store,
            registry,
            config=ManagerConfig(workers=1),
            data_root=self.root,
            logs=TaskLogs(tmp_path / "logs"),
        )
        self.manager.start()

    def write(self, name: str, data: bytes) -> Path:
        path = self.root.root / "in" / name
        path.write_bytes(data)
        return path

    def run(self, task_type: str, args: dict[str, Any], timeout: float = 10.0) -> Any:
        final = wait_final(self.manager, self.manager.submit(task_type, args).task.task_id, timeout)
        assert final.state is TaskState.SUCCESS, final.error
        return final.result

    def run_watched(self, task_type: str, args: dict[str, Any]) -> list[TaskEvent]:
        """Every event of a task from PENDING on: it waits behind `hold` until the watch is in place."""
        self.release.clear()
        self.manager.submit("hold", {})
        task_id = self.manager.submit(task_type, args).task.task_id
        watcher = EveryEvent()
        self.manager.watch(task_id, watcher)
        self.release.set()
        read: list[TaskEvent] = []
        deadline = time.monotonic() + 10
        while not (read and read[-1].is_terminal):
            event = watcher.get(timeout=max(0.0, deadline - time.monotonic()))
            assert event is not None, f"task {task_id} did not end within 10 s; events so far: {read}"
            read.append(event)
        self.manager.unwatch(task_id, watcher)
        events = watcher.every
        assert events[0].state is TaskState.PENDING, "the watch saw the task from before it ran"
        return events

    def outputs(self) -> list[str]:
        out = self.root.root / "out"
        return sorted(p.name for p in out.iterdir()) if out.exists() else []


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.release.set()
    h.manager.close()
    h.store.close()


def sample_data(size: int) -> bytes:
    """Half random, half repetitive (so gzip has something to do), not a multiple of the chunk size."""
    half = size // 2
    return os.urandom(half) + b"taskservice file tasks " * ((size - half) // 23 + 1)


def make_sparse(path: Path, size: int) -> Path:
    with path.open("wb") as out:
        os.truncate(out.fileno(), size)
    return path


def progress_of(events: list[TaskEvent]) -> list[tuple[int, int]]:
    return [(e.progress.current, e.progress.total) for e in events if not e.is_state_change]


@pytest.mark.parametrize("algorithm", ["sha256", "md5", "blake2b"])
def test_checksum_digests_equal_hashlib(harness: Harness, algorithm: str) -> None:
    data = sample_data(3 * MIB + 12345)
    harness.write("x.bin", data)
    result = harness.run("file.checksum", {"input_fpath": "in/x.bin", "algorithm": algorithm})
    expected = hashlib.new(algorithm, data).hexdigest()
    assert result == {"algorithm": algorithm, "digest": expected, "bytes": len(data)}


def test_checksum_defaults_to_sha256_and_handles_an_empty_file(harness: Harness) -> None:
    harness.write("empty.bin", b"")
    result = harness.run("file.checksum", {"input_fpath": "in/empty.bin"})
    assert result == {"algorithm": "sha256", "digest": hashlib.sha256(b"").hexdigest(), "bytes": 0}


def test_an_unknown_algorithm_or_gzip_level_is_refused_at_submit(harness: Harness) -> None:
    harness.write("x.bin", b"abc")
    with pytest.raises(InvalidRequest) as caught:
        harness.manager.submit("file.checksum", {"input_fpath": "in/x.bin", "algorithm": "crc32"})
    assert [field for field, _ in caught.value.field_violations] == ["args.algorithm"]
    assert "'sha256', 'md5', 'blake2b'" in caught.value.message
    for level in (0, 10):
        with pytest.raises(InvalidRequest) as caught:
            harness.manager.submit("file.compress", {"input_fpath": "in/x.bin", "output_fpath": "o.gz", "level": level})
        assert [field for field, _ in caught.value.field_violations] == ["args.level"]
    assert stored(harness.store) == 0


def test_copy_compress_decompress_round_trip_byte_for_byte(harness: Harness) -> None:
    data = sample_data(5 * MIB + 7)
    harness.write("x.bin", data)
    assert harness.run("file.copy", {"input_fpath": "in/x.bin", "output_fpath": "out/copy.bin"}) == {"bytes": len(data)}
    packed = harness.run("file.compress", {"input_fpath": "in/x.bin", "output_fpath": "out/x.bin.gz", "level": 9})
    gz = harness.root.root / "out" / "x.bin.gz"
    assert packed == {"bytes_in": len(data), "bytes_out": gz.stat().st_size}
    assert packed["bytes_out"] < len(data)
    assert gzip.decompress(gz.read_bytes()) == data, "a standard gzip reader reads it"
    unpacked = harness.run("file.decompress", {"input_fpath": "out/x.bin.gz", "output_fpath": "out/back.bin"})
    assert unpacked == {"bytes_in": gz.stat().st_size, "bytes_out": len(data)}
    assert (harness.root.root / "out" / "copy.bin").read_bytes() == data
    assert (harness.root.root / "out" / "back.bin").read_bytes() == data
    assert harness.outputs() == ["back.bin", "copy.bin", "x.bin.gz"], "no temporary files left"


def test_decompress_reads_what_gzip_wrote(harness: Harness) -> None:
    data = sample_data(2 * MIB)
    harness.write("std.gz", gzip.compress(data, compresslevel=1))
    harness.run("file.decompress", {"input_fpath": "in/std.gz", "output_fpath": "out/std.bin"})
    assert (harness.root.root / "out" / "std.bin").read_bytes() == data


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("plain.txt", b"just some text, not gzip at all\n" * 1000),
        ("cut.gz", gzip.compress(os.urandom(MIB))[: MIB // 2]),
        ("empty.gz", b""),
    ],
)
def test_decompress_of_something_not_gzip_fails_and_leaves_no_output(
    harness: Harness, name: str, content: bytes
) -> None:
    harness.write(name, content)
    task_id = harness.manager.submit("file.decompress", {"input_fpath": f"in/{name}", "output_fpath": "out/x"}).task
    final = wait_final(harness.manager, task_id.task_id)
    assert final.state is TaskState.FAILURE
    assert final.error is not None and final.error.type == "NotGzipError"
    assert f"{name} is" in final.error.message
    assert harness.outputs() == []


@pytest.mark.parametrize(
    ("task_type", "extra"),
    [("file.checksum", {}), ("file.copy", {"output_fpath": "out/c.bin"}), ("file.compress", {"output_fpath": "o.gz"})],
)
def test_progress_counts_input_bytes_and_ends_at_the_total(
    harness: Harness, task_type: str, extra: dict[str, str]
) -> None:
    data = sample_data(6 * MIB + 1)
    harness.write("x.bin", data)
    events = harness.run_watched(task_type, {"input_fpath": "in/x.bin", **extra})
    assert events[-1].state is TaskState.SUCCESS
    progress = progress_of(events)
    assert progress[0] == (0, len(data)), "the first report is 0 of the input's size"
    assert progress[-1] == (len(data), len(data))
    assert all(total == len(data) for _, total in progress)
    assert [c for c, _ in progress] == sorted(c for c, _ in progress)
    final = events[-1].task
    assert final is not None
    assert (final.progress.current, final.progress.total, final.progress.percent) == (len(data), len(data), 100.0)
    assert final.progress.message == f"{len(data) / MIB:.1f} of {len(data) / MIB:.1f} MiB"


def test_decompress_stops_at_max_bytes_out_and_leaves_no_output(harness: Harness) -> None:
    """A gzip bomb: 16 KiB that unpack to 16 MiB of zeros."""
    bomb = gzip.compress(bytes(16 * MIB), compresslevel=9)
    assert len(bomb) < 32 * 1024
    harness.write("bomb.gz", bomb)
    args = {"input_fpath": "in/bomb.gz", "output_fpath": "out/bomb"}
    refused = wait_final(
        harness.manager, harness.manager.submit("file.decompress", {**args, "max_bytes_out": MIB}).task.task_id
    )
    assert refused.state is TaskState.FAILURE and refused.error is not None
    assert refused.error.type == "OutputTooLarge"
    assert "the output would grow past max_bytes_out (1048576 bytes)" in refused.error.message
    assert harness.outputs() == [], "neither the output nor its temporary file is left"
    # Exactly as many bytes as allowed is fine.
    assert harness.run("file.decompress", {**args, "max_bytes_out": 16 * MIB}) == {
        "bytes_in": len(bomb),
        "bytes_out": 16 * MIB,
    }
    assert harness.outputs() == ["bomb"]


@pytest.mark.parametrize("limit", [0, -5])
def test_max_bytes_out_below_one_is_refused_at_submit(harness: Harness, limit: int) -> None:
    harness.write("x.gz", gzip.compress(b"x"))
    with pytest.raises(InvalidRequest) as refused:
        harness.manager.submit(
            "file.decompress", {"input_fpath": "in/x.gz", "output_fpath": "out/x", "max_bytes_out": limit}
        )
    assert refused.value.field_violations == [("args.max_bytes_out", f"must be at least 1, got {limit}")]


@pytest.mark.parametrize(
    ("task_type", "input_name", "content"),
    [
        ("file.copy", "x.bin", b"y" * (2 * MIB)),
        ("file.compress", "x.bin", b"y" * (2 * MIB)),
        ("file.decompress", "x.gz", gzip.compress(b"y" * (2 * MIB))),
    ],
)
def test_file_outputs_stop_before_the_free_space_reserve_and_leave_nothing(
    tmp_path: Path, task_type: str, input_name: str, content: bytes
) -> None:
    """A reserve above what the disk has free: no output may be written at all (the server's --min-free-space)."""
    stats = os.statvfs(tmp_path)
    reserve = stats.f_bavail * stats.f_frsize + 2**40
    harness = Harness(tmp_path, min_free_bytes=reserve)
    try:
        harness.write(input_name, content)
        task_id = harness.manager.submit(task_type, {"input_fpath": f"in/{input_name}", "output_fpath": "out/o"}).task
        final = wait_final(harness.manager, task_id.task_id)
        assert final.state is TaskState.FAILURE and final.error is not None
        assert final.error.type == "NotEnoughSpace"
        assert "stopped writing the output: " in final.error.message and "--min-free-space" in final.error.message
        assert harness.outputs() == []
    finally:
        harness.manager.close()
        harness.store.close()


def test_decompress_progress_counts_compressed_input_bytes(harness: Harness) -> None:
    packed = gzip.compress(sample_data(4 * MIB), compresslevel=1)
    harness.write("x.gz", packed)
    events = harness.run_watched("file.decompress", {"input_fpath": "in/x.gz", "output_fpath": "out/x"})
    assert progress_of(events)[0] == (0, len(packed))
    assert progress_of(events)[-1] == (len(packed), len(packed))


class RecordingContext(TaskContext):
    def __init__(self) -> None:
        self.reports: list[tuple[int | None, int | None]] = []
        self.stop_checks = 0
        super().__init__(
            task_id="t",
            task_type="file.checksum",
            attempt=1,
            args={},
            stop_event=threading.Event(),
            report=lambda percent, message, current, total: self.reports.append((current, total)),
            deadline=None,
        )

    def check_stop(self) -> None:
        self.stop_checks += 1
        super().check_stop()


def test_progress_is_throttled_to_one_report_per_chunk_and_about_twenty_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunks = 64
    path = make_sparse(tmp_path / "sparse.bin", chunks * files.CHUNK_BYTES)
    monkeypatch.setattr(files, "PROGRESS_INTERVAL", 0.0)
    every_chunk = RecordingContext()
    files.checksum(every_chunk, input_fpath=str(path))
    assert len(every_chunk.reports) == chunks + 2, "start, once per chunk, and the end"

    monkeypatch.setattr(files, "PROGRESS_INTERVAL", 0.05)
    throttled = RecordingContext()
    started = time.monotonic()
    files.checksum(throttled, input_fpath=str(path))
    elapsed = time.monotonic() - started
    assert len(throttled.reports) <= 2 + int(elapsed / 0.05) + 1
    assert len(throttled.reports) + throttled.stop_checks >= chunks, "a stop is checked on every chunk"


def watch_until_moving(harness: Harness, task_id: str) -> Watcher:
    """Return once the task reported progress past its first chunk."""
    watcher = Watcher()
    harness.manager.watch(task_id, watcher)
    deadline = time.monotonic() + 10
    while True:
        event = watcher.get(timeout=max(0.0, deadline - time.monotonic()))
        assert event is not None, "no progress within 10 s"
        assert not event.is_terminal, f"ended {event.state} before it was stopped"
        if not event.is_state_change and event.progress.current > 0:
            return watcher


@pytest.mark.parametrize(
    ("task_type", "extra"), [("file.checksum", {}), ("file.copy", {"output_fpath": "out/copy.bin"})]
)
def test_a_stop_mid_file_ends_revoked_quickly_and_leaves_no_output(
    harness: Harness, task_type: str, extra: dict[str, str]
) -> None:
    make_sparse(harness.root.root / "in" / "huge.bin", HUGE_SPARSE_BYTES)
    task_id = harness.manager.submit(task_type, {"input_fpath": "in/huge.bin", **extra}).task.task_id
    watcher = watch_until_moving(harness, task_id)
    stopped = time.monotonic()
    harness.manager.stop(task_id)
    final = wait_final(harness.manager, task_id, timeout=5)
    took = time.monotonic() - stopped
    harness.manager.unwatch(task_id, watcher)
    assert final.state is TaskState.REVOKED
    assert took < 1.0, f"REVOKED {took:.2f} s after the stop"
    assert final.progress.current < HUGE_SPARSE_BYTES
    assert harness.outputs() == [], "no output and no .part file"


def test_a_path_escaping_the_data_root_is_refused(harness: Harness, tmp_path: Path) -> None:
    harness.write("x.bin", b"abc")
    with pytest.raises(InvalidRequest) as caught:
        harness.manager.submit("file.copy", {"input_fpath": "in/x.bin", "output_fpath": "../stolen.bin"})
    assert [field for field, _ in caught.value.field_violations] == ["args.output_fpath"]
    assert not (tmp_path / "stolen.bin").exists()


def test_the_file_types_are_in_the_default_registry_with_descriptions() -> None:
    import taskservice.tasks  # noqa: F401  (registers the built-in types)

    for name in ("file.checksum", "file.copy", "file.compress", "file.decompress"):
        task_type = default_registry.get(name)
        assert task_type is not None and task_type.description
        assert not task_type.rerun_on_restart
