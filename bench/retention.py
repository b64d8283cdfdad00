"""Retention under load: 500,000 no-op tasks through a server keeping ended tasks two seconds. The database file
and the rate must stay flat: deleted rows' pages are reused, and the sweeper's batches do not slow Submits.

The client submits in batches of 5,000 and waits, before the next batch, until the last task of the one before
has ended, so that the queue never holds more than about two batches: what the file holds is then what retention
leaves, not a backlog. Every 100,000 tasks it records the rate and the size of the file (with its WAL).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc

TASKS = 500_000
BATCH = 5_000
WINDOW = 100_000
RETENTION = "2s"
TERMINAL = {pb.TASK_STATE_SUCCESS, pb.TASK_STATE_FAILURE, pb.TASK_STATE_REVOKED, pb.TASK_STATE_TIMED_OUT,
            pb.TASK_STATE_LOST}  # fmt: skip
TIME_LIMIT_SECONDS = 400.0


def file_mib(db: Path) -> float:
    return sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal")) if p.exists()) / 2**20


def run_tasks(address: str, db: Path) -> list[dict[str, float]]:
    """Submit TASKS no-op tasks; per WINDOW: tasks/s and the file's size when it ended."""
    windows: list[dict[str, float]] = []
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.TaskServiceStub(channel)
        began = window_start = time.perf_counter()
        previous_last = ""
        for sent in range(0, TASKS, BATCH):
            answer = stub.SubmitBatch(
                pb.SubmitBatchRequest(requests=[pb.SubmitRequest(task_type="noop")] * BATCH), timeout=60
            )
            if previous_last:
                _wait_ended(stub, previous_last, began)
            previous_last = answer.results[-1].task.task_id
            if (sent + BATCH) % WINDOW == 0:
                now = time.perf_counter()
                windows.append({"tasks_per_s": WINDOW / (now - window_start), "file_mib": file_mib(db)})
                window_start = now
    return windows


def _wait_ended(stub: pb_grpc.TaskServiceStub, task_id: str, began: float) -> None:
    while stub.GetState(pb.GetStateRequest(task_id=task_id), timeout=30).task.state not in TERMINAL:
        if time.perf_counter() - began > TIME_LIMIT_SECONDS:
            raise RuntimeError("the retention bench ran out of time")
        time.sleep(0.005)


def stored(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM tasks").fetchone()[0])


def retention_scenario(tmp: Path, serve: Callable[..., Any]) -> dict[str, Any]:
    db = tmp / "retention.db"
    with serve(db, workers=2, extra_args=["--retention", RETENTION, "--max-queue", str(4 * BATCH)]) as server:
        server.start(timeout=60)
        windows = run_tasks(server.address, db)
    return {"windows": windows, "stored_at_end": stored(db)}
