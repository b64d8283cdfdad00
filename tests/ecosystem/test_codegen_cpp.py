"""A C++ client generated from the contract with Debian's gRPC (protoc, grpc_cpp_plugin, libgrpc++-dev), as a new
C++ user would make it, from the protos `taskservice protos` names: it submits a task and watches it to its end,
and stops another, against a real server. scripts/ensure-codegen.sh installs the packages (CI runs it)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.ecosystem.generated_clients import check_client_against_a_real_server, protos_folder

pytestmark = pytest.mark.slow

SOURCE = Path(__file__).parent / "cpp" / "client.cc"
# The contract, and what it imports beyond protobuf's own (the HTTP routes' options).
PROTOS = ["taskservice/v1/task_service.proto", "google/api/annotations.proto", "google/api/http.proto"]


def _toolchain() -> dict[str, str]:
    found = {name: shutil.which(name) or "" for name in ("protoc", "grpc_cpp_plugin", "pkg-config", "g++")}
    missing = [name for name, path in found.items() if not path]
    if not missing and subprocess.run(["pkg-config", "--exists", "grpc++"], check=False).returncode != 0:
        missing.append("grpc++ (libgrpc++-dev)")
    if missing:
        why = f"{', '.join(missing)} missing: scripts/ensure-codegen.sh installs Debian's gRPC for C++"
        if os.environ.get("CI") == "true":
            raise AssertionError(why)
        pytest.skip(why)
    return found


def _build(tmp_path: Path, tools: dict[str, str]) -> Path:
    protos = protos_folder()
    generated = tmp_path / "gen"
    generated.mkdir()
    subprocess.run(
        [tools["protoc"], "-I", protos, f"--cpp_out={generated}", f"--grpc_out={generated}",
         f"--plugin=protoc-gen-grpc={tools['grpc_cpp_plugin']}", *PROTOS],
        check=True, timeout=120,
    )  # fmt: skip
    flags = subprocess.run(
        ["pkg-config", "--cflags", "--libs", "grpc++", "protobuf"], capture_output=True, text=True, check=True
    ).stdout.split()
    sources = [str(SOURCE), *map(str, sorted(generated.rglob("*.cc")))]
    binary = tmp_path / "client"
    built = subprocess.run(
        [tools["g++"], "-std=c++17", "-O0", "-I", str(generated), *sources, "-o", str(binary), *flags],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-4000:]
    return binary


def test_a_cpp_client_built_from_the_protos_submits_watches_and_stops(tmp_path: Path) -> None:
    binary = _build(tmp_path, _toolchain())
    check_client_against_a_real_server(binary, tmp_path)
