"""Log formats of `taskservice serve`: "text" for people, "json" (one object per line) for log collectors.

A JSON line holds time (ISO 8601, UTC, milliseconds), level, logger and message, then every `extra` field the
record carries (the transition log adds task_id, task_type, state, previous_state, attempt, error_type), and
exc_info / stack_info text when present:

    {"time": "2025-01-01T12:00:00.123Z", "level": "INFO", "logger": "taskservice.tasks",
     "message": "task 5f0c (demo) RUNNING -> SUCCESS", "task_id": "5f0c", "task_type": "demo", ...}
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FORMATS = ("text", "json")

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",  # Python 3.12+
}
# Marks the handler configure_logging installed, so calling it again replaces that handler only.
_HANDLER_MARK = "_taskservice_handler"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the record's extra fields, exc_info text."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key in _STANDARD_ATTRIBUTES or key.startswith("_"):
                continue
            # An extra named like a base field does not hide it.
            entry["extra." + key if key in entry else key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        # default=str: an extra that is not JSON (a Path, an exception) is written as its str(), never dropped.
        return json.dumps(entry, default=str)


def configure_logging(level: str, fmt: str, *, stream: TextIO | None = None) -> None:
    """Log to stderr (or `stream`) at `level` (DEBUG, INFO, WARNING, ERROR) as "text" or "json".

    "text" is `%(asctime)s %(levelname)s %(name)s: %(message)s`. Calling it again replaces the handler it installed
    before; handlers others installed on the root logger are left alone.
    """
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r} is not one of {', '.join(FORMATS)}")
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
        old.close()
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    setattr(handler, _HANDLER_MARK, True)
    root.addHandler(handler)
    root.setLevel(logging.getLevelNamesMapping().get(level.upper(), logging.INFO))
