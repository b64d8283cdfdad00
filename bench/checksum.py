"""file.checksum (sha256) of a 1 GiB file through the engine, beside `sha256sum` on the same file.

python -m bench.checksum   ->  prints {"taskservice_mib_s": ..., "sha256sum_mib_s": ..., "ratio": ...}

Both read the file from a warm page cache (one read first), each is timed best of 3, interleaved so that
both see the same machine. The engine run goes through a real WorkerManager: submit to the terminal
event, progress reporting included.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from taskservice.core.board.sqlite.board import SQLiteBoard
from taskservice.core.engine.manager import WorkerManager
from taskservice.core.handlers.paths import DataRoot
from taskservice.core.handlers.registry import TaskRegistry
from taskservice.core.model.models import TaskState
from taskservice.tasks.files import register_file_tasks
from tests.support.engine import wait_final

FILE_BYTES = 1024 * 1024 * 1024
BLOCK_BYTES = 4 * 1024 * 1024
RUNS = 3
MIB = 1024 * 1024


def make_file(path: Path, size: int = FILE_BYTES) -> None:
    """`size` bytes of a few MiB of random data, repeated (hashing speed does not depend on the content)."""
    block = os.urandom(BLOCK_BYTES)
    with path.open("wb") as out:
        for _ in range(size // BLOCK_BYTES):
            out.write(block)
        out.write(block[: size % BLOCK_BYTES])


def warm_up(path: Path) -> None:
    """Read the whole file once so that every timed run reads from the page cache."""
    buffer = bytearray(BLOCK_BYTES)
    with path.open("rb", buffering=0) as source:
        while source.readinto(buffer):
            pass


def time_sha256sum(path: Path) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True)
    return time.perf_counter() - started, result.stdout.split()[0]


def time_engine(manager: WorkerManager, path: Path, timeout: float = 120.0) -> tuple[float, str]:
    """Seconds from Submit to the terminal event of one file.checksum task."""
    started = time.perf_counter()
    task_id = manager.submit("file.checksum", {"input_fpath": str(path)}).task.task_id
    final = wait_final(manager, task_id, timeout)
    elapsed = time.perf_counter() - started
    if final.state is not TaskState.SUCCESS:
        raise RuntimeError(f"file.checksum ended {final.state}: {final.error}")
    return elapsed, final.result["digest"]


def checksum_scenario(tmp_dir: Path) -> dict[str, Any]:
    """MiB/s of file.checksum through the engine and of sha256sum, best of 3 each, on a 1 GiB file."""
    path = Path(tmp_dir) / "checksum-1gib.bin"
    registry = TaskRegistry()
    register_file_tasks(registry)
    store = SQLiteBoard(Path(tmp_dir) / "checksum-tasks.db")
    manager = WorkerManager(store, registry, data_root=DataRoot(tmp_dir))
    manager.start()
    try:
        make_file(path)
        warm_up(path)
        ours, theirs = [], []
        for _ in range(RUNS):
            seconds, baseline_digest = time_sha256sum(path)
            theirs.append(seconds)
            seconds, digest = time_engine(manager, path)
            ours.append(seconds)
            if digest != baseline_digest:
                raise RuntimeError(f"digests differ: file.checksum {digest}, sha256sum {baseline_digest}")
    finally:
        manager.close()
        store.close()
        path.unlink(missing_ok=True)
    size_mib = FILE_BYTES / MIB
    taskservice_mib_s = size_mib / min(ours)
    sha256sum_mib_s = size_mib / min(theirs)
    return {
        "taskservice_mib_s": taskservice_mib_s,
        "sha256sum_mib_s": sha256sum_mib_s,
        "ratio": taskservice_mib_s / sha256sum_mib_s,
    }


if __name__ == "__main__":
    tmp = Path(tempfile.mkdtemp(prefix="taskservice-bench-checksum-"))
    try:
        print(json.dumps(checksum_scenario(tmp)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
