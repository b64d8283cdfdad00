"""Path args stay inside the data root; outputs appear only when a task succeeds."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from taskservice.core.handlers.paths import DataRoot, PathRole
from taskservice.core.model.errors import InvalidRequest
from taskservice.core.model.models import TaskState
from tests.support.engine import stored, wait_final
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
        root.check("args.input_fpath", value, PathRole.INPUT)
    assert [field for field, _ in caught.value.field_violations] == ["args.input_fpath"]


def _read(root: DataRoot, value: str) -> str:
    opened = root.open_args([("f", PathRole.INPUT)], {"f": value}, "tag")
    try:
        with open(opened.paths["f"]) as source:
            return source.read()
    finally:
        opened.close()


def test_paths_inside_the_root_open_the_file_they_name(root: DataRoot) -> None:
    for value in ("in/a.txt", str(root.root / "in" / "a.txt"), "in/link-in.txt", "in/./../in/a.txt"):
        root.check("f", value, PathRole.INPUT)
        assert _read(root, value) == "hello", value
    root.check("f", "out/new.bin", PathRole.OUTPUT)
    root.check("f", "in", PathRole.DIRECTORY)


def test_a_missing_input_or_an_output_that_is_a_folder_is_refused(root: DataRoot) -> None:
    with pytest.raises(InvalidRequest, match="does not exist"):
        root.check("args.input_fpath", "in/missing.txt", PathRole.INPUT)
    with pytest.raises(InvalidRequest, match="folder"):
        root.check("args.output_fpath", "in", PathRole.OUTPUT)
    with pytest.raises(InvalidRequest, match="not a regular file"):
        root.check("args.input_fpath", "in", PathRole.INPUT)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("in/" + "n" * 300, "at most 255 bytes"),
        ("in/" + "d/" * 2500 + "x", "at most 4096 bytes"),
        ("in/loop", "links (a loop?)"),
        ("in/loop/x", "links (a loop?)"),
        ("in/fifo", "not a regular file"),
        ("in/a.txt/x", "is not a folder"),
    ],
)
def test_paths_no_file_system_takes_are_refused_naming_the_field(root: DataRoot, value: str, reason: str) -> None:
    os.symlink("loop", root.root / "in" / "loop")
    os.mkfifo(root.root / "in" / "fifo")
    for role in (PathRole.INPUT, PathRole.OUTPUT) if not value.endswith("fifo") else (PathRole.INPUT,):
        if role is PathRole.OUTPUT and value == "in/loop":
            continue  # an output's own name is never followed: it is replaced
        with pytest.raises(InvalidRequest, match=re.escape(reason)) as caught:
            root.check("args.p", value, role)
        assert [field for field, _ in caught.value.field_violations] == ["args.p"]


def test_an_input_swapped_for_a_link_after_it_was_opened_is_still_the_checked_file(
    root: DataRoot, tmp_path: Path
) -> None:
    opened = root.open_args([("f", PathRole.INPUT)], {"f": "in/a.txt"}, "tag")
    try:
        os.rename(root.root / "in" / "a.txt", root.root / "in" / "moved.txt")
        os.symlink(tmp_path / "secret.txt", root.root / "in" / "a.txt")
        with open(opened.paths["f"]) as source:
            assert source.read() == "hello"
    finally:
        opened.close()


def test_an_output_folder_swapped_for_a_link_out_after_it_was_opened_gets_nothing_written_outside(
    root: DataRoot, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (root.root / "out").mkdir()
    opened = root.open_args([("o", PathRole.OUTPUT)], {"o": "out/result.txt"}, "tag")
    try:
        os.rename(root.root / "out", root.root / "out-moved")
        os.symlink(outside, root.root / "out")
        with open(opened.paths["o"], "w") as target:
            target.write("result")
        opened.commit_outputs()
    finally:
        opened.close()
    assert list(outside.iterdir()) == []
    assert (root.root / "out-moved" / "result.txt").read_text() == "result"


def test_a_legal_255_byte_output_name_is_staged_and_moved_into_place(root: DataRoot) -> None:
    name = "é" * 127 + "x"  # 255 bytes of UTF-8
    opened = root.open_args([("o", PathRole.OUTPUT)], {"o": f"out/{name}"}, "tag" * 50)
    try:
        with open(opened.paths["o"], "w") as target:
            target.write("long")
        opened.commit_outputs()
    finally:
        opened.close()
    assert (root.root / "out" / name).read_text() == "long"
    assert os.listdir(root.root / "out") == [name]


def test_submit_refuses_escaping_paths_and_stores_nothing(make_manager: MakeManager, root: DataRoot) -> None:
    manager = make_manager(data_root=root)
    with pytest.raises(InvalidRequest) as caught:
        manager.submit("read_input", {"input_fpath": "in/link-out.txt"})
    assert caught.value.field_violations[0][0] == "args.input_fpath"
    with pytest.raises(InvalidRequest):
        manager.submit("write_output", {"output_fpath": "../outside.txt"})
    assert stored(manager.board) == 0
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


def test_a_folder_swapped_for_a_link_out_after_it_was_opened_is_still_the_checked_folder(
    root: DataRoot, tmp_path: Path
) -> None:
    (root.root / "work").mkdir()
    (root.root / "work" / "mine.txt").write_text("inside")
    opened = root.open_args([("d", PathRole.DIRECTORY)], {"d": "work"}, "tag")
    try:
        os.rename(root.root / "work", root.root / "work-moved")
        os.symlink(tmp_path, root.root / "work")
        assert sorted(os.listdir(opened.paths["d"])) == ["mine.txt"]
    finally:
        opened.close()
