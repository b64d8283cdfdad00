"""The sync client is generated from the async one: both expose the same public methods, with the same signatures,
and the committed sync_client.py is what scripts/unasync.py writes today."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

from taskservice.client import AsyncTaskClient, TaskClient

ROOT = Path(__file__).resolve().parents[2]


def _public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, callable)
        if not name.startswith("_") or name in ("__enter__", "__exit__", "__aenter__", "__aexit__")
    }


def _sync_text(signature: inspect.Signature) -> str:
    """A signature as the sync client would write it: the async-only names taken out."""
    text = str(signature)
    for name, sync in (("AsyncTaskClient", "TaskClient"), ("AsyncTaskRun", "TaskRun"), ("AsyncIterator", "Iterator")):
        text = text.replace(name, sync)
    return text


def test_both_clients_have_the_same_methods_and_signatures() -> None:
    sync = _public_methods(TaskClient)
    asynchronous = {
        name.replace("__aenter__", "__enter__").replace("__aexit__", "__exit__"): signature
        for name, signature in _public_methods(AsyncTaskClient).items()
    }
    assert len(sync) > 30, "the check sees the clients' methods"
    assert sorted(sync) == sorted(asynchronous)
    differing = {name for name in sync if str(sync[name]) != _sync_text(asynchronous[name])}
    assert differing == set()


def test_every_async_method_is_a_coroutine_or_an_async_iterator() -> None:
    for name, member in inspect.getmembers(AsyncTaskClient, inspect.isfunction):
        if name.startswith("_") and name not in ("__aenter__", "__aexit__"):
            continue
        returns = str(inspect.signature(member).return_annotation)
        assert inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member) or "Async" in returns, name


def test_the_generated_sync_client_is_fresh() -> None:
    done = subprocess.run([sys.executable, "scripts/unasync.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_check_sees_a_stale_sync_client(tmp_path: Path) -> None:
    # A copy of the script pointed at a copy of the package, with the generated file edited by hand.
    package = tmp_path / "taskservice" / "client"
    package.mkdir(parents=True)
    for name in ("async_client.py", "sync_client.py"):
        (package / name).write_text((ROOT / "taskservice" / "client" / name).read_text())
    (package / "sync_client.py").write_text((package / "sync_client.py").read_text() + "\n# edited by hand\n")
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "unasync.py").write_text((ROOT / "scripts" / "unasync.py").read_text())
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    check = [sys.executable, "scripts/unasync.py", "--check"]
    done = subprocess.run(check, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 1 and "stale" in done.stderr
