"""/openapi.json says what the server refuses: the points a client generator or validator trips on."""

from __future__ import annotations

from typing import Any

import jsonschema_rs

from taskservice.server.http.openapi import openapi_document

DOCUMENT = openapi_document()
SCHEMAS = DOCUMENT["components"]["schemas"]


def _valid(name: str, value: Any) -> bool:
    return bool(jsonschema_rs.validator_for({"$ref": f"#/components/schemas/{name}", "components":
                                             DOCUMENT["components"]}).is_valid(value))  # fmt: skip


def test_durations_match_protobufs_json_and_refuse_what_the_server_refuses() -> None:
    limit = "taskservice.v1.SubmitRequest"
    for good in ("1.5s", "30s", "0s", "0.000000001s"):
        assert _valid(limit, {"taskType": "demo", "timeLimit": good}), good
    for bad in ("-1s", "1.5", "1.5 s", "1m", "\\.5s"):
        assert not _valid(limit, {"taskType": "demo", "timeLimit": bad}), bad


def test_requests_refuse_unknown_fields_and_name_what_is_required() -> None:
    assert not _valid("taskservice.v1.SubmitRequest", {"taskType": "demo", "colour": "red"})
    assert not _valid("taskservice.v1.SubmitRequest", {"args": {}}), "taskType is required"
    assert not _valid("taskservice.v1.SubmitRequest", {"taskType": "demo", "notBefore": "2030-01-01T00:00:00Z",
                                                       "delay": "5s"}), "not_before or delay, not both"  # fmt: skip
    assert not _valid("taskservice.v1.Schedule", {"scheduleId": "s", "task": {"taskType": "demo"},
                                                  "cron": {"expression": "* * * * *"}, "interval": "60s"})  # fmt: skip
    assert not _valid("taskservice.v1.StopTasksRequest", {}), "a bulk stop names a filter or all=true"
    assert _valid("taskservice.v1.StopTasksRequest", {"all": True})
    assert not _valid("taskservice.v1.StopTasksRequest", {"states": ["TASK_STATE_SUCCESS"]}), "only stoppable states"


def test_parameters_carry_the_servers_bounds() -> None:
    listing = DOCUMENT["paths"]["/v1/tasks"]["get"]["parameters"]
    by_name = {parameter["name"]: parameter for parameter in listing}
    assert by_name["pageSize"]["schema"]["minimum"] == 0 and by_name["pageSize"]["schema"]["maximum"] == 1000
    assert "TASK_STATE_UNSPECIFIED" not in by_name["states"]["schema"]["items"]["enum"]
    assert by_name["labels"]["style"] == "deepObject", "labels[team]=ops"
    task = DOCUMENT["paths"]["/v1/tasks/{task_id}"]["get"]["parameters"][0]
    assert task["schema"]["pattern"] == "^[A-Za-z0-9._:-]{1,128}$"
    assert "/v1/limits/{limit_id}" in DOCUMENT["paths"] and "put" in DOCUMENT["paths"]["/v1/limits/{limit_id}"]


def test_streams_are_described_as_what_they_send() -> None:
    for path in ("/v1/events", "/v1/tasks/{task_id}/events"):
        assert list(DOCUMENT["paths"][path]["get"]["responses"]["200"]["content"]) == ["text/event-stream"], path
    assert list(DOCUMENT["paths"]["/v1/tasks/{task_id}/logs"]["get"]["responses"]["200"]["content"]) == ["text/plain"]
