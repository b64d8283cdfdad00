"""The wheel carries the protos a client is generated from (taskservice/protos/...), and `taskservice protos`
names them where pip installed it: a `pip install taskservice` user generates a client with no checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).parents[2]
CARRIED = [
    "taskservice/protos/taskservice/v1/task_service.proto",
    "taskservice/protos/google/api/annotations.proto",
    "taskservice/protos/google/api/http.proto",
    "taskservice/protos/google/rpc/status.proto",
    "taskservice/protos/google/rpc/error_details.proto",
]


def test_the_wheel_carries_the_protos_and_a_client_generates_from_them(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path / "dist"), str(REPO)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    [wheel] = (tmp_path / "dist").glob("taskservice-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert sorted(set(CARRIED) - names) == [], "every proto a client needs is in the wheel"
        archive.extractall(tmp_path / "site")
    # As installed: the package from the wheel, not this checkout.
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    shown = subprocess.run(
        [sys.executable, "-m", "taskservice", "protos"], capture_output=True, text=True, env=env, cwd=tmp_path,
        timeout=60, check=True,
    ).stdout.strip()  # fmt: skip
    assert Path(shown) == tmp_path / "site" / "taskservice" / "protos"
    out = tmp_path / "generated"
    out.mkdir()
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", shown, f"--python_out={out}", f"--grpc_python_out={out}",
         "taskservice/v1/task_service.proto", "google/rpc/error_details.proto"],
        check=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert (out / "taskservice" / "v1" / "task_service_pb2_grpc.py").is_file()
    assert (out / "google" / "rpc" / "error_details_pb2.py").is_file()
