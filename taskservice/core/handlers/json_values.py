"""What a typed handler returns, as JSON: the `default` of json.dumps for a task's result, in a worker thread and
in a worker process alike (the typed client decodes it back into the handler's return type)."""

from __future__ import annotations

import dataclasses
import datetime
import enum
from typing import Any


def as_json(value: Any) -> Any:
    """What json cannot write itself but a typed handler returns: dataclasses, pydantic models, enums, dates and
    times (the typed client decodes them back). Not sets: their order would differ between runs."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    dump = getattr(value, "model_dump", None)  # a pydantic model
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
