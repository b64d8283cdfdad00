"""The README's task-type example, installed as a package: found through the taskservice.tasks entry point."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from taskservice.client import InvalidArgument, TaskClient, TaskState
from tests.support.server import ServerProcess

pytestmark = pytest.mark.slow
PACKAGE = Path(__file__).parents[2] / "examples" / "mycompany-tasks"


@pytest.fixture(scope="module")
def site_packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mycompany-tasks installed by pip into a folder of its own (the test venv stays as it is)."""
    work = tmp_path_factory.mktemp("plugin")
    source = work / "src"
    shutil.copytree(PACKAGE, source)  # pip builds in the source folder; keep the repo clean
    target = work / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(source)],
        check=True, timeout=300, capture_output=True,
    )  # fmt: skip
    assert (target / "mycompany_tasks").is_dir()
    return target


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_an_installed_package_adds_its_task_types(tmp_path: Path, site_packages: Path, isolation: str) -> None:
    """In threads, and in worker processes (which import the package's module by name)."""
    data = tmp_path / "data"
    (data / "in").mkdir(parents=True)
    (data / "in" / "book.txt").write_text(("the cat sat on the mat and the dog sat too\n" * 3000).strip())
    env = {"PYTHONPATH": os.pathsep.join([str(site_packages), os.environ.get("PYTHONPATH", "")])}
    args = ["--data-root", str(data), "--isolation", isolation, "--process-workers", "1"]
    with ServerProcess(tmp_path / "t.db", extra_args=args, env=env) as server:
        server.start()
        assert "loading task types from mycompany" in server.log()
        with TaskClient(server.address) as client:
            task = client.submit(
                "mycompany.word_count", {"input_fpath": "in/book.txt", "output_fpath": "out/counts.json", "top": 2}
            ).task
            final = client.wait(task.task_id, timeout=60)
            assert final.state is TaskState.SUCCESS, final.error
            assert final.result == {"words": 33000, "distinct": 8, "top": [["the", 9000], ["sat", 6000]]}
            assert json.loads((data / "out" / "counts.json").read_text())["mat"] == 3000
            assert b"counted 33000 words" in b"".join(c.data for c in client.logs(task.task_id))
            listed = next(kind for kind in client.task_types() if kind.name == "mycompany.word_count")
            assert {arg.name: arg.description for arg in listed.args}["top"].startswith("How many of the most common")
            with pytest.raises(InvalidArgument, match=r"args\.top"):
                client.submit("mycompany.word_count", {"input_fpath": "in/book.txt", "output_fpath": "o", "top": 1.5})
