"""The metrics an SRE looks for, scraped from a real server process: HTTP calls beside RPCs, the wait from Submit to
start, the oldest task that could start, what limits hold back, schedule firings, and the server's and its worker
processes' CPU, memory and descriptors."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from taskservice.client import TaskClient, TaskState
from tests.grpc.test_metrics import Samples, dump, parse, value
from tests.support.server import ServerProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


class Scraped:
    def __init__(self, server: ServerProcess, port_file: Path) -> None:
        self.server = server
        self.port_file = port_file

    def scrape(self) -> Samples:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.port_file.read_text().strip()}/metrics", timeout=10
        ) as got:
            return parse(got.read().decode())

    def until(self, holds: Callable[[Samples], bool], what: str, timeout: float = 20) -> Samples:
        last: list[Samples] = [{}]

        def check() -> bool:
            last[0] = self.scrape()
            return holds(last[0])

        try:
            wait_until(check, timeout=timeout, interval=0.1, what=what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{dump(last[0])}\n{self.server.log_tail()}") from None
        return last[0]


def _serve(tmp_path: Path, *args: str, workers: int = 1) -> Iterator[Scraped]:
    port_file = tmp_path / "metrics-port"
    extra = ["--metrics-listen", "127.0.0.1:0", "--metrics-port-file", str(port_file), *args]
    with ServerProcess(tmp_path / "t.db", workers=workers, extra_args=extra) as server:
        server.start()
        yield Scraped(server, port_file)


@pytest.fixture
def one_worker(tmp_path: Path) -> Iterator[Scraped]:
    """One worker, handlers in one worker process: a second task waits, runnable, for the first."""
    yield from _serve(tmp_path, "--isolation", "process", "--process-workers", "1")


def test_the_oldest_runnable_task_the_wait_to_start_and_the_processes(one_worker: Scraped) -> None:
    with TaskClient(one_worker.server.address) as client:
        blocker = client.submit("sleep", {"seconds": 30}).task.task_id
        wait_until(lambda: client.get(blocker).state is TaskState.RUNNING, what="the blocker runs")
        queued = client.submit("sleep", {"seconds": 0}).task.task_id
        waiting = one_worker.until(
            lambda s: value(s, "taskservice_oldest_runnable_task_age_seconds") >= 0.5, "the queued task ages"
        )
        assert value(waiting, "taskservice_worker_process_resident_memory_bytes") > 0, "its worker process is seen"
        assert value(waiting, "taskservice_worker_process_open_fds") > 0
        client.stop(blocker)
        assert client.wait(queued, timeout=30).state is TaskState.SUCCESS
    done = one_worker.until(
        lambda s: value(s, "taskservice_oldest_runnable_task_age_seconds") == 0, "nothing left to start"
    )
    assert value(done, "taskservice_task_wait_seconds_count", task_type="sleep") == 2
    waited = value(done, "taskservice_task_wait_seconds_sum", task_type="sleep")
    assert waited >= 0.5, "the second task's wait behind the first is in the histogram"
    assert value(done, "process_cpu_seconds_total") > 0 and value(done, "process_open_fds") > 0
    assert value(done, "process_resident_memory_bytes") > 0
    assert value(done, "taskservice_worker_process_cpu_seconds_total") > 0


def test_http_calls_are_counted_by_route_and_status(one_worker: Scraped) -> None:
    base = one_worker.server.http_url
    with TaskClient(one_worker.server.address) as client:
        task_id = client.submit("sleep", {"seconds": 0}).task.task_id
    for path in (f"/v1/tasks/{task_id}", "/v1/tasks/no-such-task", "/not/a/route/xyz"):
        try:
            urllib.request.urlopen(base + path, timeout=10).close()
        except urllib.error.HTTPError as refused:
            assert refused.code == 404
    samples = one_worker.until(
        lambda s: value(s, "taskservice_http_requests_total", method="GET", route="unmatched", status="404") >= 1,
        "the HTTP calls counted",
    )
    member = {"method": "GET", "route": "/v1/tasks/{name}"}
    assert value(samples, "taskservice_http_requests_total", **member, status="200") >= 1
    assert value(samples, "taskservice_http_requests_total", **member, status="404") >= 1
    assert value(samples, "taskservice_http_request_duration_seconds_count", **member) >= 2
    assert not [key for key in samples if "no-such-task" in str(key)], "ids never become label values"


def test_what_limits_hold_back_and_schedule_firings(tmp_path: Path) -> None:
    for scraped in _serve(tmp_path, workers=4):
        with TaskClient(scraped.server.address) as client:
            client.create_limit("one-sleep", task_type="sleep", max_running=1)
            ids = [client.submit("sleep", {"seconds": 30}).task.task_id for _ in range(3)]
            held = scraped.until(
                lambda s: value(s, "taskservice_limit_waiting_tasks", limit_id="one-sleep") == 2,
                "two tasks held back by the limit",
            )
            assert value(held, "taskservice_oldest_runnable_task_age_seconds") == 0, "held-back tasks cannot start"
            client.create_schedule("every-second", "demo", {"steps": 1, "step_seconds": 0}, interval=1.0)
            fired = scraped.until(
                lambda s: (
                    value(s, "taskservice_schedule_firings_total", schedule_id="every-second", outcome="fired") >= 2
                ),
                "the schedule fired twice",
            )
            assert (
                value(fired, "taskservice_schedule_firings_total", schedule_id="every-second", outcome="refused") == 0
            )
            for task_id in ids:
                client.stop(task_id)
