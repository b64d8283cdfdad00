"""What taskctl prints: human text, --json lines, and the live view of a watch."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TextIO

from google.protobuf import json_format
from google.protobuf.message import Message
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn

from taskservice.client import (
    Limit,
    LogChunk,
    Node,
    Schedule,
    Stats,
    SubmitResult,
    Task,
    TaskError,
    TaskEvent,
    TaskServiceError,
    TaskTypeInfo,
)
from taskservice.client import Progress as TaskProgress

# ---------------------------------------------------------------------------------------------------
# JSON: what the HTTP API answers, in protobuf's canonical JSON (lowerCamelCase names, RFC 3339 "Z" times,
# "1.5s" durations, 64-bit integers as strings, enum names), one object per line


def canonical_json(message: Message) -> dict[str, Any]:
    """A message as the HTTP API writes it (server/http/routes.py to_json: every field, defaults too)."""
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def wire_json(read: Task | TaskEvent | Schedule | Limit | TaskTypeInfo | Stats | Node) -> dict[str, Any]:
    """What the client read, as the HTTP API writes the same message."""
    if read.wire is None:
        raise ValueError(f"this {type(read).__name__} was not read from a server: it has no wire form")
    return canonical_json(read.wire)


def task_to_json(task: Task) -> dict[str, Any]:
    """A task, as the `task` of the HTTP API's answers."""
    return wire_json(task)


def submit_to_json(result: SubmitResult) -> dict[str, Any]:
    """A Submit's answer, as POST /v1/tasks gives it."""
    return {"task": task_to_json(result.task), "created": result.created}


def status_json(error: TaskServiceError) -> dict[str, Any]:
    """A refusal as the HTTP API's error body (google.rpc.Status): the gRPC code's number, the message."""
    return {"code": error.code.value[0] if error.code else 2, "message": error.message}


# ---------------------------------------------------------------------------------------------------
# Human text


def format_time(value: datetime | None) -> str:
    """UTC, to the millisecond, e.g. 2026-11-25T09:49:11.123Z; '-' when unset."""
    if value is None:
        return "-"
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def format_duration(seconds: float | None) -> str:
    """Short human duration: 250ms, 30s, 1.5s, 5m, 1h30m; '-' when unset."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.3g}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return "".join(parts)


def _progress_detail(p: TaskProgress) -> str:
    """The message, then current/total unless the message says it already."""
    counts = f"{p.current}/{p.total}" if p.total else ""
    if counts and counts in p.message:
        counts = ""
    return " ".join(part for part in (p.message, f"({counts})" if counts else "") if part)


def format_progress(p: TaskProgress) -> str:
    """e.g. '40% copying (4096/10240)'."""
    detail = _progress_detail(p)
    return f"{p.percent:.0f}% {detail}" if detail else f"{p.percent:.0f}%"


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "), ensure_ascii=False)


def format_error(e: TaskError) -> str:
    return f"{e.type}: {e.message}" if e.message else e.type


def format_task(task: Task) -> str:
    """The multi-line view of `taskctl get`."""
    rows: list[tuple[str, str]] = [
        ("task", task.task_id),
        ("type", task.task_type),
        ("state", task.state.value),
        ("progress", format_progress(task.progress)),
        ("args", compact_json(task.args)),
    ]
    if task.labels:
        rows.append(("labels", ", ".join(f"{k}={v}" for k, v in sorted(task.labels.items()))))
    if task.after:
        rows.append(("after", ", ".join(task.after)))
    if task.parent_id:
        rows.append(("parent", task.parent_id + (" (detached)" if task.detached else "")))
    waits = [f"limit {limit_id}" for limit_id in task.waiting_for_limits] + list(task.waiting_for_tasks)
    if waits:
        rows.append(("waiting for", ", ".join(waits)))
    rows += [
        ("priority", str(task.priority)),
        ("attempt", str(task.attempt)),
        ("time limit", format_duration(task.time_limit)),
        ("submitted", format_time(task.submitted_at)),
        *([("scheduled", format_time(task.scheduled_at))] if task.scheduled_at else []),
        ("started", format_time(task.started_at)),
        ("ended", format_time(task.ended_at)),
    ]
    if task.retention is not None:  # its own; else the server's --retention
        rows.append(("kept", format_duration(task.retention) + " once ended" if task.retention else "for ever"))
    if task.started_at and task.ended_at:
        rows.append(("ran for", format_duration((task.ended_at - task.started_at).total_seconds())))
    if task.result is not None:
        rows.append(("result", compact_json(task.result)))
    if task.error is not None:
        rows.append(("error", format_error(task.error)))
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    if task.error is not None and task.error.traceback:
        lines.append(task.error.traceback.rstrip("\n"))
    return "\n".join(lines)


def format_table(tasks: list[Task]) -> str:
    """The table of `taskctl list`: plain aligned columns, never truncated (ids must stay usable); a SCHEDULED
    column when a task is to run later (`--scheduled`, a retry's backoff)."""
    scheduled = any(t.scheduled_at for t in tasks)
    header = ("TASK ID", "TYPE", "STATE", "PROGRESS", "SUBMITTED", *(("SCHEDULED",) if scheduled else ()), "LABELS")
    rows = [
        (
            t.task_id,
            t.task_type,
            t.state.value,
            f"{t.progress.percent:.0f}%",
            format_time(t.submitted_at),
            *((format_time(t.scheduled_at) if t.scheduled_at else "",) if scheduled else ()),
            ",".join(f"{k}={v}" for k, v in sorted(t.labels.items())),
        )
        for t in tasks
    ]
    return aligned(header, rows)


def aligned(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns aligned on their widest cell, two spaces apart."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]
    )


def format_submit(result: SubmitResult) -> str:
    """`<task id> <STATE>`, noting when the task existed already (same id, same request)."""
    text = f"{result.task.task_id} {result.task.state.value}"
    return text if result.created else text + " (already submitted)"


def format_final(task: Task) -> str:
    """The last line of a watch: the end state and the result or the error."""
    text = f"task {task.task_id} {task.state.value}"
    if task.error is not None:
        text += f": {format_error(task.error)}"
    elif task.result is not None:
        text += f" result={compact_json(task.result)}"
    return text


def format_event(event: TaskEvent) -> str:
    """One line per event when stdout is not a terminal."""
    return f"{format_time(event.time)} #{event.sequence} {event.state.value:<9} {format_progress(event.progress)}"


# ---------------------------------------------------------------------------------------------------
# Writers


@dataclass
class Output:
    """Where and how to print: human text or one JSON object per line."""

    json: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)

    def text(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def json_line(self, value: dict[str, Any]) -> None:
        print(json.dumps(value, ensure_ascii=False), file=self.out, flush=True)

    def is_terminal(self) -> bool:
        return self.out.isatty()

    def log_chunk(self, chunk: LogChunk) -> None:
        """A piece of a task's log: its bytes as they are, or (--json) an object with offset and text."""
        if self.json:
            text = chunk.data.decode("utf-8", "replace")
            self.json_line({"taskId": chunk.task_id, "offset": chunk.offset, "text": text})
            return
        self.out.flush()
        buffer = getattr(self.out, "buffer", None)
        if buffer is not None:
            buffer.write(chunk.data)
            buffer.flush()
        else:
            self.out.write(chunk.data.decode("utf-8", "replace"))
            self.out.flush()


class WatchView(Protocol):
    """Shows a watch as it goes; `finish` gets the final task."""

    def event(self, event: TaskEvent) -> None: ...
    def finish(self, task: Task | None) -> None: ...


class JsonWatchView:
    def __init__(self, output: Output) -> None:
        self._output = output

    def event(self, event: TaskEvent) -> None:
        self._output.json_line(wire_json(event))

    def finish(self, task: Task | None) -> None:
        pass  # the terminal event, already printed, carries the final task


class LineWatchView:
    def __init__(self, output: Output) -> None:
        self._output = output

    def event(self, event: TaskEvent) -> None:
        self._output.text(format_event(event))

    def finish(self, task: Task | None) -> None:
        if task is not None:
            self._output.text(format_final(task))


class BarWatchView:
    """A rich progress bar, for a terminal."""

    def __init__(self, output: Output, task_id: str, *, console: Console | None = None) -> None:
        self._output = output
        self._progress = Progress(
            TextColumn("[bold]{task.fields[state]:<9}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[message]}"),
            TimeElapsedColumn(),
            console=console or Console(file=output.out),
            transient=False,
        )
        self._bar: TaskID = self._progress.add_task(task_id, total=100, state="", message="")
        self._progress.start()

    def event(self, event: TaskEvent) -> None:
        p = event.progress
        self._progress.update(self._bar, completed=p.percent, state=event.state.value, message=_progress_detail(p))

    def finish(self, task: Task | None) -> None:
        self._progress.stop()
        if task is not None:
            self._output.text(format_final(task))


def watch_view(output: Output, task_id: str) -> WatchView:
    """JSON lines with --json; a progress bar on a terminal; else one line per event."""
    if output.json:
        return JsonWatchView(output)
    if output.is_terminal():
        return BarWatchView(output, task_id)
    return LineWatchView(output)
