"""Write the synchronous Python client from the asyncio one, so that each method is written once.

    python scripts/unasync.py           # rewrite taskservice/client/sync_*.py from async_*.py
    python scripts/unasync.py --check   # exit 1 when a committed file is not what the rewrite makes (CI)

The rewrite is textual, token by token as httpcore's unasync does it: `async def` becomes `def`, `await x` becomes
`x`, `async for`/`async with` lose `async`, and the names in RENAMES become their synchronous twins; lines between
`# unasync: async only` and `# unasync: end` are dropped. What it cannot rewrite, the async source must not contain
(the check below refuses a leftover `async` or `await`).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "taskservice" / "client"
# asyncio source -> synchronous twin.
FILES = {"async_client.py": "sync_client.py", "async_run.py": "sync_run.py"}

# Whole words, asyncio name -> synchronous name.
RENAMES = {
    "AsyncTaskClient": "TaskClient",
    "AsyncTaskRun": "TaskRun",
    "AsyncIterator": "Iterator",
    "AsyncIterable": "Iterable",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "__aiter__": "__iter__",
    "__anext__": "__next__",
    "StopAsyncIteration": "StopIteration",
    "asyncio": "time",
    "async_client": "sync_client",
    "async_run": "sync_run",
}
# Phrases of docstrings and comments.
PHRASES = {
    "The asyncio client, on grpc.aio: each call a coroutine, each stream an async iterator.": (
        "The synchronous client: each call returns when the server answered, each stream is an iterator."
    ),
    "Create it inside a running event loop; use `async with`, or await close().": (
        "Use it as a context manager, or call close(); one client may be shared by threads."
    ),
    "grpc.aio.": "grpc.",
}
HEADER = '"""Generated from {source} by scripts/unasync.py: do not edit; edit {source} and run `make unasync`."""\n'
ASYNC_ONLY = re.compile(r"\n[ \t]*# unasync: async only\n.*?# unasync: end\n", re.DOTALL)


def unasync(text: str, source: str) -> str:
    """The synchronous twin of an asyncio source file."""
    docstring_end = text.index('"""', 3) + 3
    body = ASYNC_ONLY.sub("\n", text[docstring_end:])
    for phrase, sync in PHRASES.items():
        body = body.replace(phrase, sync)
    body = re.sub(r"\basync def\b", "def", body)
    body = re.sub(r"\basync (for|with)\b", r"\1", body)
    body = re.sub(r"\bawait\s+", "", body)
    body = re.sub(r"\bimport grpc\.aio\n", "", body)
    for name, sync in RENAMES.items():
        body = re.sub(rf"\b{re.escape(name)}\b", sync, body)
    # A sync generator hands on what another yields in one statement.
    body = re.sub(r"for (\w+) in ([^\n]+):\n(\s+)yield \1\n", r"yield from \2\n", body)
    leftover = re.search(r"\b(async|await)\b|grpc\.aio", body)
    if leftover:
        line = body.count("\n", 0, leftover.start()) + text.count("\n", 0, docstring_end) + 1
        raise SystemExit(f"{source}:{line}: {leftover.group(0)!r} is left after the rewrite; teach RENAMES")
    return _formatted(HEADER.format(source=source) + body, PACKAGE / FILES[source])


def _formatted(source: str, target: Path) -> str:
    """As ruff sorts and formats it (renamed imports move, some go unused; lines without `await` may join)."""
    for command in (["check", "--select", "I,F401", "--fix-only", "--quiet"], ["format"]):
        source = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--stdin-filename", str(target), "-"],
            input=source, capture_output=True, text=True, check=True, cwd=ROOT,
        ).stdout  # fmt: skip
    return source


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail when a generated file is not fresh")
    options = parser.parse_args()
    stale = []
    for source, target in FILES.items():
        wanted = unasync((PACKAGE / source).read_text(), source)
        path = PACKAGE / target
        if options.check:
            if not path.exists() or path.read_text() != wanted:
                stale.append(path)
        else:
            path.write_text(wanted)
    for path in stale:
        print(f"{path.relative_to(ROOT)} is stale: run `make unasync` and commit it", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
