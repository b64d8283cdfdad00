"""Limits across three servers (real processes) on one PostgreSQL database: a cap holds at every moment, through
a server killed while it runs tasks of the group (they count until they are reaped); a rate spaces starts."""

from __future__ import annotations

import re
import threading
import time

import pytest

from taskservice.client import TaskClient, TaskState, submit_request
from tests.e2e.test_cluster import nodes
from tests.support.postgres import pg_database, pg_dsn
from tests.support.server import ServerProcess
from tests.support.waiting import wait_until

__all__ = ["nodes", "pg_database", "pg_dsn"]

pytestmark = pytest.mark.slow

ENDED = {TaskState.SUCCESS, TaskState.LOST, TaskState.FAILURE, TaskState.REVOKED, TaskState.TIMED_OUT}


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The most intervals that overlap at one moment."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


class RunningSampler:
    """Counts the group's RUNNING and STOPPING tasks in the database every 10 ms (ListTasks reads one snapshot)."""

    def __init__(self, address: str) -> None:
        self.most = 0
        self.samples = 0
        self._stop = threading.Event()
        self._client = TaskClient(address)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RunningSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._client.close()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            page = self._client.list(states=["RUNNING", "STOPPING"], labels={"customer": "a"}, page_size=1000)
            self.most = max(self.most, len(page.tasks))
            self.samples += 1


def running_on(server: ServerProcess, client: TaskClient) -> bool:
    """Whether `server` runs a task of the group now: one its log says it started that is RUNNING still."""
    started = set(re.findall(r"task (capped-\d+) \(demo\) PENDING -> RUNNING", server.log()))
    return any(t.task_id in started for t in client.list(states=["RUNNING"]).tasks)


def test_max_running_holds_across_three_servers_and_a_server_killed_mid_run(nodes: list[ServerProcess]) -> None:
    first, second, third = nodes
    with TaskClient(first.address, timeout=30) as client:
        client.create_limit("per-customer", key_label="customer", max_running=3)
        task_ids = [f"capped-{i}" for i in range(200)]
        client.submit_batch(
            submit_request("demo", {"steps": 4, "step_seconds": 0.02}, task_id=task_id, labels={"customer": "a"})
            for task_id in task_ids
        )
        with RunningSampler(third.address) as sampler:
            wait_until(lambda: running_on(second, client), what="the second server running one of the group")
            second.kill()  # that task counts until it is reaped
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                tasks = {t.task_id: t for t in client.iter_tasks(labels={"customer": "a"})}
                if all(tasks[t].state in ENDED for t in task_ids):
                    break
                time.sleep(0.2)
        assert sampler.samples > 50 and sampler.most <= 3, (sampler.samples, sampler.most)
        ended = [tasks[t] for t in task_ids]
        assert all(t.state in ENDED for t in ended), "every task ends"
        assert sum(t.state is TaskState.SUCCESS for t in ended) >= 190, [t.state for t in ended]
        spans = [(t.started_at.timestamp(), t.ended_at.timestamp()) for t in ended if t.started_at and t.ended_at]
        assert len(spans) >= 190 and most_at_once(spans) <= 3
        assert any(t.state is TaskState.LOST for t in ended), "the killed server's task ended LOST, once reaped"


def test_a_rate_spaces_starts_across_three_servers(nodes: list[ServerProcess]) -> None:
    first, _, third = nodes
    with TaskClient(first.address, timeout=30) as client, TaskClient(third.address, timeout=30) as other:
        client.create_limit("paced", key_label="customer", rate="20/s")
        task_ids = [f"paced-{i}" for i in range(200)]
        began = time.time()
        client.submit_batch(submit_request("sleep", {"seconds": 0}, task_id=task_id, labels={"customer": "p"})
                            for task_id in task_ids)  # fmt: skip
        wait_until(lambda: all(t.state is TaskState.SUCCESS for t in other.iter_tasks(labels={"customer": "p"})),
                   timeout=60, what="every paced task done")  # fmt: skip
        done = time.time() - began
        tasks = list(other.iter_tasks(labels={"customer": "p"}))
    starts = sorted(t.started_at.timestamp() for t in tasks if t.started_at is not None)
    assert len(starts) == 200
    early = [i for i, start in enumerate(starts) if start - starts[0] < i / 20 - 1e-6]
    assert not early, f"started before the bucket allowed: {early[:5]}"
    assert 9.9 <= done <= 11.0, done
