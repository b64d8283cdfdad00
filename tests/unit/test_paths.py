"""Path args stay inside the data root; outputs appear only when a task succeeds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from taskservice.core.errors import InvalidRequest
from taskservice.core.models import TaskState
from taskservice.core.paths import DataRoot, PathRole
from taskservice.core.store import MemoryStore
from tests.support.engine import wait_final
from tests.support.waiting import wait_until
from tests.unit.conftest import MakeManager


@pytest.fixture
def root(tmp_path: Path) -> DataRoot:
    data = tmp_path / "data"
    (data / "in").mkdir(parents=True)
    (data / "in" / "a.txt").write_text("hello")
    (tmp_path / "secret.txt").write_text("not yours")
    os.symlink(tmp_path / "secret.txt", data / "in" / "link-out.txt")
    os.symlink(tmp_path, data / "escape-dir")
    os.symlink(data / "in" / "a.txt", data / "in" / "link-in.txt")
    return DataRoot(data)


@pytest.mark.parametrize(
    "value",
    [
        "../secret.txt",
        "in/../../secret.txt",
        "/etc/passwd",
        "in/link-out.txt",  # a symlink inside the root pointing out
        "escape-dir/secret.txt",  # through a symlinked folder
        "",
        "in/\x00a.txt",
    ],
)
def test_escapes_of_every_kind_are_refused_naming_the_field(root: DataRoot, value: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        root.resolve("args.input_fpath", value, PathRole.INPUT)
    assert [field for field, _ in caught.value.field_violations] == ["args.input_fpath"]


def test_paths_inside_the_root_resolve_to_absolute_paths(root: DataRoot) -> None:
    assert root.resolve("f", "in/a.txt", PathRole.INPUT) == root.root / "in" / "a.txt"
    assert root.resolve("f", str(root.root / "in" / "a.txt"), PathRole.INPUT) == root.root / "in" / "a.txt"
    assert root.resolve("f", "in/link-in.txt", PathRole.INPUT) == root.root / "in" / "a.txt"
    assert root.resolve("f", "out/new.bin", PathRole.OUTPUT) == root.root / "out" / "new.bin"


def test_a_missing_input_or_an_output_that_is_a_folder_is_refused(root: DataRoot) -> None:
    with pytest.raises(InvalidRequest, match="not found"):
        root.resolve("args.input_fpath", "in/missing.txt", PathRole.INPUT)
    with pytest.raises(InvalidRequest, match="folder"):
        root.resolve("args.output_fpath", "in", PathRole.OUTPUT)


def test_submit_refuses_escaping_paths_and_stores_nothing(make_manager: MakeManager, root: DataRoot) -> None:
    store = MemoryStore()
    manager = make_manager(store, data_root=root)
    with pytest.raises(InvalidRequest) as caught:
        manager.submit("read_input", {"input_fpath": "in/link-out.txt"})
    assert caught.value.field_violations[0][0] == "args.input_fpath"
    with pytest.raises(InvalidRequest):
        manager.submit("write_output", {"output_fpath": "../outside.txt"})
    assert store.count() == 0
    final = wait_final(manager, manager.submit("read_input", {"input_fpath": "in/a.txt"}).task.task_id)
    assert final.result == "hello"
    assert final.args == {"input_fpath": "in/a.txt"}, "the task keeps the path as submitted"


def test_output_appears_only_on_success(make_manager: MakeManager, root: DataRoot) -> None:
    manager = make_manager(data_root=root)
    final = wait_final(manager, manager.submit("write_output", {"output_fpath": "out/ok.txt"}).task.task_id)
    assert final.state is TaskState.SUCCESS
    assert (root.root / "out" / "ok.txt").read_text() == "data"
    assert list((root.root / "out").iterdir()) == [root.root / "out" / "ok.txt"], "no temporary file left"


def test_a_failed_task_leaves_no_half_file(make_manager: MakeManager, root: DataRoot) -> None:
    manager = make_manager(data_root=root)
    task_id = manager.submit("write_output", {"output_fpath": "out/half.txt", "then": "fail"}).task.task_id
    assert wait_final(manager, task_id).state is TaskState.FAILURE
    assert list((root.root / "out").iterdir()) == []


def test_a_stopped_task_leaves_no_half_file_unless_asked_to_keep_it(
    make_manager: MakeManager, root: DataRoot, gates
) -> None:
    manager = make_manager(data_root=root)
    for keep, name in ((False, "gone.txt"), (True, "kept.txt")):
        gates.ran.clear()
        args = {"output_fpath": f"out/{name}", "then": "wait", **({"clear_nodes": False} if keep else {})}
        task_id = manager.submit("write_output", args).task.task_id
        wait_until(lambda: "writing" in gates.ran, what="the handler is writing")
        manager.stop(task_id)
        assert wait_final(manager, task_id).state is TaskState.REVOKED
        assert not (root.root / "out" / name).exists()
        partial = list((root.root / "out").glob(f".{name}.*.part"))
        assert len(partial) == (1 if keep else 0)
        if keep:
            assert partial[0].read_text() == "data"


def test_clear_nodes_is_only_for_task_types_with_outputs(make_manager: MakeManager, root: DataRoot) -> None:
    manager = make_manager(data_root=root)
    with pytest.raises(InvalidRequest):
        manager.submit("echo", {"clear_nodes": False})
    with pytest.raises(InvalidRequest):
        manager.submit("write_output", {"output_fpath": "out/x", "clear_nodes": "no"})
