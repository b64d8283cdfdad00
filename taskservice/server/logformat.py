"""Log formats of `taskservice serve`: "text" for people, "json" (one object per line) for log collectors.

A JSON line holds time (ISO 8601, UTC, milliseconds), level, logger and message, then every `extra` field the
record carries (the transition log adds task_id, task_type, state, previous_state, attempt, error_type), and
exc_info / stack_info text when present:

    {"time": "2025-01-01T12:00:00.123Z", "level": "INFO", "logger": "taskservice.tasks",
     "message": "task 5f0c (demo) RUNNING -> SUCCESS", "task_id": "5f0c", "task_type": "demo", ...}
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from taskservice.core.engine.observe import IMMUTABLE_ARGS
from taskservice.core.engine.validation import one_line

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

    def __init__(self) -> None:
        super().__init__()
        self._seconds = _PerSecond(lambda second: datetime.fromtimestamp(second, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S"))

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self._time(record),
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
        return _ENCODER.encode(entry)

    def _time(self, record: logging.LogRecord) -> str:
        """ISO 8601 in UTC with milliseconds."""
        return f"{self._seconds(record.created)}.{int(record.msecs):03d}Z"


# default=str: an extra that is not JSON (a Path, an exception) is written as its str(), never dropped. One
# encoder for all lines: json.dumps(default=...) would build a new one per line.
_ENCODER = json.JSONEncoder(default=str)


class TextFormatter(logging.Formatter):
    """TEXT_FORMAT, with the time up to the second made once per second."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self._seconds = _PerSecond(lambda second: time.strftime(self.default_time_format, self.converter(second)))

    def formatMessage(self, record: logging.LogRecord) -> str:
        """The line, its text from users (reasons, ids, messages) unable to start a line of its own; a traceback
        that follows is the server's, and keeps its lines."""
        return one_line(super().formatMessage(record))

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return f"{self._seconds(record.created)},{int(record.msecs):03d}"  # as logging's default_msec_format


class _PerSecond:
    """The text of a whole second, made again only when the second changes. A busy server logs thousands of
    lines a second, and formatting each one's time was a tenth of their cost. Safe to share between threads."""

    def __init__(self, make: Callable[[int], str]) -> None:
        self._make = make
        self._last: tuple[int, str] = (-1, "")  # one attribute, so a thread never sees one second's text for another

    def __call__(self, created: float) -> str:
        second, text = self._last
        if int(created) != second:
            second = int(created)
            text = self._make(second)
            self._last = (second, text)
        return text


class BackgroundStreamHandler(logging.Handler):
    """Hands records to a thread of its own, which formats them and writes all that are waiting in one write.

    A busy server logs a line per task transition, from its workers and under the engine's lock. Writing each
    line there means a system call and a wait for the GIL after it, with the lock held. Here the caller pays a
    queue put; formatting and writing happen on this thread, many lines per write. (Bulk no-op tasks: 10.8k/s
    with transition lines off, 6.0k/s with them written in place, 6.5k/s with this handler.) flush() waits
    until what was logged before it is written; logging.shutdown() at exit calls it.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self._queue: queue.SimpleQueue[logging.LogRecord | threading.Event | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write_loop, name="taskservice-log-writer", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        # The message is made now: its arguments may change once this call returns (unless they cannot).
        if not getattr(record, IMMUTABLE_ARGS, False):
            record.msg = record.getMessage()
            record.args = None
        self._queue.put(record)

    def flush(self) -> None:
        if self._thread.is_alive():
            written = threading.Event()
            self._queue.put(written)
            written.wait(timeout=10)

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=10)
        super().close()

    def _write_loop(self) -> None:
        while True:
            waiting = [self._queue.get()]
            with contextlib.suppress(queue.Empty):
                while len(waiting) < _MOST_LINES_PER_WRITE:
                    waiting.append(self._queue.get_nowait())
            lines = []
            for item in waiting:
                if isinstance(item, logging.LogRecord):
                    try:
                        lines.append(self.format(item) + "\n")
                    except Exception:
                        self.handleError(item)
            if lines:
                try:
                    self.stream.write("".join(lines))
                    self.stream.flush()
                except Exception:
                    self.handleError(logging.makeLogRecord({"msg": "cannot write the log"}))
            for item in waiting:
                if isinstance(item, threading.Event):
                    item.set()
            if None in waiting:
                return


# Bounds the text one write carries.
_MOST_LINES_PER_WRITE = 1000


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
    handler = BackgroundStreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    setattr(handler, _HANDLER_MARK, True)
    root.addHandler(handler)
    root.setLevel(logging.getLevelNamesMapping().get(level.upper(), logging.INFO))
