"""What a handler's docstring says of its task type and of each argument, for ListTaskTypes (the CLI, the
dashboard's form, generated docs). The three styles Python projects write are read: Google (`Args:` then
`name (type): text`), reStructuredText (`:param name: text`) and NumPy (`Parameters`, a dashed line, then
`name : type` over indented text). Anything else is the summary's text only."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field

# Google-style section headings; the args' section is one of the first three.
_GOOGLE_ARGS = ("args", "arguments", "parameters", "params", "keyword args", "keyword arguments")
_GOOGLE_SECTIONS = (
    *_GOOGLE_ARGS,
    "returns",
    "return",
    "yields",
    "raises",
    "examples",
    "example",
    "note",
    "notes",
    "see also",
    "attributes",
    "warning",
    "warnings",
    "references",
    "todo",
)
_GOOGLE_ITEM = re.compile(r"^\*{0,2}(?P<name>[A-Za-z_]\w*)\s*(?:\([^)]*\))?\s*:\s*(?P<text>.*)$")
_REST_PARAM = re.compile(
    r"^:(?:param|parameter|arg|argument|key|keyword)\s+(?:[^:]*\s)?(?P<name>\w+)\s*:\s*(?P<text>.*)$"
)
_REST_FIELD = re.compile(r"^:\w+")
_NUMPY_ITEM = re.compile(r"^(?P<name>[A-Za-z_]\w*)\s*(?::.*)?$")
_DASHES = re.compile(r"^-{3,}\s*$")


@dataclass(frozen=True, slots=True)
class Docs:
    """A docstring read: its summary (the first paragraph, on one line) and each documented argument's text."""

    summary: str = ""
    args: dict[str, str] = field(default_factory=dict)


def read_docstring(obj: object) -> Docs:
    """The docs of a function (inspect.getdoc: indentation removed), or empty ones when it has none."""
    text = inspect.getdoc(obj) or ""
    lines = text.splitlines()
    args: dict[str, str] = {}
    for reader in (_google_args, _rest_args, _numpy_args):
        for name, described in reader(lines).items():
            args.setdefault(name, described)
    return Docs(_summary(lines), args)


def _summary(lines: list[str]) -> str:
    paragraph: list[str] = []
    for line in lines:
        stripped = line.strip()
        if _is_heading(stripped) or _REST_FIELD.match(stripped):
            break  # the sections begin
        if stripped:
            paragraph.append(stripped)
        elif paragraph:
            break  # the first paragraph ended
    return " ".join(paragraph)


def _is_heading(stripped: str) -> bool:
    return stripped.endswith(":") and stripped[:-1].strip().lower() in _GOOGLE_SECTIONS


def _join(parts: list[str]) -> str:
    return " ".join(part.strip() for part in parts if part.strip())


def _google_args(lines: list[str]) -> dict[str, str]:
    """Items of `Args:` (or its synonyms): a line `name (type): text` at the section's indent, continued by lines
    indented further."""
    found: dict[str, str] = {}
    index = 0
    while index < len(lines):
        heading = lines[index].strip()
        index += 1
        if not (heading.endswith(":") and heading[:-1].strip().lower() in _GOOGLE_ARGS):
            continue
        item_indent: int | None = None
        name, parts = "", list[str]()
        while index < len(lines):
            line = lines[index]
            if not line.strip():
                index += 1
                continue
            indent = len(line) - len(line.lstrip())
            if indent == 0 and (item_indent is None or item_indent > 0):
                break  # the section ended
            if item_indent is None:
                item_indent = indent
            if indent <= item_indent and (match := _GOOGLE_ITEM.match(line.strip())):
                if name:
                    found[name] = _join(parts)
                name, parts = match["name"], [match["text"]]
            elif indent <= item_indent:
                break
            else:
                parts.append(line)
            index += 1
        if name:
            found[name] = _join(parts)
    return found


def _rest_args(lines: list[str]) -> dict[str, str]:
    """`:param name: text` (or `:param type name: text`), continued by indented lines."""
    found: dict[str, str] = {}
    name, parts = "", list[str]()
    for line in lines:
        stripped = line.strip()
        if match := _REST_PARAM.match(stripped):
            if name:
                found[name] = _join(parts)
            name, parts = match["name"], [match["text"]]
        elif name and stripped and line[:1].isspace() and not _REST_FIELD.match(stripped):
            parts.append(stripped)
        elif name:
            found[name] = _join(parts)
            name, parts = "", []
    if name:
        found[name] = _join(parts)
    return found


def _numpy_args(lines: list[str]) -> dict[str, str]:
    """A `Parameters` heading over a dashed line, then `name : type` lines each over its indented text."""
    found: dict[str, str] = {}
    for index in range(len(lines) - 1):
        heading = lines[index].strip().lower()
        if heading not in ("parameters", "other parameters") or not _DASHES.match(lines[index + 1]):
            continue
        name, parts = "", list[str]()
        body = lines[index + 2 :]
        for position, line in enumerate(body):
            stripped = line.strip()
            if not stripped:
                continue
            if not line[:1].isspace():
                next_line = body[position + 1] if position + 1 < len(body) else ""
                if _DASHES.match(next_line) or not (match := _NUMPY_ITEM.match(stripped)):
                    break  # the next section's heading, or not an item
                if name:
                    found[name] = _join(parts)
                name, parts = match["name"], []
            elif name:
                parts.append(stripped)
        if name:
            found[name] = _join(parts)
    return found
