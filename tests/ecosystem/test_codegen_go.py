"""A Go client generated from the contract with Debian's protoc-gen-go (1.28) and protoc-gen-go-grpc, built with
Debian's Go and the gRPC, protobuf and genproto sources Debian packages (GOPATH mode, nothing downloaded): it
submits a task and watches it to its end, and stops another, against a real server. The proto's go_package is
used as it is. scripts/ensure-codegen.sh installs the packages (CI runs it)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.ecosystem.generated_clients import check_client_against_a_real_server, protos_folder

pytestmark = pytest.mark.slow

SOURCE = Path(__file__).parent / "go" / "main.go"
# Where Debian puts the Go sources its golang-*-dev packages carry.
DEBIAN_GOPATH = Path("/usr/share/gocode")
NEEDED = ["google.golang.org/grpc", "google.golang.org/protobuf", "google.golang.org/genproto/googleapis/api"]


def _toolchain() -> dict[str, str]:
    found = {name: shutil.which(name) or "" for name in ("protoc", "protoc-gen-go", "protoc-gen-go-grpc", "go")}
    missing = [name for name, path in found.items() if not path]
    missing += [package for package in NEEDED if not (DEBIAN_GOPATH / "src" / package).is_dir()]
    if missing:
        why = f"{', '.join(missing)} missing: scripts/ensure-codegen.sh installs Debian's Go and its gRPC packages"
        if os.environ.get("CI") == "true":
            raise AssertionError(why)
        pytest.skip(why)
    return found


def test_a_go_client_built_from_the_protos_submits_watches_and_stops(tmp_path: Path) -> None:
    tools = _toolchain()
    protos = protos_folder()
    gopath = tmp_path / "gopath"
    (gopath / "src" / "example.com" / "client").mkdir(parents=True)
    shutil.copy(SOURCE, gopath / "src" / "example.com" / "client" / "main.go")
    subprocess.run(
        [tools["protoc"], "-I", protos, f"--go_out={gopath / 'src'}", f"--go-grpc_out={gopath / 'src'}",
         "taskservice/v1/task_service.proto"],
        check=True, timeout=120,
    )  # fmt: skip
    # GOPATH mode: the generated package and the client, then Debian's sources; no module is downloaded.
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": f"{gopath}:{DEBIAN_GOPATH}", "GOFLAGS": "",
           "GOCACHE": str(tmp_path / "cache"), "GOPROXY": "off"}  # fmt: skip
    binary = tmp_path / "client"
    built = subprocess.run([tools["go"], "build", "-o", str(binary), "example.com/client"], env=env, cwd=gopath,
                           capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert built.returncode == 0, built.stderr[-4000:]
    check_client_against_a_real_server(binary, tmp_path)
