"""Several servers (real processes) on one PostgreSQL database made for this test run.

Any server answers for any task: submit on one, watch on another, stop from a third; two servers race on one
Submit id; a server cut off from its leases (SIGSTOP) finds its tasks reaped by another and its late end refused.
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

import pytest

from taskservice.client import TaskClient, TaskState
from tests.support.postgres import pg_database, pg_dsn
from tests.support.server import ServerProcess
from tests.support.waiting import wait_until

__all__ = ["pg_database", "pg_dsn"]

pytestmark = pytest.mark.slow

SHORT_LEASES = ["--lease", "2", "--renew", "0.5", "--poll", "0.5"]

CHATTY_MODULE = '''
from taskservice import TaskContext, task


@task("test.chatty")
def chatty(ctx: TaskContext, *, lines: int) -> int:
    for i in range(lines):
        ctx.log(f"line {i}")
    return lines


@task("test.wait_forever")
def wait_forever(ctx: TaskContext) -> None:
    """Ignores nothing: stops at once when asked, else waits."""
    while True:
        ctx.sleep(0.05)
'''


@pytest.fixture
def nodes(pg_dsn: str, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    """Three servers on the test database, started."""
    (tmp_path / "cluster_tasks.py").write_text(CHATTY_MODULE)
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    with ExitStack() as stack:
        servers = [
            stack.enter_context(
                ServerProcess(
                    pg_dsn,
                    workers=2,
                    env=env,
                    extra_args=["--tasks", "cluster_tasks", "--state-dir", str(tmp_path / f"state-{i}"), *SHORT_LEASES],
                )
            )
            for i in range(3)
        ]
        for server in servers:
            server.start()
        yield servers


def test_submit_on_one_server_watch_on_another_stop_from_a_third(nodes: list[ServerProcess]) -> None:
    first, second, third = nodes
    with TaskClient(first.address) as a, TaskClient(second.address) as b, TaskClient(third.address) as c:
        task_id = a.submit("demo", {"steps": 400, "step_seconds": 0.02}).task.task_id
        events = []
        watching = threading.Thread(target=lambda: events.extend(b.watch(task_id, timeout=30)), daemon=True)
        watching.start()
        # A WaitTask on every server: at least two of them wait for a task another server runs.
        ended: dict[str, TaskState] = {}

        def wait_on(address: str) -> None:
            with TaskClient(address) as client:
                ended[address] = client.wait(task_id, timeout=30).state

        waits = [threading.Thread(target=wait_on, args=(node.address,), daemon=True) for node in nodes]
        for waiting in waits:
            waiting.start()
        wait_until(lambda: sum(1 for e in events if e.task is None) >= 5, what="progress seen on the second server")
        assert not ended, "no wait answered before the task ended"
        assert c.stop(task_id, reason="from the third").task_id == task_id
        watching.join(timeout=20)
        assert not watching.is_alive(), "the watch on the second server ended"
        for waiting in waits:
            waiting.join(timeout=20)
        assert ended == {node.address: TaskState.REVOKED for node in nodes}, "every server's WaitTask saw the end"
        sequences = [e.sequence for e in events]
        assert sequences == sorted(set(sequences)), "in sequence order, none twice"
        states = [e.state for e in events if e.task is not None]
        assert states[-1] is TaskState.REVOKED and TaskState.STOPPING in states
        assert [e.state.is_terminal for e in events].count(True) == 1 and events[-1].state is TaskState.REVOKED
        assert events[-1].task is not None and "from the third" in (events[-1].task.error.message or "")
        progress = [e.progress.current for e in events if e.task is None]
        assert len(progress) >= 5 and progress == sorted(progress), "progress came across servers, in order"
        # GetState and ListTasks answer the same on every server.
        assert {client.get(task_id).state for client in (a, b, c)} == {TaskState.REVOKED}
        assert task_id in {t.task_id for t in c.list().tasks}


def test_logs_and_resumed_watches_work_on_any_server(nodes: list[ServerProcess]) -> None:
    with TaskClient(nodes[0].address) as submitter:
        task_id = submitter.submit("test.chatty", {"lines": 200}).task.task_id
        terminal = list(submitter.watch(task_id, timeout=30))[-1]
    assert terminal.state is TaskState.SUCCESS
    ran_on = next(n for n in nodes if f"{task_id} (test.chatty) PENDING -> RUNNING" in n.log())
    elsewhere = next(n for n in nodes if n is not ran_on)  # its logs are not in a file of this server
    with TaskClient(elsewhere.address) as reader:
        wait_until(lambda: b"line 199" in b"".join(c.data for c in reader.logs(task_id)), what="the log elsewhere")
        text = b"".join(chunk.data for chunk in reader.logs(task_id)).decode()
        assert text.splitlines()[:2] == ["line 0", "line 1"] and "line 199" in text
        resumed = list(reader.watch(task_id, after_sequence=terminal.sequence, timeout=10))
        assert resumed == [], "resumed after the end, on another server"


def test_two_servers_racing_on_one_submit_id_create_it_once(nodes: list[ServerProcess]) -> None:
    clients = [TaskClient(node.address) for node in nodes[:2]]
    results: list[bool] = []
    lock = threading.Lock()

    def submit(client: TaskClient) -> None:
        outcome = client.submit("noop", {}, task_id="raced-across-servers")
        with lock:
            results.append(outcome.created)

    try:
        threads = [threading.Thread(target=submit, args=(clients[i % 2],)) for i in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(results) == [False] * 19 + [True]
        assert clients[0].wait("raced-across-servers", timeout=30).state is TaskState.SUCCESS
    finally:
        for client in clients:
            client.close()


def test_a_server_cut_off_loses_its_leases_and_its_late_end_changes_nothing(nodes: list[ServerProcess]) -> None:
    second = nodes[1]
    with TaskClient(second.address) as b:
        task_id = b.submit("test.wait_forever", {}).task.task_id
        wait_until(lambda: b.get(task_id).state is TaskState.RUNNING, what="the task runs somewhere")
        # The database says RUNNING once the claim commits, a moment before its owner logs it.
        owner = wait_until(lambda: next((n for n in nodes if f"{task_id} (test.wait_forever) PENDING -> RUNNING"
                                         in n.log()), None), what="the owner's log of the claim")  # fmt: skip
        assert owner is not None
        others = [n for n in nodes if n is not owner]
        assert owner.proc is not None
        # Its start in the database, as another server reads it, not only its claim: the owner shows its own claim
        # at once, and a claim whose handler never started is rightly reaped back to PENDING, to run elsewhere.
        with TaskClient(others[0].address) as other:
            wait_until(lambda: other.get(task_id).started_at is not None, what="the task's start is on disk")
        owner.proc.send_signal(signal.SIGSTOP)  # cut off: it renews nothing
        try:
            with TaskClient(others[0].address) as other:
                started = time.monotonic()
                wait_until(
                    lambda: other.get(task_id).state is TaskState.LOST, timeout=20, what="another server reaped it"
                )
                reaped_after = time.monotonic() - started
                lost = other.get(task_id)
                assert lost.error is not None and lost.error.type == "ServerRestarted"
        finally:
            owner.proc.send_signal(signal.SIGCONT)
        # Back, it finds the lease lost at its next renewal and drops the run; the task stays LOST.
        wait_until(lambda: "lost its lease" in owner.log(), timeout=15, what="the cut-off server noticed")
        with TaskClient(owner.address) as back:
            assert back.get(task_id).state is TaskState.LOST
        print(f"reaped {reaped_after:.1f} s after the owner stopped renewing (lease 2 s)")


def test_three_servers_fire_a_schedule_once_per_due_time_and_go_on_when_one_is_killed(
    nodes: list[ServerProcess],
) -> None:
    first, second, third = nodes
    with TaskClient(first.address) as a, TaskClient(third.address) as c:
        a.create_schedule("cluster-tick", "sleep", {"seconds": 0}, interval=1, catch_up="all")

        def firings() -> list[str]:
            return [t.task_id for t in c.iter_tasks(labels={"schedule": "cluster-tick"})]

        wait_until(lambda: len(firings()) >= 3, timeout=20, what="firings from all three servers")
        second.kill()
        seen = len(firings())
        wait_until(lambda: len(firings()) >= seen + 3, timeout=20, what="firings after a server was killed")
        c.pause_schedule("cluster-tick")
        ids = firings()
        dues = sorted(datetime.strptime(i.split(":", 1)[1], "%Y-%m-%dT%H:%M:%SZ") for i in ids)
        assert len(ids) == len(set(ids)), "one task per due time"
        assert all((b - a).total_seconds() == 1 for a, b in itertools.pairwise(dues)), f"none missed: {dues}"
        for task_id in ids[:3]:
            assert c.wait(task_id, timeout=30).state is TaskState.SUCCESS


def test_a_node_that_runs_only_some_types_leaves_the_rest_to_the_others(pg_dsn: str, tmp_path: Path) -> None:
    with ExitStack() as stack:
        only_noop, any_type = (
            stack.enter_context(
                ServerProcess(pg_dsn, workers=2, extra_args=["--state-dir", str(tmp_path / name), *flags])
            )
            for name, flags in (("only-noop", ["--only-types", "noop"]), ("any", []))
        )
        only_noop.start()
        with TaskClient(only_noop.address) as client:
            sleeps = [client.submit("sleep", {"seconds": 0}).task.task_id for _ in range(10)]
            noops = [client.submit("noop", {}).task.task_id for _ in range(10)]
            for task_id in noops:
                assert client.wait(task_id, timeout=30).state is TaskState.SUCCESS
            assert {client.get(task_id).state for task_id in sleeps} == {TaskState.PENDING}, "sleep is not its type"
            any_type.start()  # the sleeps run once a server that runs them is there
            for task_id in sleeps:
                assert client.wait(task_id, timeout=30).state is TaskState.SUCCESS
            types = {kind.name: kind.nodes for kind in client.task_types()}
            assert len(types["noop"]) == 2 and len(types["sleep"]) == 1, "ListTaskTypes says which servers run what"
            assert set(types["sleep"]) < set(types["noop"])
        assert "(sleep) PENDING -> RUNNING" not in only_noop.log()
        assert only_noop.log().count("(noop) PENDING -> RUNNING") == 10
