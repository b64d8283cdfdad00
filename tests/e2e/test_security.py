"""TLS, mutual TLS and bearer tokens on a real server process, through the Python client and taskctl."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from taskservice.client import TaskClient, TaskServiceError, TaskState
from tests.support.certs import Pki, make_pki
from tests.support.server import ServerProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def health_status(address: str) -> int:
    import grpc

    with grpc.insecure_channel(address) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status


def tls_server(tmp_path: Path, pki: Pki, *extra: str) -> ServerProcess:
    args = ["--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key), *extra]
    return ServerProcess(tmp_path / "t.db", extra_args=args)


def start_tls(server: ServerProcess) -> None:
    # The plaintext health probe cannot reach a TLS server; the port file is written once it serves.
    server.start(health_check=False)


def test_tls_serves_clients_that_trust_its_ca_only(tmp_path: Path, pki: Pki) -> None:
    with tls_server(tmp_path, pki) as server:
        start_tls(server)
        with TaskClient(server.address, tls_ca=str(pki.ca)) as client:
            task_id = client.submit("demo", {"steps": 1, "step_seconds": 0.01}).task.task_id
            assert client.wait(task_id, timeout=30).state is TaskState.SUCCESS
        with TaskClient(server.address, timeout=3) as plaintext, pytest.raises(TaskServiceError) as caught:
            plaintext.get(task_id)
        assert caught.value.code is not None and caught.value.code.name == "UNAVAILABLE"


def test_with_tls_the_http_face_is_https_with_the_same_certificate(tmp_path: Path, pki: Pki) -> None:
    import requests

    with tls_server(tmp_path, pki) as server:
        start_tls(server)
        https = server.http_url.replace("http://", "https://")
        answer = requests.post(f"{https}/v1/tasks", json={"taskType": "noop"}, verify=str(pki.ca), timeout=10)
        assert answer.status_code == 200 and answer.json()["created"] is True
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"{server.http_url}/v1/tasks", timeout=5)  # plaintext HTTP is not served


def test_mutual_tls_requires_a_client_certificate_from_the_client_ca(tmp_path: Path, pki: Pki) -> None:
    with tls_server(tmp_path, pki, "--tls-client-ca", str(pki.ca)) as server:
        trusted = {"tls_cert": str(pki.client.cert), "tls_key": str(pki.client.key)}
        start_tls(server)
        with TaskClient(server.address, tls_ca=str(pki.ca), **trusted) as client:
            assert client.submit("demo", {"steps": 0}).created
        stranger = {"tls_cert": str(pki.stranger.cert), "tls_key": str(pki.stranger.key)}
        for options, hint in (({}, "requires a client certificate"), (stranger, "does not trust this client")):
            with TaskClient(server.address, tls_ca=str(pki.ca), timeout=3, **options) as client:
                with pytest.raises(TaskServiceError) as caught:
                    client.list()
                assert caught.value.code is not None and caught.value.code.name == "UNAVAILABLE"
                assert hint in str(caught.value)
                with pytest.raises(TaskServiceError, match=hint):
                    list(client.watch("any-task", timeout=3))
        refused = taskctl(server.address, "--tls-ca", str(pki.ca), "list")
        assert refused.returncode == 9 and "requires a client certificate" in refused.stderr


def taskctl(address: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskctl", "--server", address, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("TASKSERVICE_")}, **(env or {})},
        check=False,
    )


def test_tokens_missing_wrong_right_and_rotated_without_a_restart(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("# ops team\nold-token\n")
    with ServerProcess(tmp_path / "t.db", extra_args=["--auth-token-file", str(tokens)]) as server:
        server.start()  # its health probe needs no token: probes stay open
        assert health_status(server.address) == health_pb2.HealthCheckResponse.SERVING

        with TaskClient(server.address) as anonymous, pytest.raises(TaskServiceError) as caught:
            anonymous.submit("demo", {"steps": 0}, task_id="sneaky")
        assert caught.value.code is not None and caught.value.code.name == "UNAUTHENTICATED"
        assert "bearer token" in caught.value.message
        with TaskClient(server.address, token="guess") as wrong, pytest.raises(TaskServiceError) as caught:
            wrong.list()
        assert caught.value.code is not None and caught.value.code.name == "UNAUTHENTICATED"
        with TaskClient(server.address, token="old-token") as client:
            assert client.submit("demo", {"steps": 0}, task_id="legit").created
            with pytest.raises(TaskServiceError) as caught:
                client.get("sneaky")  # the refused Submit changed nothing
            assert caught.value.code is not None and caught.value.code.name == "NOT_FOUND"

        denied = taskctl(server.address, "get", "legit")
        assert denied.returncode == 8 and "bearer token" in denied.stderr
        assert taskctl(server.address, "--token", "old-token", "get", "legit").returncode == 0
        assert taskctl(server.address, "get", "legit", env={"TASKSERVICE_TOKEN": "old-token"}).returncode == 0

        # Rotate: the new token is added and the old one removed, then SIGHUP; no restart.
        tokens.write_text("new-token\n")
        assert server.proc is not None
        pid = server.proc.pid
        os.kill(pid, signal.SIGHUP)
        wait_until(lambda: "reloaded 1 bearer tokens" in server.log(), what="the token file reloaded")
        with TaskClient(server.address, token="new-token") as client:
            assert client.get("legit").task_id == "legit"
        with TaskClient(server.address, token="old-token") as client, pytest.raises(TaskServiceError) as caught:
            client.get("legit")
        assert caught.value.code is not None and caught.value.code.name == "UNAUTHENTICATED"
        assert server.running and server.proc.pid == pid


def test_unreadable_security_files_stop_the_server_before_it_touches_the_database(tmp_path: Path) -> None:
    for args in (["--auth-token-file", str(tmp_path / "missing")], ["--tls-cert", "/nope.crt", "--tls-key", "/nope"]):
        result = subprocess.run(
            [sys.executable, "-m", "taskservice", "serve", "--listen", "127.0.0.1:0", "--db", str(tmp_path / "t.db"),
             *args],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 5, result.stderr
        assert "cannot read" in result.stderr
        assert not (tmp_path / "t.db").exists()
