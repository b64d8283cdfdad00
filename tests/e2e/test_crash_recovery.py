"""The server as a real process: killed with SIGKILL, restarted on the same database, drained by SIGTERM."""

from __future__ import annotations

import itertools
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from taskservice.client import TaskClient, TaskState
from tests.support.server import ServerProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


def test_sigkill_then_restart_keeps_every_acknowledged_task(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "tasks.db", workers=2) as server:
        server.start()
        with TaskClient(server.address) as client:
            running = [client.submit("sleep", {"seconds": 60}, task_id=f"long-{i}").task.task_id for i in range(2)]
            for task_id in running:
                wait_until(lambda t=task_id: server.committed(t) == ("RUNNING", 1), what=f"{task_id} RUNNING on disk")
            queued = [
                client.submit(
                    "demo", {"steps": 2, "step_seconds": 0.01}, task_id=f"queued-{i}", priority=i
                ).task.task_id
                for i in range(5)
            ]
            assert all(client.get(t).state is TaskState.PENDING for t in queued)

        server.kill()
        server.restart()

        with TaskClient(server.address) as client:
            for task_id in running:
                lost = client.get(task_id)
                assert lost.state is TaskState.LOST
                assert lost.error is not None and lost.error.type == "ServerRestarted"
            for task_id in queued:
                assert client.wait(task_id, timeout=30).state is TaskState.SUCCESS
            listed = {t.task_id for t in client.iter_tasks()}
            assert listed == {*running, *queued}, "every acknowledged task, none twice, nothing else"


def test_sigterm_drains_then_stops_what_still_runs_as_a_shutdown_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "rerun_tasks.py").write_text(RERUNNABLE_MODULE)
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    flag = tmp_path / "go"
    args = ["--drain", "2", "--stop-grace", "1", "--tasks", "rerun_tasks"]
    with ServerProcess(tmp_path / "tasks.db", workers=3, extra_args=args, env=env) as server:
        server.start()
        with TaskClient(server.address) as client:
            short = client.submit("sleep", {"seconds": 0.5}, task_id="short").task.task_id
            long = client.submit("sleep", {"seconds": 120}, task_id="long").task.task_id
            again = client.submit("test.idempotent_wait", {"flag": str(flag)}, task_id="again").task.task_id
            for task_id in (short, long, again):
                wait_until(lambda t=task_id: server.committed(t) == ("RUNNING", 1), what=f"{task_id} RUNNING on disk")
            watched = client.watch(long)
            assert next(watched).state is TaskState.RUNNING
            assert server.terminate(timeout=30) == 0
            seen = [event.state for event in watched]
        assert "draining" in server.log()
        assert seen[-1] is TaskState.REVOKED, "a watcher sees the task end before its stream closes"
        assert server.committed(long) == ("REVOKED", 1)

        server.start()
        flag.touch()
        with TaskClient(server.address) as client:
            assert client.get(short).state is TaskState.SUCCESS, "finished within the drain"
            stopped = client.get(long)
            assert stopped.state is TaskState.REVOKED, "still running after the drain: stopped, not LOST"
            assert stopped.error is not None and stopped.error.type == "ServerShutdown"
            assert "drain of 2 s" in stopped.error.message
            rerun = client.wait(again, timeout=30)
            assert rerun.state is TaskState.SUCCESS and rerun.attempt == 2, "safe to re-run: queued again, ran again"


def test_a_database_that_is_not_ours_stops_the_server_with_a_clear_error(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.db"
    foreign.write_bytes(b"definitely not an sqlite file" * 50)
    with ServerProcess(foreign) as server, pytest.raises(Exception, match="not a usable taskservice database"):
        server.start(timeout=15)
    assert server.proc is not None and server.proc.returncode == 3
    assert foreign.read_bytes().startswith(b"definitely not"), "never reset silently"


RERUNNABLE_MODULE = '''
import pathlib
from taskservice import TaskContext, task


@task("test.idempotent_wait", rerun_on_restart=True)
def idempotent_wait(ctx: TaskContext, *, flag: str) -> int:
    """Safe to run again: waits until the file `flag` exists."""
    while not pathlib.Path(flag).exists():
        ctx.sleep(0.02)
    return ctx.attempt
'''


def test_a_task_type_that_allows_it_runs_again_after_a_crash(tmp_path: Path) -> None:
    (tmp_path / "rerun_tasks.py").write_text(RERUNNABLE_MODULE)
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    flag = tmp_path / "go"
    with ServerProcess(tmp_path / "t.db", extra_args=["--tasks", "rerun_tasks"], env=env) as server:
        server.start()
        with TaskClient(server.address) as client:
            task_id = client.submit("test.idempotent_wait", {"flag": str(flag)}).task.task_id
            wait_until(lambda: client.get(task_id).state is TaskState.RUNNING, what="first attempt runs")
        # A re-runnable type's handler starts before RUNNING is committed (README: at worst one more run, whose
        # attempt number repeats). Kill only once the first attempt is on disk, so the count is certain.
        wait_until(lambda: server.committed(task_id) == ("RUNNING", 1), what="RUNNING committed")
        server.kill()
        server.restart()
        flag.touch()
        with TaskClient(server.address) as client:
            final = client.wait(task_id, timeout=30)
            assert final.state is TaskState.SUCCESS and final.attempt == 2 and final.result == 2


def test_a_task_scheduled_later_survives_a_crash_and_runs_at_its_time_not_before(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "tasks.db") as server:
        server.start()
        with TaskClient(server.address) as client:
            task = client.submit("sleep", {"seconds": 0}, task_id="later", delay=3.0).task
            assert task.state is TaskState.PENDING and task.scheduled_at is not None
        server.kill()
        server.restart()
        with TaskClient(server.address) as client:
            waiting = client.get("later")
            assert waiting.state is TaskState.PENDING and waiting.scheduled_at == task.scheduled_at
            ended = client.wait("later", timeout=30)
        assert ended.state is TaskState.SUCCESS
        assert ended.started_at is not None and ended.started_at >= task.scheduled_at, "not run before its time"


def test_retention_deletes_ended_tasks_and_their_logs_across_a_restart_and_keeps_the_rest(tmp_path: Path) -> None:
    (tmp_path / "data" / "in").mkdir(parents=True)
    (tmp_path / "data" / "in" / "x.bin").write_bytes(b"x" * 1000)
    args = ["--retention", "5s", "--data-root", str(tmp_path / "data")]
    logs = tmp_path / "tasks-state" / "logs"
    with ServerProcess(tmp_path / "tasks.db", extra_args=args) as server:
        server.start()
        with TaskClient(server.address) as client:
            ended = client.submit("file.checksum", {"input_fpath": "in/x.bin"}, task_id="ended").task.task_id
            kept = client.submit("sleep", {"seconds": 0}, task_id="kept", retention=0).task.task_id
            for task_id in (ended, kept):
                assert client.wait(task_id, timeout=30).state is TaskState.SUCCESS
            waiting = client.submit("sleep", {"seconds": 0}, task_id="later", delay=3600).task.task_id
        assert (logs / f"{ended}.log").exists()
        server.kill()
        server.restart()
        with TaskClient(server.address) as client:
            assert client.get(ended).state is TaskState.SUCCESS, "not yet: kept 5 s from its end"
            wait_until(lambda: ended not in {t.task_id for t in client.iter_tasks()}, timeout=30, what="deleted")
            assert {t.task_id for t in client.iter_tasks()} == {kept, waiting}
        assert not (logs / f"{ended}.log").exists(), "its log went with it"


def test_dependents_wait_across_a_crash_and_those_of_a_lost_task_end_revoked_at_the_restart(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "tasks.db", workers=1) as server:
        server.start()
        with TaskClient(server.address) as client:
            running = client.submit("sleep", {"seconds": 60}, task_id="running").task.task_id
            wait_until(lambda: client.get(running).state is TaskState.RUNNING, what="the dependency runs")
            wait_until(lambda: server.committed(running) == ("RUNNING", 1), what="RUNNING committed")
            doomed = client.submit("sleep", {"seconds": 0}, task_id="doomed", after=[running]).task.task_id
            chained = client.submit("sleep", {"seconds": 0}, task_id="chained", after=[doomed]).task.task_id
            later = client.submit("sleep", {"seconds": 0}, task_id="later", delay=2.0).task.task_id
            waiting = client.submit("sleep", {"seconds": 0}, task_id="waiting", after=[later]).task.task_id
        server.kill()
        server.restart()
        with TaskClient(server.address) as client:
            assert client.wait(running, timeout=30).state is TaskState.LOST
            for task_id, dependency in ((doomed, running), (chained, doomed)):
                task = client.wait(task_id, timeout=30)
                assert task.state is TaskState.REVOKED and task.started_at is None, task
                assert task.error is not None and task.error.type == "DependencyFailed"
                assert f"dependency {dependency!r} ended" in task.error.message
            done = client.wait(waiting, timeout=30)
            assert done.state is TaskState.SUCCESS
            first = client.get(later)
            assert done.started_at is not None and first.ended_at is not None and done.started_at >= first.ended_at


def _dues(client: TaskClient, schedule_id: str) -> list[float]:
    """The due times a schedule's tasks were submitted for, in order (from their ids)."""
    ids = [t.task_id for t in client.iter_tasks(labels={"schedule": schedule_id})]
    assert len(ids) == len(set(ids))
    stamps = (datetime.strptime(i.split(":", 1)[1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) for i in ids)
    return sorted(stamp.timestamp() for stamp in stamps)


def test_schedules_survive_a_crash_and_catch_up_as_their_policy_says(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "tasks.db") as server:
        server.start()
        with TaskClient(server.address) as client:
            for policy in ("all", "once"):
                client.create_schedule(f"every-{policy}", "sleep", {"seconds": 0}, interval=1, catch_up=policy)
            client.create_schedule("paused", "sleep", {"seconds": 0}, interval=1, paused=True)
            wait_until(lambda: len(_dues(client, "every-once")) >= 2, what="firings before the crash")
        server.kill()
        down_until = time.time() + 4.0  # the downtime the policies are about
        wait_until(lambda: time.time() >= down_until, timeout=10, what="the downtime")
        server.restart()
        restarted = time.time()
        with TaskClient(server.address) as client:
            wait_until(lambda: any(d > restarted for d in _dues(client, "every-all")), what="firing after the restart")
            wait_until(lambda: any(d > restarted for d in _dues(client, "every-once")), what="firing after restart")
            every_all, every_once = _dues(client, "every-all"), _dues(client, "every-once")
            assert client.get_schedule("paused").paused and _dues(client, "paused") == []
        gaps_all = [b - a for a, b in itertools.pairwise(every_all)]
        assert gaps_all and max(gaps_all) <= 1.0, f"ALL: a task for every due time, the missed ones too: {every_all}"
        gaps_once = [b - a for a, b in itertools.pairwise(every_once)]
        # The downtime's due times made one task: one gap as long as the downtime. (A scheduler woken late on a busy
        # machine may skip a due time more, as ONCE says: a gap of 2 s is that, not the downtime.)
        long_gaps = [gap for gap in gaps_once if gap >= 3.0]
        assert len(long_gaps) == 1, f"ONCE: the missed due times made one task: {every_once}"
