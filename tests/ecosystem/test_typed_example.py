"""mypy --strict holds a typed Submit to its handler's signature: the example passes, a wrong arg type fails."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "typed"
# scripts/typecheck.sh's (which checks the example too, so CI runs these warm): run from the checkout as it runs.
CACHE = ROOT / ".venv" / ".mypy_cache"
pytestmark = pytest.mark.skipif(shutil.which("mypy", path=str(Path(sys.executable).parent)) is None,
                                reason="mypy is in the dev extra")  # fmt: skip


def _mypy(folder: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(CACHE), str(folder)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def _copy_with(tmp_path: Path, old: str, new: str) -> Path:
    copy = tmp_path / "typed"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    caller = copy / "make_thumbnails.py"
    text = caller.read_text()
    assert old in text, "the example still holds the line the test changes"
    caller.write_text(text.replace(old, new))
    return copy


def test_the_typed_example_passes_mypy_strict() -> None:
    done = _mypy(EXAMPLE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_wrong_arg_type_fails_mypy(tmp_path: Path) -> None:
    done = _mypy(_copy_with(tmp_path, "name=names[0], width=640)", 'name=names[0], width="640")'))
    assert done.returncode == 1
    assert 'make_thumbnails.py:16: error: No overload variant of "submit" of "TaskDef" matches' in done.stdout
    assert '"TaskClient", "str", "str"' in done.stdout


def test_a_wrong_result_type_fails_mypy(tmp_path: Path) -> None:
    done = _mypy(_copy_with(tmp_path, "made = first.result(timeout=60)", "made: str = first.result(timeout=60)"))
    assert done.returncode == 1
    assert 'Incompatible types in assignment (expression has type "Thumbnail", variable has type "str")' in done.stdout
