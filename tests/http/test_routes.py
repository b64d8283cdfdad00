"""The HTTP/JSON routes against a real server: canonical JSON both ways, the one error table, and paging."""

from __future__ import annotations

from datetime import datetime

import aiohttp
import pytest
from yarl import URL

from taskservice.server.app import RunningServer
from tests.http.conftest import HttpFaces
from tests.support.task_types import Gates


async def call(http: aiohttp.ClientSession, method: str, url: str, **kwargs: object) -> tuple[int, dict]:  # type: ignore[type-arg]
    async with http.request(method, url, **kwargs) as response:  # type: ignore[arg-type]
        return response.status, await response.json()


async def test_submit_get_and_wait_speak_canonical_json(http: aiohttp.ClientSession, base_url: str) -> None:
    status, body = await call(http, "POST", f"{base_url}/v1/tasks",
                              json={"taskType": "echo", "taskId": "h1", "args": {"value": [1, "two"]},
                                    "labels": {"team": "web"}, "timeLimit": "30s"})  # fmt: skip
    assert status == 200 and body["created"] is True
    task = body["task"]
    assert task["taskId"] == "h1" and task["state"] in ("TASK_STATE_PENDING", "TASK_STATE_RUNNING",
                                                          "TASK_STATE_SUCCESS")  # fmt: skip
    assert task["timeLimit"] == "30s" and task["labels"] == {"team": "web"}
    status, waited = await call(http, "GET", f"{base_url}/v1/tasks/h1:wait", params={"timeout": "10s"})
    assert status == 200 and waited["done"] is True and waited["task"]["result"] == [1, "two"]
    status, got = await call(http, "GET", f"{base_url}/v1/tasks/h1")
    assert status == 200 and got["task"]["state"] == "TASK_STATE_SUCCESS" and "endedAt" in got["task"]
    status, again = await call(http, "POST", f"{base_url}/v1/tasks",
                               json={"task_type": "echo", "task_id": "h1", "args": {"value": [1, "two"]},
                                     "labels": {"team": "web"}, "time_limit": "30s"})  # fmt: skip
    assert status == 200 and again["created"] is False, "snake_case is read too; the same request is the same task"


async def test_a_label_key_with_brackets_and_a_parent_filter_the_list(
    http: aiohttp.ClientSession, base_url: str
) -> None:
    status, _ = await call(http, "POST", f"{base_url}/v1/tasks",
                           json={"taskType": "echo", "taskId": "br", "labels": {"a[b]": "x"}})  # fmt: skip
    assert status == 200
    status, body = await call(http, "GET", f"{base_url}/v1/tasks", params={"labels[a[b]]": "x"})
    assert status == 200 and [t["taskId"] for t in body["tasks"]] == ["br"]
    status, body = await call(http, "GET", f"{base_url}/v1/tasks", params={"labels[]": "x", "parentId": "br"})
    assert status == 200 and body.get("tasks", []) == []


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "http_status", "code", "field"),
    [
        ("GET", "/v1/tasks/no-such-task", {}, 404, 5, None),
        ("POST", "/v1/tasks", {"json": {"taskType": "echo", "args": {"nope": 1}}}, 400, 3, "args.nope"),
        ("POST", "/v1/tasks", {"json": {"taskType": "no-such-type"}}, 400, 3, "task_type"),
        ("POST", "/v1/tasks", {"data": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, 3, "body"),
        ("POST", "/v1/tasks", {"json": [1, 2]}, 400, 3, "body"),
        ("POST", "/v1/tasks", {"json": {"taskType": "echo", "priority": "high"}}, 400, 3, "body"),
        ("GET", "/v1/tasks", {"params": {"pageSize": "5000"}}, 400, 3, "page_size"),
        ("GET", "/v1/tasks", {"params": {"colour": "red"}}, 400, 3, "colour"),
        ("GET", "/v1/tasks", {"params": {"scheduled": "maybe"}}, 400, 3, "scheduled"),
        # The task's resource takes GET and DELETE: 405 with Allow (below), as for any method a path lacks.
        ("POST", "/v1/tasks/x:explode", {}, 405, 12, None),
        ("GET", "/v1/tasks", {"params": {"pageSize": "0.5"}}, 400, 3, "pageSize"),
        ("GET", "/v1/tasks", {"params": [("pageSize", "5"), ("pageSize", "6")]}, 400, 3, "pageSize"),
        ("GET", "/v1/tasks", {"params": {"states": ""}}, 400, 3, "states"),
        ("GET", "/v1/tasks", {"params": {"labels[a][b]": "x"}}, 400, 3, "labels"),
        ("GET", "/v1/nothing-here", {}, 404, None, None),
    ],
)
async def test_errors_come_from_the_one_table_with_a_status_body(
    http: aiohttp.ClientSession, base_url: str, method: str, path: str, kwargs: dict, http_status: int,  # type: ignore[type-arg]
    code: int | None, field: str | None,
) -> None:  # fmt: skip
    async with http.request(method, f"{base_url}{path}", **kwargs) as response:
        assert response.status == http_status, await response.text()
        if code is None:
            return
        body = await response.json()
    assert body["code"] == code and body["message"]
    if field is not None:
        violations = [v["field"] for d in body.get("details", []) for v in d.get("fieldViolations", [])]
        assert field in violations, body


async def test_a_conflict_is_409_and_a_stop_revokes(http: aiohttp.ClientSession, base_url: str, gates: Gates) -> None:
    await call(http, "POST", f"{base_url}/v1/tasks", json={"taskType": "gate", "taskId": "g", "args": {"name": "g"}})
    status, body = await call(http, "POST", f"{base_url}/v1/tasks", json={"taskType": "echo", "taskId": "g"})
    assert status == 409 and body["code"] == 6
    status, stopped = await call(http, "POST", f"{base_url}/v1/tasks/g:stop", json={"reason": "from the web"})
    assert status == 200 and stopped["task"]["taskId"] == "g"
    status, waited = await call(http, "GET", f"{base_url}/v1/tasks/g:wait", params={"timeout": "10s"})
    assert waited["task"]["state"] == "TASK_STATE_REVOKED" and "from the web" in waited["task"]["error"]["message"]
    status, retried = await call(http, "POST", f"{base_url}/v1/tasks/g:retry")
    assert status == 200 and retried["task"]["state"] == "TASK_STATE_PENDING"
    gates.open("g")


async def test_list_filters_and_pages_like_list_tasks(http: aiohttp.ClientSession, base_url: str) -> None:
    requests = [{"taskType": "echo", "taskId": f"p{i}", "labels": {"batch": "b" if i % 2 else "a"}} for i in range(5)]
    status, batch = await call(http, "POST", f"{base_url}/v1/tasks:batch", json={"requests": requests})
    assert status == 200 and [r["created"] for r in batch["results"]] == [True] * 5
    status, page = await call(http, "GET", f"{base_url}/v1/tasks", params={"labels[batch]": "b", "pageSize": "1"})
    assert [t["taskId"] for t in page["tasks"]] == ["p3"] and page["nextPageToken"]
    params = {"labels[batch]": "b", "pageSize": "1", "pageToken": page["nextPageToken"]}
    status, rest = await call(http, "GET", f"{base_url}/v1/tasks", params=params)
    assert [t["taskId"] for t in rest["tasks"]] == ["p1"]
    for i in range(5):
        await call(http, "GET", f"{base_url}/v1/tasks/p{i}:wait", params={"timeout": "10s"})
    status, done = await call(http, "GET", f"{base_url}/v1/tasks?states=SUCCESS&states=TASK_STATE_FAILURE")
    assert status == 200 and {t["taskId"] for t in done["tasks"]} >= {f"p{i}" for i in range(5)}
    # Search, a time range and an order, as query parameters by their JSON or proto names.
    since = {"submittedAfter": "2000-01-01T00:00:00Z", "submitted_before": "2999-01-01T00:00:00Z"}
    params = {"search": "p", "order_by": "ended_at asc", **since}
    status, found = await call(http, "GET", f"{base_url}/v1/tasks", params=params)
    ends = [_seconds(t["endedAt"]) for t in found["tasks"]]
    assert status == 200 and len(ends) == 5 and ends == sorted(ends)
    status, history = await call(http, "GET", f"{base_url}/v1/tasks/p3/history")
    assert status == 200 and history["entries"][0]["state"] == "TASK_STATE_PENDING"
    assert history["entries"][-1]["state"] == "TASK_STATE_SUCCESS" and history["entries"][0]["time"].endswith("Z")
    status, unknown = await call(http, "GET", f"{base_url}/v1/tasks/nobody/history")
    assert status == 404 and unknown["code"] == 5
    status, refused = await call(http, "GET", f"{base_url}/v1/tasks", params={"orderBy": "size"})
    assert status == 400 and refused["details"][0]["fieldViolations"][0]["field"] == "order_by"
    status, deleted = await call(http, "POST", f"{base_url}/v1/tasks:delete", json={"labels": {"batch": "a"}})
    assert status == 200 and deleted["deleted"] == "3", "uint64 is a string in canonical JSON"
    status, _ = await call(http, "DELETE", f"{base_url}/v1/tasks/p1")
    assert status == 200
    status, gone = await call(http, "GET", f"{base_url}/v1/tasks/p1")
    assert status == 404 and gone["code"] == 5


def _seconds(stamp: str) -> float:
    """An RFC 3339 time as canonical JSON writes it (0, 3, 6 or 9 digits of fraction) in Unix seconds."""
    whole, _, fraction = stamp.removesuffix("Z").partition(".")
    return datetime.fromisoformat(whole + "+00:00").timestamp() + float(f"0.{fraction or 0}")


async def test_schedules_over_http(http: aiohttp.ClientSession, base_url: str) -> None:
    schedule = {"scheduleId": "web", "task": {"taskType": "echo"}, "interval": "3600s"}
    status, made = await call(http, "POST", f"{base_url}/v1/schedules", json=schedule)
    assert status == 200 and made["created"] is True and made["schedule"]["catchUp"] == "CATCH_UP_ONCE"
    status, paused = await call(http, "POST", f"{base_url}/v1/schedules/web:pause")
    assert paused["schedule"]["paused"] is True
    status, listed = await call(http, "GET", f"{base_url}/v1/schedules")
    assert [s["scheduleId"] for s in listed["schedules"]] == ["web"]
    status, _ = await call(http, "DELETE", f"{base_url}/v1/schedules/web")
    assert status == 200
    status, body = await call(http, "POST", f"{base_url}/v1/schedules",
                              json={"scheduleId": "bad", "task": {"taskType": "echo"},
                                    "cron": {"expression": "0 0 30 2 *"}})  # fmt: skip
    assert status == 400 and "never fires" in body["message"]


async def test_health_and_readiness_for_probes(
    http: aiohttp.ClientSession, base_url: str, server: RunningServer
) -> None:
    status, alive = await call(http, "GET", f"{base_url}/healthz")
    assert status == 200 and alive == {"status": "alive"}
    status, ready = await call(http, "GET", f"{base_url}/readyz")
    assert status == 200 and ready == {"status": "ready"}
    server.manager.begin_shutdown()
    status, draining = await call(http, "GET", f"{base_url}/readyz")
    assert status == 503 and draining == {"status": "not ready", "reason": "the server is shutting down"}
    status, alive = await call(http, "GET", f"{base_url}/healthz")
    assert status == 200, "alive while it drains"


async def test_limits_over_http(http: aiohttp.ClientSession, base_url: str) -> None:
    definition = {"limitId": "imports", "keyLabel": "customer", "maxRunning": 3, "rate": {"count": 5, "period": "2s"}}
    status, created = await call(http, "POST", f"{base_url}/v1/limits", json=definition)
    assert status == 200 and created["created"] is True and created["limit"]["rate"]["period"] == "2s"
    status, replaced = await call(http, "PUT", f"{base_url}/v1/limits/imports", json={"maxRunning": 4})
    assert status == 200 and replaced["limit"]["maxRunning"] == 4 and replaced["limit"]["limitId"] == "imports"
    assert "rate" not in replaced["limit"], "PUT replaces the whole definition"
    status, listed = await call(http, "GET", f"{base_url}/v1/limits")
    assert status == 200 and [limit["limitId"] for limit in listed["limits"]] == ["imports"]
    status, deleted = await call(http, "DELETE", f"{base_url}/v1/limits/imports")
    assert status == 200 and deleted["limit"]["maxRunning"] == 4
    status, missing = await call(http, "GET", f"{base_url}/v1/limits/imports")
    assert status == 404 and "imports" in missing["message"]
    status, refused = await call(http, "POST", f"{base_url}/v1/limits", json={"limitId": "x", "maxRunning": -2})
    assert status == 400 and refused["details"][0]["fieldViolations"][0]["field"] == "limit.max_running"


async def test_task_ids_with_colons_reach_their_task(http: aiohttp.ClientSession, base_url: str) -> None:
    await call(
        http, "POST", f"{base_url}/v1/tasks", json={"taskType": "echo", "taskId": "nightly:2026-12-01T02:00:00Z"}
    )
    status, got = await call(http, "GET", f"{base_url}/v1/tasks/nightly:2026-12-01T02:00:00Z")
    assert status == 200 and got["task"]["taskId"] == "nightly:2026-12-01T02:00:00Z"
    status, waited = await call(http, "GET", f"{base_url}/v1/tasks/nightly:2026-12-01T02:00:00Z:wait")
    assert status == 200 and waited["task"]["taskId"] == "nightly:2026-12-01T02:00:00Z"


def test_the_proto_declares_the_routes_the_server_serves() -> None:
    """Envoy's transcoder or grpc-gateway, reading the proto's google.api.http options, map the same paths."""
    from google.api import annotations_pb2

    from taskservice.server.http.routes import ROUTES
    from taskservice.v1 import task_service_pb2 as pb

    declared = {}
    for method in pb.DESCRIPTOR.services_by_name["TaskService"].methods:
        rule = method.GetOptions().Extensions[annotations_pb2.http]
        kind = rule.WhichOneof("pattern")
        if kind is not None:
            declared[method.name] = (kind.upper(), getattr(rule, kind), rule.body)
    assert declared == {route.rpc: (route.http_method, route.path, route.body) for route in ROUTES}
    assert set(declared) == {m.name for m in pb.DESCRIPTOR.services_by_name["TaskService"].methods}, "every RPC"


async def test_odd_input_that_once_made_500s_is_a_400_naming_what_is_wrong(
    http: aiohttp.ClientSession, base_url: str, server: RunningServer, http_faces: HttpFaces
) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    async with http.post(f"{base_url}/v1/tasks", data=deep, headers={"Content-Type": "application/json"}) as response:
        assert response.status == 400 and (await response.json())["code"] == 3
    nested_args = b'{"taskType": "echo", "args": {"value": ' + b"[" * 5_000 + b"]" * 5_000 + b"}}"
    async with http.post(f"{base_url}/v1/tasks", data=nested_args,
                         headers={"Content-Type": "application/json"}) as response:  # fmt: skip
        assert response.status == 400, await response.text()
    await call(http, "POST", f"{base_url}/v1/tasks", json={"taskType": "echo", "taskId": "e"})
    for last_event_id in ("²", "١٢", str(2**64), "-1"):
        async with http.get(f"{base_url}/v1/tasks/e/events", headers={"Last-Event-ID": last_event_id}) as response:
            assert response.status == 400, last_event_id
            assert "Last-Event-ID" in (await response.json())["message"]
    legacy = await http_faces.start(server, legacy_task_type="echo")
    for task_no in ("%C2%B2", "1" * 40):
        async with http.get(f"{legacy}/API/tasks/{task_no}") as response:
            assert response.status == 400, task_no
            assert "task_no" in (await response.json())["message"]
    async with http.post(f"{legacy}/API/tasks", data=b'{"task_no": 1, "args": {"x": ' + b"[" * 5_000 + b"]" * 5_000
                         + b"}}", headers={"Content-Type": "application/json"}) as response:  # fmt: skip
        assert response.status == 400, await response.text()


async def test_an_id_that_ends_like_a_verb_is_read_with_its_colons_encoded(
    http: aiohttp.ClientSession, base_url: str, gates: Gates
) -> None:
    def sent_as_is(path: str) -> URL:  # the client would otherwise turn %3A back into ':'
        return URL(f"{base_url}/v1/tasks/{path}", encoded=True)

    tasks = f"{base_url}/v1/tasks"
    await call(http, "POST", tasks, json={"taskType": "echo", "taskId": "report", "args": {"value": 1}})
    await call(http, "POST", tasks, json={"taskType": "gate", "taskId": "report:wait", "args": {"name": "rw"}})
    status, got = await call(http, "GET", sent_as_is("report%3Await"))
    assert status == 200 and got["task"]["taskId"] == "report:wait", got
    status, waited = await call(http, "GET", sent_as_is("report:wait?timeout=10s"))
    assert status == 200 and waited["done"] is True and waited["task"]["taskId"] == "report", "a literal colon: a verb"
    status, stopped = await call(http, "POST", sent_as_is("report%3Await:stop"), json={})
    assert status == 200 and stopped["task"]["taskId"] == "report:wait"
    await call(http, "POST", tasks, json={"taskType": "echo", "taskId": "b:2026-12-01T01:30:00Z"})
    for path in ("b:2026-12-01T01:30:00Z", "b%3A2026-12-01T01%3A30%3A00Z"):  # an unknown verb is part of the id
        status, got = await call(http, "GET", sent_as_is(path))
        assert status == 200 and got["task"]["taskId"] == "b:2026-12-01T01:30:00Z", path


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", "/v1/tasks", "GET, POST"),
        ("PUT", "/v1/tasks/x", "DELETE, GET"),
        ("PUT", "/v1/tasks/x:stop", "POST"),
        ("TRACE", "/v1/taskTypes", "GET, HEAD"),
        ("POST", "/v1/limits/x", "DELETE, GET, PUT"),
    ],
)
async def test_a_method_a_path_does_not_take_is_405_with_allow(
    http: aiohttp.ClientSession, base_url: str, method: str, path: str, allowed: str
) -> None:
    async with http.request(method, f"{base_url}{path}") as response:
        assert response.status == 405, await response.text()
        assert response.headers["Allow"] == allowed
        assert (await response.json())["code"] == 12
