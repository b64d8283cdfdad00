"""The file task types in a real server process, through the Python client and taskctl."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskservice.client import InvalidArgument, TaskClient, TaskState
from tests.support.server import ServerProcess

pytestmark = pytest.mark.slow

DATA = os.urandom(3 * 1024 * 1024 + 99)
DIGEST = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    (data / "in").mkdir(parents=True)
    (data / "in" / "x.bin").write_bytes(DATA)
    return data


@pytest.fixture
def server(tmp_path: Path, data_dir: Path) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path / "t.db", extra_args=["--data-root", str(data_dir)]) as proc:
        proc.start()
        yield proc


def test_checksum_and_a_gzip_round_trip_through_the_client(server: ServerProcess, data_dir: Path) -> None:
    with TaskClient(server.address) as client:
        task_id = client.submit("file.checksum", {"input_fpath": "in/x.bin"}).task.task_id
        final = client.wait(task_id, timeout=30)
        assert final.state is TaskState.SUCCESS, final.error
        assert final.result == {"algorithm": "sha256", "digest": DIGEST, "bytes": len(DATA)}
        assert (final.progress.current, final.progress.total) == (len(DATA), len(DATA))

        with pytest.raises(InvalidArgument) as caught:
            client.submit("file.checksum", {"input_fpath": "in/x.bin", "algorithm": "sha1"})
        assert [field for field, _ in caught.value.field_violations] == ["args.algorithm"]

        for task_type, args in (
            ("file.compress", {"input_fpath": "in/x.bin", "output_fpath": "out/x.bin.gz", "level": 1}),
            ("file.decompress", {"input_fpath": "out/x.bin.gz", "output_fpath": "out/back.bin"}),
        ):
            final = client.wait(client.submit(task_type, args).task.task_id, timeout=30)
            assert final.state is TaskState.SUCCESS, final.error
    assert (data_dir / "out" / "back.bin").read_bytes() == DATA
    assert sorted(p.name for p in (data_dir / "out").iterdir()) == ["back.bin", "x.bin.gz"]


def test_taskctl_submit_watch_prints_the_digest(server: ServerProcess) -> None:
    submit = ["submit", "file.checksum", "--arg", "input_fpath=in/x.bin", "--watch"]
    result = subprocess.run(
        [sys.executable, "-m", "taskctl", "--server", server.address, *submit],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("TASKSERVICE_")},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert DIGEST in result.stdout, result.stdout
    assert "SUCCESS" in result.stdout


def test_min_free_space_keeps_a_copy_from_filling_the_disk(tmp_path: Path, data_dir: Path) -> None:
    """--min-free-space above what the disk has free: a copy fails with a message naming the flag, and no file
    is left; the server keeps serving."""
    stats = os.statvfs(data_dir)
    reserve_mib = (stats.f_bavail * stats.f_frsize) // 2**20 + 1024 * 1024
    args = ["--data-root", str(data_dir), "--min-free-space", f"{reserve_mib}MiB"]
    with ServerProcess(tmp_path / "t.db", extra_args=args) as server, TaskClient(server.start().address) as client:
        task_id = client.submit("file.copy", {"input_fpath": "in/x.bin", "output_fpath": "out/copy.bin"}).task.task_id
        final = client.wait(task_id, timeout=30)
        assert final.state is TaskState.FAILURE and final.error is not None
        assert final.error.type == "NotEnoughSpace" and "--min-free-space" in final.error.message
        assert not (data_dir / "out").exists() or list((data_dir / "out").iterdir()) == []
        assert client.wait(client.submit("file.checksum", {"input_fpath": "in/x.bin"}).task.task_id, timeout=30).result
