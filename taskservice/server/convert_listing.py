"""A ListTasks request as the engine takes it (its filter, its order and where its page starts), and the page token
of the page that follows.

A token holds the order it was given for (with a duration's fixed "now") and the last task's key and submission
order; it is refused with another order_by, so that a page never continues a different listing.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass, replace
from typing import Any, Literal

from google.protobuf import timestamp_pb2

from taskservice.core.engine.validation import check_task_id
from taskservice.core.model.errors import InvalidRequest
from taskservice.core.model.listing import (
    NEWEST_FIRST,
    ListPosition,
    SortKey,
    TaskOrder,
    order_by_text,
    parse_order_by,
)
from taskservice.core.model.models import TaskFilter
from taskservice.server.convert import filter_from_proto, timestamp_seconds
from taskservice.v1 import task_service_pb2 as pb

MAX_SEARCH = 200
# The submission-order token of earlier versions (newest first): "before:<order>".
_OLD_TOKEN_PREFIX = "before:"
_TOKEN_VERSION = 2
_INT64 = range(-(2**63), 2**63)
_ORDER_FIELDS = ", ".join(key.value for key in SortKey)


@dataclass(frozen=True, slots=True)
class Listing:
    task_filter: TaskFilter
    order: TaskOrder
    after: ListPosition | None


def listing_from_proto(request: pb.ListTasksRequest, now: float) -> Listing:
    """The request's filter, order and start; `now` ends running tasks' durations on a first page."""
    task_filter = _list_filter(request)
    order = parse_order_by(request.order_by)
    if order is None:
        raise InvalidRequest(
            f"order_by {request.order_by[:80]!r} is not a field with an optional direction",
            [("order_by", f"one of {_ORDER_FIELDS}, then optionally asc or desc: for example 'duration desc'")],
        )
    if not request.page_token:
        return Listing(task_filter, replace(order, now=now) if order.key is SortKey.DURATION else order, None)
    token_order, after = _decode(request.page_token)
    if (token_order.key, token_order.descending) != (order.key, order.descending):
        raise InvalidRequest(
            f"page_token continues a listing in {order_by_text(token_order)!r} order, not {order_by_text(order)!r}",
            [("order_by", "keep order_by as it was for the first page, or start again without page_token")],
        )
    return Listing(task_filter, token_order, after)


def _list_filter(request: pb.ListTasksRequest) -> TaskFilter:
    task_filter = filter_from_proto(request)
    if len(request.search) > MAX_SEARCH:
        raise InvalidRequest(
            f"search is {len(request.search)} characters long",
            [("search", f"at most {MAX_SEARCH} characters: an id prefix, or text of the args or the error")],
        )
    if request.depends_on:
        check_task_id(request.depends_on, "depends_on")
    after = _time_or_none(request, "submitted_after")
    before = _time_or_none(request, "submitted_before")
    return replace(task_filter, search=request.search, depends_on=request.depends_on, submitted_after=after,
                   submitted_before=before)  # fmt: skip


def _time_or_none(request: pb.ListTasksRequest, field: Literal["submitted_after", "submitted_before"]) -> float | None:
    stamp: timestamp_pb2.Timestamp = getattr(request, field)
    return timestamp_seconds(stamp, field) if request.HasField(field) else None


def encode_page_token(order: TaskOrder, after: ListPosition | None) -> str:
    """The token of the page that starts after `after`; empty when there is none."""
    if after is None:
        return ""
    fields = [_TOKEN_VERSION, order.key.value, order.descending, order.now, after.key, after.submit_order]
    return base64.urlsafe_b64encode(json.dumps(fields, separators=(",", ":")).encode()).decode()


def _decode(token: str) -> tuple[TaskOrder, ListPosition]:
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        if text.startswith(_OLD_TOKEN_PREFIX):
            before = int(text.removeprefix(_OLD_TOKEN_PREFIX))
            if before in _INT64:
                return NEWEST_FIRST, ListPosition(before, before)
        else:
            decoded = _position(json.loads(text))
            if decoded is not None:
                return decoded
    except (binascii.Error, UnicodeError, ValueError):
        pass
    raise InvalidRequest(
        "page_token is not one this server gave out",
        [("page_token", "pass next_page_token from the previous ListTasks response unchanged")],
    )


def _position(fields: Any) -> tuple[TaskOrder, ListPosition] | None:
    """A decoded token's order and position, or None when it is not one encode_page_token() wrote."""
    if not isinstance(fields, list) or len(fields) != 6 or fields[0] != _TOKEN_VERSION:
        return None
    _, key, descending, now, sort_key, submit_order = fields
    if key not in {k.value for k in SortKey} or not isinstance(descending, bool):
        return None
    if not (_number_or_none(now) and _number_or_none(sort_key)):
        return None
    if type(submit_order) is not int or submit_order not in _INT64:
        return None
    order = TaskOrder(SortKey(key), descending, now)
    if order.key is SortKey.DURATION and now is None:
        return None
    return order, ListPosition(sort_key, submit_order)


def _number_or_none(value: Any) -> bool:
    if value is None:
        return True
    return type(value) in (int, float) and math.isfinite(value) and abs(value) < 2**63
