"""What the server refuses, as JSON Schema constraints for openapi.py: taken from the checks themselves (their
patterns and bounds are imported, not copied), so that the description cannot drift from what is enforced."""

from __future__ import annotations

from typing import Any

from taskservice.core.engine.validation import (
    MAX_AFTER,
    MAX_LABEL_VALUE,
    MAX_LABELS,
    TASK_ID_PATTERN,
)
from taskservice.core.model.limits import LIMIT_ID_PATTERN
from taskservice.core.model.listing import ORDER_BY_PATTERN
from taskservice.core.model.schedules import MAX_SCHEDULE_ID
from taskservice.server.convert import MAX_PAGE_SIZE
from taskservice.server.convert_listing import MAX_SEARCH
from taskservice.server.http.routes import MAX_QUERY_ITEMS
from taskservice.server.watch_many import MAX_WATCHED

_ENDED = ("SUCCESS", "FAILURE", "REVOKED", "TIMED_OUT", "LOST")


def _anchored(pattern: str) -> str:
    return f"^{pattern}$"


TASK_ID = {"type": "string", "pattern": _anchored(TASK_ID_PATTERN.pattern)}
LIMIT_ID = {"type": "string", "pattern": _anchored(LIMIT_ID_PATTERN.pattern)}
# Empty: the server makes one.
OPTIONAL_TASK_ID = {"type": "string", "pattern": f"^({TASK_ID_PATTERN.pattern})?$"}
SCHEDULE_ID = {"type": "string", "pattern": _anchored(TASK_ID_PATTERN.pattern.replace("128", str(MAX_SCHEDULE_ID)))}
# Protobuf's JSON form of a Duration, never negative here: whole seconds, up to nine decimals, then "s".
# (Up to 7 digits of seconds, 115 days: the longest any field takes is 366 days, which a pattern cannot bound.)
DURATION = {"type": "string", "pattern": "^[0-9]{1,7}(\\.[0-9]{1,9})?s$", "example": "30s"}
ORDER_BY = {"type": "string", "pattern": _anchored(ORDER_BY_PATTERN.pattern), "example": "duration desc"}

# By "message.field" first, then by field name alone. "items" applies to a list's items, "values" to a map's.
RULES: dict[str, dict[str, Any]] = {
    "task_id": TASK_ID,
    "schedule_id": TASK_ID,
    "limit_id": LIMIT_ID,
    "taskservice.v1.SubmitRequest.task_id": OPTIONAL_TASK_ID,
    "taskservice.v1.ListTasksRequest.parent_id": OPTIONAL_TASK_ID,
    "taskservice.v1.ListTasksRequest.depends_on": OPTIONAL_TASK_ID,
    "taskservice.v1.ListTasksRequest.search": {"maxLength": MAX_SEARCH},
    "taskservice.v1.ListTasksRequest.order_by": ORDER_BY,
    "taskservice.v1.SubmitRequest.task_type": {"minLength": 1},
    "taskservice.v1.Schedule.schedule_id": SCHEDULE_ID,
    "taskservice.v1.StopTasksRequest.states": {"items": {"enum": ["TASK_STATE_PENDING", "TASK_STATE_RUNNING"]}},
    "taskservice.v1.DeleteTasksRequest.states": {"items": {"enum": [f"TASK_STATE_{s}" for s in _ENDED]}},
    "page_size": {"minimum": 0, "maximum": MAX_PAGE_SIZE},
    "after": {"items": TASK_ID, "maxItems": MAX_AFTER},
    "task_ids": {"items": TASK_ID, "maxItems": MAX_WATCHED},
    "taskservice.v1.WatchTasksRequest.task_ids": {"items": TASK_ID, "maxItems": MAX_QUERY_ITEMS},
    "taskservice.v1.SubmitRequest.labels": {"maxProperties": MAX_LABELS, "values": {"maxLength": MAX_LABEL_VALUE}},
}

# Fields a request must carry (besides the path's id).
REQUIRED: dict[str, tuple[str, ...]] = {
    "taskservice.v1.SubmitRequest": ("taskType",),
    "taskservice.v1.Schedule": ("scheduleId", "task"),
    "taskservice.v1.Limit": ("limitId",),
}
# A bulk stop or delete must name what it acts on, or say all=true: at least one of these holds.
_FILTERS = {
    "states": {"type": "array", "minItems": 1},
    "taskType": {"type": "string", "minLength": 1},
    "labels": {"type": "object", "minProperties": 1},
}
ONE_OF_THESE: dict[str, list[dict[str, Any]]] = {
    message: [{"required": [name], "properties": {name: rule}} for name, rule in rules.items()]
    for message, rules in {
        "taskservice.v1.StopTasksRequest": {**_FILTERS, "scheduled": {"enum": [True]}, "all": {"enum": [True]}},
        "taskservice.v1.DeleteTasksRequest": {**_FILTERS, "endedBefore": {"type": "string"}, "all": {"enum": [True]}},
    }.items()
}
# Pairs of fields of which a request gives one at most (besides the proto's oneofs).
NOT_BOTH: dict[str, tuple[tuple[str, str], ...]] = {"taskservice.v1.SubmitRequest": (("notBefore", "delay"),)}
# Enum values no request may send and no answer carries.
HIDDEN_ENUM_VALUES = frozenset({"TASK_STATE_UNSPECIFIED"})
# The routes that answer with a stream rather than one JSON object: their content type, and what it carries.
STREAMS: dict[str, tuple[str, str]] = {
    "WatchProgress": ("text/event-stream", "Server-Sent Events, each data a WatchProgressResponse"),
    "WatchTasks": ("text/event-stream", "Server-Sent Events, each data a WatchProgressResponse of one task"),
    "WatchLogs": ("text/plain", "the log's bytes"),
}


def path_parameter_schema(name: str) -> dict[str, Any]:
    """A path parameter's schema by its name: ids by the pattern the server checks."""
    return dict(LIMIT_ID if name == "limit_id" else TASK_ID)
