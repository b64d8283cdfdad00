"""Hostile and unlucky paths: a worker never dies, nothing outside the data root is read or written, and a path
no file system takes is INVALID_ARGUMENT at Submit, naming the field.

Each test here failed before its fix: a 255-byte output name killed the worker that ran it, a link loop swapped
in after Submit did the same, a file swapped for a link between the check and the open read the outside file,
and a 300-byte name answered INTERNAL.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from taskservice.core.handlers.context import TaskContext
from taskservice.core.handlers.paths import DataRoot, InputFile, OutputFile
from taskservice.core.handlers.registry import TaskRegistry
from taskservice.server.app import RunningServer
from taskservice.tasks.files import register_file_tasks
from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc
from tests.grpc.helpers import TERMINAL, eventually, field_violations, struct
from tests.support.task_types import Gates, make_registry

WORKERS = 4


def _registry(gates: Gates) -> TaskRegistry:
    registry = make_registry(gates)
    register_file_tasks(registry)

    def swap_then_read(ctx: TaskContext, *, input_fpath: InputFile, swap: str, outside: str) -> str:
        """Swaps its input (`swap`, as submitted) for a link to `outside` once the server checked it, then reads
        the path it was given."""
        assert ctx.data_root is not None
        name = ctx.data_root / swap
        os.rename(name, name.with_name(name.name + ".moved"))
        os.symlink(outside, name)
        with open(input_fpath) as source:
            return source.read()

    def swap_then_write(ctx: TaskContext, *, output_fpath: OutputFile, swap: str, outside: str) -> None:
        """Swaps its output's folder (`swap`) for a link to `outside` once the server checked it, then writes."""
        assert ctx.data_root is not None
        folder = ctx.data_root / swap
        os.rename(folder, folder.with_name(folder.name + "-moved"))
        os.symlink(outside, folder)
        with open(output_fpath, "w") as target:
            target.write("written by the task")

    registry.register("swap_then_read", swap_then_read)
    registry.register("swap_then_write", swap_then_write)
    return registry


@pytest.fixture
def task_types(gates: Gates) -> Callable[[], TaskRegistry]:
    return lambda: _registry(gates)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    (folder / "in").mkdir(parents=True)
    (folder / "in" / "a.txt").write_text("inside")
    (tmp_path / "secret.txt").write_text("outside the data root")
    return folder


async def _final(stub: pb_grpc.TaskServiceStub, task_id: str, timeout: float = 10.0) -> pb.Task:
    deadline = time.monotonic() + timeout
    while True:
        task = (await stub.GetState(pb.GetStateRequest(task_id=task_id))).task
        if task.state in TERMINAL:
            return task
        assert time.monotonic() < deadline, f"task {task_id} still {pb.TaskState.Name(task.state)}"
        await asyncio.sleep(0.01)


async def _assert_full_capacity(server: RunningServer, stub: pb_grpc.TaskServiceStub, gates: Gates) -> None:
    """All workers alive, and as many tasks as workers run at once."""
    assert server.manager.stats().workers == WORKERS
    names = [f"capacity-{i}-{time.monotonic_ns()}" for i in range(WORKERS)]
    ids = [(await stub.Submit(pb.SubmitRequest(task_type="gate", args=struct(name=n)))).task.task_id for n in names]
    await eventually(lambda: all(n in gates.ran for n in names), what=f"{WORKERS} tasks running at once")
    for name in names:
        gates.open(name)
    for task_id in ids:
        assert (await _final(stub, task_id)).state == pb.TASK_STATE_SUCCESS


async def test_a_legal_255_byte_output_name_is_written_and_every_worker_stays(
    server: RunningServer, stub: pb_grpc.TaskServiceStub, gates: Gates, data: Path
) -> None:
    name = "n" * 255
    request = pb.SubmitRequest(task_type="file.copy", args=struct(input_fpath="in/a.txt", output_fpath=f"out/{name}"))
    task = await _final(stub, (await stub.Submit(request)).task.task_id)
    assert task.state == pb.TASK_STATE_SUCCESS, task.error.message
    assert (data / "out" / name).read_text() == "inside"
    await _assert_full_capacity(server, stub, gates)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("input_fpath", "in/" + "n" * 300, "at most 255 bytes"),
        ("output_fpath", "out/" + "n" * 300, "at most 255 bytes"),
        ("input_fpath", "in/" + "d/" * 2500 + "x", "at most 4096 bytes"),
        ("input_fpath", "in/loop", "links (a loop?)"),
        ("output_fpath", "in/loop/out.txt", "links (a loop?)"),
    ],
)
async def test_paths_no_file_system_takes_are_invalid_argument_naming_the_field(
    stub: pb_grpc.TaskServiceStub, data: Path, field: str, value: str, reason: str
) -> None:
    os.symlink("loop", data / "in" / "loop")
    args = {"input_fpath": "in/a.txt", "output_fpath": "out/copy.txt", field: value}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Submit(pb.SubmitRequest(task_type="file.copy", args=struct(**args)))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == [f"args.{field}"]
    assert reason in caught.value.details()
    assert list((await stub.ListTasks(pb.ListTasksRequest())).tasks) == []


async def test_a_link_loop_swapped_in_after_submit_fails_the_task_and_every_worker_stays(
    server: RunningServer, stub: pb_grpc.TaskServiceStub, gates: Gates, data: Path
) -> None:
    (data / "in" / "x").write_text("a file at Submit")
    busy = [f"busy-{i}" for i in range(WORKERS)]
    for name in busy:
        await stub.Submit(pb.SubmitRequest(task_type="gate", args=struct(name=name)))
    await eventually(lambda: all(n in gates.ran for n in busy), what="every worker busy")
    queued = []
    for task_type in ("file.checksum", "file.copy"):
        args = struct(input_fpath="in/x", **({"output_fpath": "out/x"} if task_type == "file.copy" else {}))
        queued.append((await stub.Submit(pb.SubmitRequest(task_type=task_type, args=args))).task.task_id)
    os.unlink(data / "in" / "x")
    os.symlink("x", data / "in" / "x")  # in/x -> in/x
    for name in busy:
        gates.open(name)
    for task_id in queued:
        task = await _final(stub, task_id)
        assert task.state == pb.TASK_STATE_FAILURE
        assert task.error.type == "InvalidPath"
        assert "links (a loop?)" in task.error.message
    await _assert_full_capacity(server, stub, gates)


async def test_a_failure_around_the_handler_ends_the_task_not_the_worker(
    server: RunningServer, stub: pb_grpc.TaskServiceStub, gates: Gates, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("injected: the disk under the data root went away")

    monkeypatch.setattr(DataRoot, "open_args", broken)
    ids = []
    for _ in range(WORKERS + 2):  # more than there are workers: a dead worker would leave some never run
        request = pb.SubmitRequest(task_type="file.checksum", args=struct(input_fpath="in/a.txt"))
        ids.append((await stub.Submit(request)).task.task_id)
    for task_id in ids:
        task = await _final(stub, task_id)
        assert task.state == pb.TASK_STATE_FAILURE
        assert task.error.type == "ServerError"
        assert "injected: the disk under the data root went away" in task.error.message
    monkeypatch.undo()
    await _assert_full_capacity(server, stub, gates)


async def test_an_input_swapped_for_a_link_out_after_the_check_is_never_read(
    stub: pb_grpc.TaskServiceStub, data: Path, tmp_path: Path
) -> None:
    args = struct(input_fpath="in/a.txt", swap="in/a.txt", outside=str(tmp_path / "secret.txt"))
    task = await _final(stub, (await stub.Submit(pb.SubmitRequest(task_type="swap_then_read", args=args))).task.task_id)
    assert task.state == pb.TASK_STATE_SUCCESS, task.error.message
    assert task.result.string_value == "inside"


async def test_an_output_folder_swapped_for_a_link_out_after_the_check_gets_nothing_written_outside(
    stub: pb_grpc.TaskServiceStub, data: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (data / "out").mkdir()
    args = struct(output_fpath="out/result.txt", swap="out", outside=str(outside))
    request = pb.SubmitRequest(task_type="swap_then_write", args=args)
    task = await _final(stub, (await stub.Submit(request)).task.task_id)
    assert task.state == pb.TASK_STATE_SUCCESS, task.error.message
    assert list(outside.iterdir()) == []
    assert (data / "out-moved" / "result.txt").read_text() == "written by the task"


async def test_a_file_swapped_with_a_link_out_while_checksums_run_never_gives_the_outside_digest(
    stub: pb_grpc.TaskServiceStub, data: Path, tmp_path: Path
) -> None:
    """The race as a hostile user runs it: a tight loop swapping a file and a link, against real file.checksum."""
    target = data / "in" / "target"
    link, plain = data / "in" / "target.link", data / "in" / "target.file"
    os.symlink(tmp_path / "secret.txt", link)
    plain.write_text("inside")
    os.link(plain, target)
    outside_digest = hashlib.sha256(b"outside the data root").hexdigest()
    inside_digest = hashlib.sha256(b"inside").hexdigest()
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            for source in (link, plain):
                spare = target.with_name("target.swap")
                if source is link:
                    os.symlink(tmp_path / "secret.txt", spare)
                else:
                    os.link(plain, spare)
                os.replace(spare, target)

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    digests: list[str] = []
    try:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and len(digests) < 400:
            batch = pb.SubmitBatchRequest(
                requests=[
                    pb.SubmitRequest(task_type="file.checksum", args=struct(input_fpath="in/target")) for _ in range(20)
                ]
            )
            results = (await stub.SubmitBatch(batch)).results
            for result in results:
                if result.error_code:  # refused at Submit: the link was in place at that moment
                    assert result.error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0], result.error_message
                    continue
                task = await _final(stub, result.task.task_id)
                if task.state == pb.TASK_STATE_SUCCESS:
                    digests.append(task.result.struct_value.fields["digest"].string_value)
                else:
                    assert task.error.type == "InvalidPath", task.error.message
    finally:
        stop.set()
        swapper.join(5)
    assert outside_digest not in digests
    assert digests and set(digests) == {inside_digest}
