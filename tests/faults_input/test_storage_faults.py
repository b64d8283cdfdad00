"""The database's disk fills up, its file is corrupt, or it cannot be written: the server says so and stays safe.

- Injected (always runs): an in-process server over FaultyBoard (tests/support/faulty_board.py), the server's
  SQLite board whose write statements fail with SQLite's own "database or disk is full" while a flag is set.
- Real (needs `mount`): a real server process whose db lives on a 4 MiB tmpfs that a filler file fills up.
- Start-up: a real db file with tasks, overwritten in places with random bytes; a db on a read-only mount, in a
  read-only folder, or read-only itself (the last two as user nobody, since root ignores file modes).

Bugs found here and fixed stay as regression tests (damaged rows read after start-up now answer DATA_LOSS).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import sqlite3
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from taskservice.core.board.sqlite.board import SQLiteBoard
from taskservice.core.model.models import TaskFilter, TaskState
from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc
from tests.faults_input.harness import BackgroundServer, wait_for_state
from tests.grpc.helpers import TERMINAL
from tests.support.faulty_board import DISK_FULL, FaultyBoard
from tests.support.server import ServerProcess, ServerStartError
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
EXIT_BAD_DATABASE = 3  # README: "3 the database cannot be used (corrupt, foreign, or from a newer version)"


def args(**values: object) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


# ---------------------------------------------------------------------------------------------- injected faults


@pytest.fixture
def faulty(tmp_path: Path) -> Iterator[BackgroundServer]:
    with BackgroundServer(tmp_path, board=FaultyBoard(tmp_path / "tasks.db"), workers=2) as server:
        yield server


def _store(server: BackgroundServer) -> FaultyBoard:
    assert isinstance(server.board, FaultyBoard)
    return server.board


def _state(stub: pb_grpc.TaskServiceStub, task_id: str) -> int:
    return stub.GetState(pb.GetStateRequest(task_id=task_id), timeout=5).task.state


def _watch_in_background(stub: pb_grpc.TaskServiceStub, task_id: str) -> tuple[list[int], threading.Thread]:
    """Collect the states a WatchProgress stream delivers, in a thread; the list fills as events come."""
    states: list[int] = []

    def watch() -> None:
        for event in stub.WatchProgress(pb.WatchProgressRequest(task_id=task_id), timeout=60):
            states.append(event.state)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return states, thread


def test_disk_full_refuses_submits_keeps_serving_and_recovers_by_itself(faulty: BackgroundServer) -> None:
    stub, store = faulty.stub, _store(faulty)
    done = stub.Submit(pb.SubmitRequest(task_type="echo", task_id="done-d", args=args(value=1)), timeout=5).task
    wait_for_state(stub, done.task_id, {pb.TASK_STATE_SUCCESS})
    for name in ("a", "b"):  # both workers busy
        stub.Submit(pb.SubmitRequest(task_type="gate", task_id=f"run-{name}", args=args(name=name)), timeout=5)
        wait_for_state(stub, f"run-{name}", {pb.TASK_STATE_RUNNING})
    stub.Submit(pb.SubmitRequest(task_type="echo", task_id="queued-e", args=args(value="e")), timeout=5)
    assert _state(stub, "queued-e") == pb.TASK_STATE_PENDING
    watched_b, watcher = _watch_in_background(stub, "run-b")
    wait_until(lambda: watched_b, what="the watch of run-b to get its snapshot")
    acknowledged = {"done-d", "run-a", "run-b", "queued-e"}
    assert faulty.count() == len(acknowledged)

    store.full.set()
    # Submit: UNAVAILABLE with SQLite's reason, nothing stored (not even under the id it named).
    for task_id in ("during-1", ""):
        with pytest.raises(grpc.RpcError) as caught:
            stub.Submit(pb.SubmitRequest(task_type="echo", task_id=task_id, args=args(value=2)), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value.details()
        assert "could not be written" in caught.value.details() and DISK_FULL in caught.value.details()
    assert store.was_refused("insert", "during-1"), "the fault was never hit"
    assert faulty.count() == len(acknowledged)
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetState(pb.GetStateRequest(task_id="during-1"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    # Health says the server cannot take work while its database refuses writes; reads still answer.
    wait_until(lambda: faulty.health() == health_pb2.HealthCheckResponse.NOT_SERVING, what="NOT_SERVING")
    assert {t.task_id for t in stub.ListTasks(pb.ListTasksRequest(), timeout=5).tasks} == acknowledged

    # Stopping a queued task needs a write: refused, so the task is still PENDING and will run.
    with pytest.raises(grpc.RpcError) as caught:
        stub.Stop(pb.StopRequest(task_id="queued-e"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value.details()
    assert _state(stub, "queued-e") == pb.TASK_STATE_PENDING

    # run-b finishes during the fault: SUCCESS cannot be committed, so nobody is shown it yet. Its worker cannot
    # claim queued-e (a claim is a write), which waits in the queue for the disk.
    faulty.gates.open("b")
    wait_until(lambda: store.was_refused("finish", "run-b", "SUCCESS"), what="run-b's SUCCESS write refused")
    assert _state(stub, "run-b") == pb.TASK_STATE_RUNNING
    assert _state(stub, "queued-e") == pb.TASK_STATE_PENDING
    assert not set(watched_b) & TERMINAL, "a watcher was shown an end that is not committed"
    assert (store.state_of("run-b"), store.state_of("queued-e")) == ("RUNNING", "PENDING")  # last persisted
    # run-a is stopped during the fault: STOPPING at once (in memory), REVOKED once it can be written. The writer
    # tries the database again a second after a refusal, and the server's own writes (this end among them) wait for
    # that try rather than failing unseen: the store refuses it, and it is not written while the disk is full.
    assert stub.Stop(pb.StopRequest(task_id="run-a"), timeout=5).task.state == pb.TASK_STATE_STOPPING
    wait_until(lambda: "a" in faulty.gates.left, what="run-a's handler to return after its stop")
    wait_until(lambda: store.was_refused("finish", "run-a", "REVOKED"), what="run-a's REVOKED write refused")
    assert _state(stub, "run-a") == pb.TASK_STATE_STOPPING
    assert store.state_of("run-a") == "RUNNING"
    assert faulty.health() == health_pb2.HealthCheckResponse.NOT_SERVING

    store.full.clear()
    expected = {"done-d": "SUCCESS", "run-a": "REVOKED", "run-b": "SUCCESS", "queued-e": "SUCCESS"}
    wait_until(lambda: {t: store.state_of(t) for t in expected} == expected, what="the ends committed after the fault")
    watcher.join(timeout=10)
    assert watched_b[-1] == pb.TASK_STATE_SUCCESS
    assert stub.GetState(pb.GetStateRequest(task_id="queued-e"), timeout=5).task.result.string_value == "e"
    created = stub.Submit(pb.SubmitRequest(task_type="echo", task_id="during-1", args=args(value=2)), timeout=5)
    assert created.created, "the id of a refused Submit must be free afterwards"
    wait_for_state(stub, "during-1", {pb.TASK_STATE_SUCCESS})
    faulty.assert_healthy()

    # Nothing acknowledged is lost: the file, opened afresh, holds every acknowledged task in its final state.
    faulty.stop()
    reopened = SQLiteBoard(faulty.tmp_path / "tasks.db")
    try:
        assert {t: reopened.get(t).state.value for t in expected} == expected  # type: ignore[union-attr]
        assert reopened.get("during-1").state is TaskState.SUCCESS  # type: ignore[union-attr]
        assert len(reopened.list(TaskFilter(), after=None, limit=100)) == len(expected) + 1
    finally:
        reopened.close()


def test_a_task_whose_running_write_fails_runs_anyway(faulty: BackgroundServer) -> None:
    store = _store(faulty)
    store.refuse = lambda writes: any(w.kind == "start" for w in writes)
    task = faulty.stub.Submit(pb.SubmitRequest(task_type="echo", args=args(value="ran")), timeout=5).task
    final = wait_for_state(faulty.stub, task.task_id, TERMINAL)
    assert store.was_refused("start", task.task_id, "RUNNING"), "the fault was never hit"
    assert (final.state, final.result.string_value) == (pb.TASK_STATE_SUCCESS, "ran")
    assert store.state_of(task.task_id) == "SUCCESS"


def test_progress_during_the_fault_is_shown_and_written_once_space_returns(faulty: BackgroundServer) -> None:
    stub, store = faulty.stub, _store(faulty)
    task_id = stub.Submit(pb.SubmitRequest(task_type="progress_then_wait", args=args(name="p")), timeout=5).task.task_id

    def stored_tick() -> int:
        task = store.get(task_id)
        message = task.progress.message if task is not None else ""
        return int(message.split()[-1]) if message.startswith("tick") else 0

    def live_tick() -> int:
        return int(stub.GetState(pb.GetStateRequest(task_id=task_id), timeout=5).task.progress.message.split()[-1])

    wait_until(stored_tick, what="progress persisted before the fault")
    store.full.set()
    wait_until(lambda: store.was_refused("progress", task_id), what="a progress write refused")
    frozen = stored_tick()
    seen = live_tick()
    wait_until(lambda: live_tick() > seen + 5, what="live progress going on during the fault")
    assert stored_tick() == frozen
    assert faulty.health() == health_pb2.HealthCheckResponse.NOT_SERVING
    store.full.clear()
    wait_until(lambda: faulty.health() == health_pb2.HealthCheckResponse.SERVING, what="SERVING once writes work")
    wait_until(lambda: stored_tick() > seen + 5, what="progress persisted again after the fault")
    faulty.gates.open("p")
    wait_until(lambda: store.state_of(task_id) == "SUCCESS", what="the task's end committed")


# ---------------------------------------------------------------------------------------------- a real full disk


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted for this test; skipped where mount is not permitted."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8); the injected disk-full tests cover the logic")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here ({mounted.stderr.strip()}); injected variants cover it")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def fill(path: Path) -> int:
    """Write zeros to `path` until the file system has no byte left; returns the size written."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    chunk = 1 << 20
    try:
        while chunk:
            try:
                os.write(descriptor, bytes(chunk))
            except OSError as exc:
                assert exc.errno == 28, exc  # ENOSPC
                chunk //= 2
    finally:
        os.close(descriptor)
    return path.stat().st_size


def gate_server(db: Path, data_root: Path) -> ServerProcess:
    return ServerProcess(
        db,
        extra_args=["--tasks", "tests.faults_input.file_gate", "--data-root", str(data_root), "--drain", "5"],
        env={"PYTHONPATH": str(REPO)},
    )


def test_a_real_full_disk_under_a_server_process(small_disk: Path, tmp_path: Path) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    (gates / "open").touch()
    db = small_disk / "tasks.db"
    with gate_server(db, tmp_path / "data") as server:
        server.start()
        channel = grpc.insecure_channel(server.address)
        stub = pb_grpc.TaskServiceStub(channel)

        def submit(task_id: str, gate: str) -> pb.SubmitResponse:
            task_args = args(path=str(gates / gate))
            return stub.Submit(pb.SubmitRequest(task_type="faults.wait_for_file", task_id=task_id, args=task_args))

        acknowledged = {"done-1": "SUCCESS", "running-1": "SUCCESS"}
        submit("done-1", "open")
        wait_for_state(stub, "done-1", {pb.TASK_STATE_SUCCESS})
        submit("running-1", "later")
        wait_for_state(stub, "running-1", {pb.TASK_STATE_RUNNING})

        filler = small_disk / "filler"
        fill(filler)
        # SQLite may still have room in its WAL file: Submit until it fails (each success is acknowledged).
        refused: grpc.RpcError | None = None
        for probe in range(500):
            try:
                submit(f"probe-{probe}", "open")
                acknowledged[f"probe-{probe}"] = "SUCCESS"
            except grpc.RpcError as error:
                refused = error
                break
        assert refused is not None, "500 Submits fitted on a full disk"
        assert refused.code() == grpc.StatusCode.UNAVAILABLE, refused.details()
        assert DISK_FULL in refused.details(), refused.details()
        assert server.running

        def health() -> int:
            return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status

        wait_until(lambda: health() == health_pb2.HealthCheckResponse.NOT_SERVING, what="NOT_SERVING on a full disk")
        listed = {t.task_id for t in stub.ListTasks(pb.ListTasksRequest(page_size=1000), timeout=5).tasks}
        assert listed == set(acknowledged)

        # running-1 ends while the disk is full: its SUCCESS is not shown until it is written.
        (gates / "later").touch()
        wait_until(lambda: "task running-1: cannot record SUCCESS yet" in server.log(), what="the refused end")
        assert _state(stub, "running-1") == pb.TASK_STATE_RUNNING

        filler.unlink()
        wait_for_state(stub, "running-1", {pb.TASK_STATE_SUCCESS}, timeout=15)
        wait_until(lambda: health() == health_pb2.HealthCheckResponse.SERVING, what="SERVING once writes work")
        assert submit("after-1", "open").created
        acknowledged["after-1"] = "SUCCESS"
        for task_id in acknowledged:
            wait_for_state(stub, task_id, {pb.TASK_STATE_SUCCESS})
        channel.close()
        assert server.terminate() == 0
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        assert conn.execute("PRAGMA quick_check").fetchall() == [("ok",)]
        assert dict(conn.execute("SELECT task_id, state FROM tasks").fetchall()) == acknowledged


# ---------------------------------------------------------------------------------------------- start-up


def start_or_exit(server: ServerProcess, timeout: float = 20) -> int | None:
    """Start the server; None if it serves, else its exit code (it must exit, not hang)."""
    try:
        server.start(timeout=timeout)
    except ServerStartError:
        assert server.proc is not None
        code = server.proc.wait(timeout=10)
        assert code is not None, f"the server neither served nor exited:\n{server.log_tail()}"
        return code
    return None


def one_line_error(log: str) -> bool:
    return "Traceback" not in log


@pytest.fixture(scope="module")
def db_with_tasks(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a closed taskservice db holding 300 finished tasks (about 160 pages)."""
    folder = tmp_path_factory.mktemp("db-with-tasks")
    with BackgroundServer(folder) as server:
        for i in range(300):
            request = pb.SubmitRequest(
                task_type="echo", task_id=f"t{i}", args=args(value="v" * 300), labels={"n": f"{i}"}
            )
            server.stub.Submit(request, timeout=5)
        succeeded = TaskFilter(states=frozenset({TaskState.SUCCESS}), task_type="", labels=())
        wait_until(lambda: len(server.board.list(succeeded, after=None, limit=1000)) == 300, what="300 ends")
    assert not Path(f"{folder / 'tasks.db'}-wal").exists(), "closing the store should checkpoint the WAL"
    return (folder / "tasks.db").read_bytes()


PAGE = 4096


def _pages_of(data: bytes, table: str) -> list[int]:
    """Page numbers (1-based) of a table's leaf pages, from SQLite's dbstat."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "copy.db"
        path.write_bytes(data)
        with contextlib.closing(sqlite3.connect(path)) as conn:
            rows = conn.execute("SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf'", (table,))
            return sorted(row[0] for row in rows)


def corrupt(data: bytes, pages: Sequence[int], seed: int) -> bytes:
    rng = random.Random(seed)
    out = bytearray(data)
    for page in pages:
        out[(page - 1) * PAGE : page * PAGE] = rng.randbytes(PAGE)
    return bytes(out)


def _write_db(folder: Path, data: bytes) -> Path:
    db = folder / "tasks.db"
    db.write_bytes(data)
    return db


def test_a_corrupt_header_stops_the_server_with_exit_code_3(db_with_tasks: bytes, tmp_path: Path) -> None:
    damaged = bytes(random.Random(1).randbytes(100)) + db_with_tasks[100:]
    db = _write_db(tmp_path, damaged)
    with ServerProcess(db) as server:
        assert start_or_exit(server) == EXIT_BAD_DATABASE, server.log_tail()
        assert f"{db} is not a usable taskservice database" in server.log()
        assert one_line_error(server.log()), server.log_tail()
    assert db.read_bytes() == damaged, "the file was changed or replaced"


def test_destroyed_table_pages_stop_the_server_and_keep_the_file(db_with_tasks: bytes, tmp_path: Path) -> None:
    """Page 1 (the schema) intact, every other page random: the server must not start, nor touch the file."""
    damaged = corrupt(db_with_tasks, range(2, len(db_with_tasks) // PAGE + 1), seed=2)
    db = _write_db(tmp_path, damaged)
    with ServerProcess(db) as server:
        code = start_or_exit(server)
        assert code not in (None, 0), "the server served a destroyed database"
        assert "malformed" in server.log(), server.log_tail()
    assert db.read_bytes() == damaged, "the file was changed or replaced"


# Regression (fixed in c13734e): corruption past page 1 is found by the recovery query in manager.start(), whose
# sqlite3.DatabaseError serve() does not catch: exit code 1 and a traceback instead of exit code 3 and one line
def test_destroyed_table_pages_exit_with_the_documented_code(db_with_tasks: bytes, tmp_path: Path) -> None:
    db = _write_db(tmp_path, corrupt(db_with_tasks, range(2, len(db_with_tasks) // PAGE + 1), seed=2))
    with ServerProcess(db) as server:
        assert start_or_exit(server) == EXIT_BAD_DATABASE
        assert one_line_error(server.log()) and f"{db}" in server.log(), server.log_tail()


def _middle_leaves(data: bytes) -> list[int]:
    leaves = _pages_of(data, "tasks")
    assert len(leaves) >= 10, leaves
    middle = len(leaves) // 2
    return leaves[middle : middle + 3]


def test_corrupt_rows_are_never_a_silent_reset(db_with_tasks: bytes, tmp_path: Path) -> None:
    """Three leaf pages of the tasks table destroyed: SQLite opens the file and the server starts today. It must
    not look empty, lose the intact tasks or rewrite the damaged pages."""
    pages = _middle_leaves(db_with_tasks)
    damaged = corrupt(db_with_tasks, pages, seed=3)
    db = _write_db(tmp_path, damaged)
    with ServerProcess(db) as server:
        code = start_or_exit(server)
        if code is not None:
            assert code == EXIT_BAD_DATABASE and one_line_error(server.log()), server.log_tail()
        else:
            with grpc.insecure_channel(server.address) as channel:
                stub = pb_grpc.TaskServiceStub(channel)
                try:
                    page = stub.ListTasks(pb.ListTasksRequest(page_size=1000), timeout=5)
                    assert len(page.tasks) > 0, "a damaged database listed as empty"
                except grpc.RpcError as error:
                    assert error.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS), error.details()
                for intact in ("t0", "t299"):
                    assert stub.GetState(pb.GetStateRequest(task_id=intact), timeout=5).task.task_id == intact
            assert server.terminate() == 0
    after = db.read_bytes()
    for page in pages:
        assert after[(page - 1) * PAGE : page * PAGE] == damaged[(page - 1) * PAGE : page * PAGE], "damage rewritten"


def test_corrupt_rows_are_refused_at_start_or_reported(db_with_tasks: bytes, tmp_path: Path) -> None:
    db = _write_db(tmp_path, corrupt(db_with_tasks, _middle_leaves(db_with_tasks), seed=3))
    with ServerProcess(db) as server:
        code = start_or_exit(server)
        if code is None:
            with grpc.insecure_channel(server.address) as channel:
                with pytest.raises(grpc.RpcError) as caught:
                    pb_grpc.TaskServiceStub(channel).ListTasks(pb.ListTasksRequest(page_size=1000), timeout=5)
                assert caught.value.code() == grpc.StatusCode.DATA_LOSS, caught.value.details()
        else:
            assert code == EXIT_BAD_DATABASE and one_line_error(server.log()), server.log_tail()


# ---------------------------------------------------------------------------------------------- read-only


@pytest.fixture
def read_only_mount(tmp_path: Path, db_with_tasks: bytes) -> Iterator[Path]:
    """A tmpfs holding a copy of the db, remounted read-only (EROFS even for root)."""
    mount_point = tmp_path / "ro"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here ({mounted.stderr.decode().strip()})")
    try:
        (mount_point / "tasks.db").write_bytes(db_with_tasks)
        subprocess.run(["mount", "-o", "remount,ro", str(mount_point)], check=True, capture_output=True)
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def test_an_existing_db_on_a_read_only_mount_stops_the_server(read_only_mount: Path, db_with_tasks: bytes) -> None:
    db = read_only_mount / "tasks.db"
    with ServerProcess(db) as server:
        assert start_or_exit(server) == EXIT_BAD_DATABASE, server.log_tail()
        assert f"{db}" in server.log() and one_line_error(server.log()), server.log_tail()
    assert db.read_bytes() == db_with_tasks


def test_a_new_db_on_a_read_only_mount_stops_the_server(read_only_mount: Path) -> None:
    db = read_only_mount / "new.db"
    with ServerProcess(db) as server:
        code = start_or_exit(server)
        assert code not in (None, 0), "a server without a writable database served"
        assert "Read-only file system" in server.log() and "must be writable" in server.log(), server.log_tail()
    assert not db.exists()


# Regression (fixed in c13734e): the store's _connect() ran outside the try that maps sqlite3 errors to
# StoreOpenError: a db that cannot be created (read-only folder) ends the server with exit code 1 and a traceback, not
# exit code 3
def test_a_new_db_on_a_read_only_mount_exits_with_the_documented_code(read_only_mount: Path) -> None:
    with ServerProcess(read_only_mount / "new.db") as server:
        assert start_or_exit(server) == EXIT_BAD_DATABASE
        assert one_line_error(server.log()), server.log_tail()


class AsNobody(ServerProcess):
    """The server as user nobody, so that file modes apply (root ignores them)."""

    def command(self) -> list[str]:
        return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *super().command()]


@pytest.fixture
def nobody_folder(db_with_tasks: bytes) -> Iterator[Path]:
    """A folder nobody can reach (pytest's tmp_path is root-only), with a db owned by nobody in `db/`."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("running the server as another user needs root and setpriv(1)")
    top = Path(tempfile.mkdtemp(prefix="faults-ro-"))
    try:
        top.chmod(0o755)
        (top / "db").mkdir()
        (top / "db" / "tasks.db").write_bytes(db_with_tasks)
        (top / "run").mkdir(mode=0o777)
        (top / "run").chmod(0o777)
        for path in (top / "db", top / "db" / "tasks.db"):
            os.chown(path, 65534, 65534)
        yield top
    finally:
        (top / "db").chmod(0o755)
        shutil.rmtree(top, ignore_errors=True)


def _as_nobody(top: Path) -> AsNobody:
    server = AsNobody(top / "db" / "tasks.db", extra_args=["--state-dir", str(top / "run" / "state")])
    server.port_file = top / "run" / "port"  # the default lives in a folder only root may write
    return server


def _read_only_file(top: Path) -> None:
    (top / "db" / "tasks.db").chmod(0o444)


def _read_only_folder(top: Path) -> None:
    (top / "db").chmod(0o555)


READ_ONLY = [
    pytest.param(_read_only_file, id="read-only-file"),
    pytest.param(_read_only_folder, id="read-only-folder"),
]


@pytest.mark.parametrize("make_read_only", READ_ONLY)
def test_a_read_only_db_is_refused_and_left_alone(
    nobody_folder: Path, db_with_tasks: bytes, make_read_only: Callable[[Path], None]
) -> None:
    make_read_only(nobody_folder)
    with _as_nobody(nobody_folder) as server:
        code = start_or_exit(server)
        if code is None:  # if it serves, it must refuse every write with the reason
            with grpc.insecure_channel(server.address) as channel, pytest.raises(grpc.RpcError) as caught:
                pb_grpc.TaskServiceStub(channel).Submit(
                    pb.SubmitRequest(task_type="sleep", args=args(seconds=1)), timeout=5
                )
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "readonly" in caught.value.details(), caught.value.details()
        else:
            assert code != 0
            reasons = ("readonly database", "unable to open", "folder must be writable")
            assert any(reason in server.log() for reason in reasons), server.log_tail()
    assert (nobody_folder / "db" / "tasks.db").read_bytes() == db_with_tasks


@pytest.mark.parametrize("make_read_only", READ_ONLY)
def test_a_read_only_db_exits_with_the_documented_code(
    nobody_folder: Path, make_read_only: Callable[[Path], None]
) -> None:
    make_read_only(nobody_folder)
    with _as_nobody(nobody_folder) as server:
        assert start_or_exit(server) == EXIT_BAD_DATABASE, server.log_tail()
        assert one_line_error(server.log()) and "tasks.db" in server.log(), server.log_tail()


def test_ends_refused_for_a_while_are_retried_together_by_one_thread(faulty: BackgroundServer) -> None:
    store, stub = _store(faulty), faulty.stub
    store.refuse = lambda writes: any(w.kind == "finish" for w in writes)
    threads_before = threading.active_count()
    requests = [pb.SubmitRequest(task_type="echo", task_id=f"end-{i}", args=args(value=i)) for i in range(200)]
    stub.SubmitBatch(pb.SubmitBatchRequest(requests=requests), timeout=10)
    # A refused end is SQLite's "disk is full": nothing is claimed either until the disk takes writes again, so
    # the ends waiting are those of the tasks the two workers ran.
    wait_until(lambda: store.was_refused("finish", "end-0", "SUCCESS"), what="the first end refused")
    seen = [threads_before]
    refused_before = len(store.refused)

    def more_rounds() -> bool:  # sampling the threads all the while
        seen.append(threading.active_count())
        return len(store.refused) >= refused_before + 6

    wait_until(more_rounds, timeout=15, what="more rounds of retries")
    most_threads = max(seen)
    assert most_threads <= threads_before + 3, f"{most_threads - threads_before} more threads while ends were refused"
    store.refuse = None
    wait_until(lambda: all(store.state_of(f"end-{i}") == "SUCCESS" for i in range(200)), timeout=20,
               what="every end written once the storage takes them")  # fmt: skip
