"""What the HTTP face refuses before any route runs, against a real server: bodies that are not JSON, writes from
another site's page, Hosts a rebound name would send; and the headers that keep the dashboard out of frames."""

from __future__ import annotations

import json

import aiohttp
import pytest

from taskservice.core.model.models import TaskFilter
from taskservice.server.app import RunningServer
from taskservice.server.http import host_rule
from tests.http.conftest import HttpFaces
from tests.support.task_types import Gates

ATTACKER = "http://attacker.example"


async def tasks_count(server: RunningServer) -> int:
    return len(server.manager.list(TaskFilter(), page_size=1000).tasks)


async def running_gate(http: aiohttp.ClientSession, base_url: str, name: str) -> None:
    async with http.post(f"{base_url}/v1/tasks", json={"taskType": "gate", "taskId": name, "args": {"name": name}}):
        pass


@pytest.mark.parametrize(
    ("path", "body", "content_type"),
    [
        ("/v1/tasks", '{"taskType": "echo"}', "text/plain"),
        ("/v1/tasks:stop", '{"all": true, "reason": "x', "text/plain"),  # what a form with enctype=text/plain sends
        ("/v1/tasks:delete", "all=true", "application/x-www-form-urlencoded"),
        ("/v1/tasks", '{"taskType": "echo"}', "multipart/form-data; boundary=x"),
        ("/v1/tasks", '{"taskType": "echo"}', None),  # fetch(no-cors) with an untyped Blob
    ],
)
async def test_a_body_that_is_not_json_is_415_and_changes_nothing(
    http: aiohttp.ClientSession, base_url: str, server: RunningServer, gates: Gates, path: str, body: str,
    content_type: str | None,
) -> None:  # fmt: skip
    await running_gate(http, base_url, "kept")
    before = await tasks_count(server)
    headers = {"Content-Type": content_type} if content_type else {}
    async with http.post(f"{base_url}{path}", data=body.encode(), headers=headers,
                         skip_auto_headers=["Content-Type"]) as response:  # fmt: skip
        assert response.status == 415, await response.text()
        assert "application/json" in (await response.json())["message"]
    assert await tasks_count(server) == before
    assert server.manager.get("kept").state.value in ("PENDING", "RUNNING"), "nothing was stopped"
    gates.open("kept")


@pytest.mark.parametrize("headers", [{"Origin": ATTACKER}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}])
async def test_a_write_from_another_sites_page_is_403_and_changes_nothing(
    http: aiohttp.ClientSession, base_url: str, server: RunningServer, gates: Gates, headers: dict[str, str]
) -> None:
    await running_gate(http, base_url, "victim")
    writes = [("POST", "/v1/tasks:stop", {"all": True}), ("POST", "/v1/tasks", {"taskType": "echo"}),
              ("POST", "/v1/tasks/victim:stop", {}), ("DELETE", "/v1/tasks/victim", None)]  # fmt: skip
    for method, path, body in writes:
        async with http.request(method, f"{base_url}{path}", json=body, headers=headers) as response:
            assert response.status == 403, (method, path, await response.text())
            assert (await response.json())["code"] == 7
    assert await tasks_count(server) == 1
    assert server.manager.get("victim").state.value in ("PENDING", "RUNNING")
    gates.open("victim")


async def test_writes_from_the_servers_own_pages_the_cors_origin_and_non_browsers_go_through(
    http: aiohttp.ClientSession, server: RunningServer, http_faces: HttpFaces
) -> None:
    base_url = await http_faces.start(server, cors_origin="https://ops.example.com")
    port = base_url.rsplit(":", 1)[1]
    for origin in (base_url, f"http://localhost:{port}", "https://ops.example.com", None):
        headers = {"Origin": origin} if origin else {}
        if origin and "localhost" in origin:
            headers["Host"] = f"localhost:{port}"
        async with http.post(f"{base_url}/v1/tasks", json={"taskType": "echo"}, headers=headers) as response:
            assert response.status == 200, (origin, await response.text())


@pytest.mark.parametrize(
    "host", ["attacker.example", "attacker.example:8080", "10.0.0.1", "localhost.attacker.example"]
)
async def test_a_host_that_does_not_name_loopback_is_refused_before_anything_is_read(
    http: aiohttp.ClientSession, base_url: str, host: str
) -> None:
    async with http.post(f"{base_url}/v1/tasks", json={"taskType": "echo", "taskId": "secret"}):
        pass
    for path in ("/v1/tasks", "/v1/tasks/secret", "/", "/static/dashboard.js", "/v1/tasks/secret/events"):
        async with http.get(f"{base_url}{path}", headers={"Host": host}) as response:
            assert response.status == 403, (path, response.status)
            assert "secret" not in await response.text()


async def test_loopback_hosts_and_the_ones_the_operator_allows_are_answered(
    http: aiohttp.ClientSession, server: RunningServer, http_faces: HttpFaces
) -> None:
    base_url = await http_faces.start(server, allowed_hosts=("tasks.example.com", "*.corp.example"))
    port = base_url.rsplit(":", 1)[1]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "LOCALHOST.", "tasks.example.com",
                 f"build.corp.example:{port}"):  # fmt: skip
        async with http.get(f"{base_url}/v1/tasks", headers={"Host": host}) as response:
            assert response.status == 200, host
    async with http.get(f"{base_url}/v1/tasks", headers={"Host": "corp.example.attacker"}) as response:
        assert response.status == 403


def test_a_listener_elsewhere_than_loopback_answers_any_host_unless_the_operator_names_some() -> None:
    assert host_rule("0.0.0.0").allows("tasks.example.com")
    assert host_rule("[::]").allows("anything")
    assert not host_rule("0.0.0.0", ["tasks.example.com"]).allows("attacker.example")
    assert host_rule("localhost").allows("127.0.0.1") and not host_rule("localhost").allows("attacker.example")
    assert host_rule("127.0.0.1", ["*"]).allows("attacker.example")


async def test_every_answer_keeps_out_of_frames_and_the_dashboard_runs_only_its_own_script(
    http: aiohttp.ClientSession, base_url: str
) -> None:
    for path in ("/", "/static/dashboard.js", "/v1/tasks", "/v1/tasks/nope"):
        async with http.get(f"{base_url}{path}") as response:
            assert response.headers["X-Frame-Options"] == "DENY", path
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            policy = response.headers["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
            assert "unsafe-inline" not in policy


async def test_the_legacy_call_takes_its_old_clients_untyped_json_but_no_form(
    http: aiohttp.ClientSession, server: RunningServer, http_faces: HttpFaces
) -> None:
    base_url = await http_faces.start(server, legacy_task_type="echo")
    body = json.dumps({"task_no": 7, "args": {}}).encode()
    async with http.post(f"{base_url}/API/tasks", data=body, skip_auto_headers=["Content-Type"]) as response:
        assert response.status == 200, await response.text()
    async with http.post(f"{base_url}/API/tasks", data=body, headers={"Content-Type": "text/plain"}) as response:
        assert response.status == 415
    async with http.post(f"{base_url}/API/tasks", data=body, headers={"Content-Type": "application/json",
                                                                       "Origin": ATTACKER}) as response:  # fmt: skip
        assert response.status == 403
