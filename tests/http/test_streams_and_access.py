"""Server-Sent Events (with a Last-Event-ID resume), logs over HTTP, bearer tokens and CORS, against a real server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from taskservice.server.app import RunningServer
from taskservice.server.auth import TokenFile
from tests.http.conftest import HttpFaces
from tests.support.task_types import Gates


async def sse(http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None) -> list[dict[str, str]]:
    """Every event of an SSE stream until it ends: {id, event, data}."""
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    async with http.get(url, headers=headers or {}) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/event-stream")
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if not line:
                if current:
                    events.append(current)
                current = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                current[key] = value
    return events


async def test_events_stream_every_state_change_with_sequences_and_resume_after_last_event_id(
    http: aiohttp.ClientSession, base_url: str, server: RunningServer, gates: Gates
) -> None:
    await http.post(
        f"{base_url}/v1/tasks", json={"taskType": "progress_then_wait", "taskId": "s", "args": {"name": "s"}}
    )
    watching = asyncio.ensure_future(sse(http, f"{base_url}/v1/tasks/s/events"))
    await _until(lambda: server.manager.stats().watchers >= 1)
    attached_at = _sequence(server, "s")
    # A few progress reports while it is watched (on a busy machine the handler may be slow to make them).
    await _until(lambda: _sequence(server, "s") >= attached_at + 3)
    gates.open("s")
    events = await watching
    sequences = [int(e["id"]) for e in events]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
    states = [json.loads(e["data"])["state"] for e in events if e["event"] == "state"]
    assert states[-1] == "TASK_STATE_SUCCESS" and "TASK_STATE_RUNNING" in states
    assert any(e["event"] == "progress" for e in events), "progress events come through too"
    resumed = await sse(http, f"{base_url}/v1/tasks/s/events", headers={"Last-Event-ID": events[-2]["id"]})
    assert [e["id"] for e in resumed] == [events[-1]["id"]], "a reconnect gets what came after its last event"
    assert await sse(http, f"{base_url}/v1/tasks/s/events", headers={"Last-Event-ID": events[-1]["id"]}) == []
    async with http.get(f"{base_url}/v1/tasks/nope/events") as missing:
        assert missing.status == 404 and (await missing.json())["code"] == 5
    async with http.get(f"{base_url}/v1/tasks/s/events", headers={"Last-Event-ID": "abc"}) as bad:
        assert bad.status == 400


async def test_a_watcher_that_vanishes_mid_stream_is_let_go(
    http: aiohttp.ClientSession, base_url: str, server: RunningServer, gates: Gates
) -> None:
    await http.post(f"{base_url}/v1/tasks", json={"taskType": "gate", "taskId": "v", "args": {"name": "v"}})
    async with aiohttp.ClientSession() as other:
        response = await other.get(f"{base_url}/v1/tasks/v/events")
        await response.content.readline()
        await _until(lambda: server.manager.stats().watchers >= 1)
        response.close()
    await _until(lambda: server.manager.stats().watchers == 0)
    gates.open("v")
    async with http.get(f"{base_url}/v1/tasks/v:wait", params={"timeout": "10s"}) as done:
        assert (await done.json())["task"]["state"] == "TASK_STATE_SUCCESS"


async def test_logs_come_as_text_from_an_offset(http: aiohttp.ClientSession, base_url: str, gates: Gates) -> None:
    gates.open("c")
    await http.post(
        f"{base_url}/v1/tasks", json={"taskType": "chatty", "taskId": "c", "args": {"name": "c", "lines": 3}}
    )
    await http.get(f"{base_url}/v1/tasks/c:wait", params={"timeout": "10s"})
    async with http.get(f"{base_url}/v1/tasks/c/logs") as response:
        text = await response.text()
    assert response.status == 200 and text.count("\n") == 3 and response.headers["X-Log-Offset"] == "0"
    async with http.get(f"{base_url}/v1/tasks/c/logs", params={"offset": "5", "follow": "true"}) as response:
        assert await response.text() == text[5:] and response.headers["X-Log-Offset"] == "5"


async def test_with_tokens_every_api_route_needs_the_bearer_header(
    http: aiohttp.ClientSession, server: RunningServer, http_faces: HttpFaces, tmp_path: Path
) -> None:
    token_file = tmp_path / "tokens"
    token_file.write_text("s3cret-token\n")
    url = await http_faces.start(server, tokens=TokenFile(token_file))
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Cookie": "token=s3cret-token"}):
        async with http.post(f"{url}/v1/tasks", json={"taskType": "echo"}, headers=headers) as refused:
            assert refused.status == 401 and (await refused.json())["code"] == 16, headers
            assert refused.headers["WWW-Authenticate"] == "Bearer"
    good = {"Authorization": "Bearer s3cret-token"}
    async with http.post(f"{url}/v1/tasks", json={"taskType": "echo"}, headers=good) as accepted:
        assert accepted.status == 200
    async with http.get(f"{url}/openapi.json") as document:
        assert document.status == 200, "the API's description is open"


async def test_cors_answers_only_the_named_origin(
    http: aiohttp.ClientSession, server: RunningServer, http_faces: HttpFaces
) -> None:
    url = await http_faces.start(server, cors_origin="https://ops.example.com")
    async with http.get(f"{url}/v1/tasks", headers={"Origin": "https://ops.example.com"}) as allowed:
        assert allowed.headers["Access-Control-Allow-Origin"] == "https://ops.example.com"
    async with http.get(f"{url}/v1/tasks", headers={"Origin": "https://evil.example.com"}) as other:
        assert "Access-Control-Allow-Origin" not in other.headers
    async with http.options(f"{url}/v1/tasks", headers={"Origin": "https://ops.example.com"}) as preflight:
        assert preflight.status == 204 and "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    async with http.get(
        f"{await http_faces.start(server)}/v1/tasks", headers={"Origin": "https://ops.example.com"}
    ) as off:
        assert "Access-Control-Allow-Origin" not in off.headers, "CORS is off unless an origin is named"


async def _until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition did not hold in time"
        await asyncio.sleep(0.01)


async def test_many_tasks_stream_as_one_and_unknown_ids_are_404_unless_left_out(
    http: aiohttp.ClientSession, base_url: str
) -> None:
    for name in ("m1", "m2"):
        await http.post(f"{base_url}/v1/tasks", json={"taskType": "echo", "taskId": name, "args": {"value": name}})
    events = await sse(http, f"{base_url}/v1/events?taskIds=m1,m2")
    assert {json.loads(e["data"])["taskId"] for e in events} == {"m1", "m2"}
    assert sum(json.loads(e["data"])["state"] == "TASK_STATE_SUCCESS" for e in events) == 2
    async with http.get(f"{base_url}/v1/events", params={"taskIds": "m1,gone"}) as missing:
        assert missing.status == 404 and "gone" in (await missing.json())["message"]
    left_out = await sse(http, f"{base_url}/v1/events?taskIds=m1,gone&ignoreMissing=true")
    assert {json.loads(e["data"])["taskId"] for e in left_out} == {"m1"}


def _sequence(server: RunningServer, task_id: str) -> int:
    task = server.manager.get_now(task_id)
    return task.event_sequence if task is not None else 0
