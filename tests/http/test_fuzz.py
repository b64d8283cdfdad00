"""Generated requests to every route /openapi.json describes, against a real server process: whatever the path,
query or body, the answer is never a 5xx, errors are google.rpc.Status bodies, and the server goes on serving."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskservice.client import TaskClient
from tests.support.server import ServerProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    with ServerProcess(tmp / "t.db", extra_args=["--data-root", str(tmp / "data")]) as server:
        server.start()
        with TaskClient(server.address) as client:
            client.submit("sleep", {"seconds": 0}, task_id="known")
        document = requests.get(f"{server.http_url}/openapi.json", timeout=10).json()
        yield server, document


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in document["paths"].items() for method, op in ops.items()]


@st.composite
def http_requests(draw: st.DrawFn, document: dict[str, Any]) -> tuple[str, str, dict[str, Any], Any]:
    path, method, operation = draw(st.sampled_from(_operations(document)))
    for parameter in operation["parameters"]:
        if parameter["in"] == "path":
            value = draw(st.sampled_from(["known", "nope"]) | st.text(min_size=1, max_size=40))
            path = path.replace("{" + parameter["name"] + "}", quote(value, safe=""))
    query = {}
    for parameter in operation["parameters"]:
        if parameter["in"] == "query" and draw(st.booleans()):
            name = parameter["name"].replace("[key]", f"[{draw(st.text(min_size=1, max_size=8))}]")
            query[name] = draw(st.text(max_size=20) | st.integers().map(str) | st.sampled_from(["true", "RUNNING"]))
    body = None
    if "requestBody" in operation and draw(st.booleans()):
        body = draw(
            JSON
            | st.fixed_dictionaries(
                {"taskType": st.sampled_from(["echo", "sleep", "x"])},
                optional={
                    "args": JSON,
                    "priority": JSON,
                    "timeLimit": JSON,
                    "labels": JSON,
                    "after": JSON,
                    "taskId": JSON,
                },
            )
        )
    return method.upper(), path, query, body


def test_generated_requests_never_get_a_server_error(live: tuple[ServerProcess, dict[str, Any]]) -> None:
    server, document = live

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(http_requests(document))
    def one(request: tuple[str, str, dict[str, Any], Any]) -> None:
        method, path, query, body = request
        data = None if body is None else json.dumps(body)
        with requests.request(method, server.http_url + path, params=query, data=data, timeout=10, stream=True,
                              headers={"Content-Type": "application/json"}) as response:  # fmt: skip
            assert response.status_code < 500, (method, path, query, body, response.text[:500])
            if response.status_code >= 400:
                status = response.json()
                assert isinstance(status.get("code"), int) and status.get("message"), status

    one()
    with TaskClient(server.address) as client:  # the generated requests may have deleted "known": a new task
        task_id = client.submit("sleep", {"seconds": 0}).task.task_id
        assert client.wait(task_id, timeout=10).state.value == "SUCCESS", "the server still serves"
    assert requests.get(f"{server.http_url}/v1/tasks/{task_id}", timeout=10).status_code == 200


HOSTILE = st.sampled_from(["text_body", "form_body", "untyped_body", "foreign_origin", "null_origin", "foreign_host"])


def _tasks(server: ServerProcess) -> list[tuple[str, str]]:
    page = requests.get(f"{server.http_url}/v1/tasks", params={"pageSize": "1000"}, timeout=10).json()
    return sorted((task["taskId"], task["state"]) for task in page["tasks"])


def test_requests_from_other_sites_and_bodies_that_are_not_json_change_nothing(
    live: tuple[ServerProcess, dict[str, Any]],
) -> None:
    """What a page of another site can send (a text/plain or form body, its own Origin, a rebound Host) against
    every route, while clients that never finish their headers or never read hold connections open: refused with a
    4xx, never a 5xx, the tasks are as they were, and the server's memory stays bounded."""
    server, document = live
    with TaskClient(server.address) as client:
        client.submit("sleep", {"seconds": 3600}, task_id="long-running")
    # Once it runs, nothing but a request may change it: the claim is not a hostile request's doing.
    wait_until(lambda: ("long-running", "TASK_STATE_RUNNING") in _tasks(server), what="long-running to start")
    before = _tasks(server)
    rss_before = _rss(server)
    host, port = server.http_url.removeprefix("http://").rsplit(":", 1)
    stuck = []
    for i in range(60):  # half never end their headers, half ask for an event stream and never read it
        sock = socket.create_connection((host, int(port)))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        if i % 2:
            sock.sendall(b"GET /v1/events?taskIds=long-running HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        else:
            sock.sendall(b"POST /v1/tasks:stop HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n")
        stuck.append(sock)

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(http_requests(document), HOSTILE)
    def one(request: tuple[str, str, dict[str, Any], Any], how: str) -> None:
        method, path, query, body = request
        data = json.dumps(body if body is not None else {"all": True})
        headers = {"Content-Type": "application/json"}
        if how == "text_body":
            headers["Content-Type"] = "text/plain"
        elif how == "form_body":
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            data = "all=true&taskType=echo"
        elif how == "untyped_body":
            del headers["Content-Type"]
        elif how == "foreign_origin":
            headers["Origin"] = "https://attacker.example"
        elif how == "null_origin":
            headers["Origin"] = "null"
        else:
            headers["Host"] = "rebound.attacker.example"
        with requests.request(method, server.http_url + path, params=query, data=data, timeout=10, stream=True,
                              headers=headers) as response:  # fmt: skip
            assert response.status_code < 500, (how, method, path, response.text[:500])
            if method != "GET" or how == "foreign_host":
                assert 400 <= response.status_code < 500, (how, method, path, response.status_code)

    try:
        one()
    finally:
        for sock in stuck:
            sock.close()
    assert _tasks(server) == before, "no hostile request changed a task"
    growth = _rss(server) - rss_before
    assert growth < 64 * 2**20, f"the server grew by {growth / 2**20:.0f} MiB"
    with TaskClient(server.address) as client:
        client.stop("long-running")


def _rss(server: ServerProcess) -> int:
    assert server.proc is not None
    with open(f"/proc/{server.proc.pid}/statm") as statm:
        return int(statm.read().split()[1]) * 4096
