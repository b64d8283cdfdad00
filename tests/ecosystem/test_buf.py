"""scripts/buf-breaking.sh catches a renumbered or removed field against any committed version of protos/, in a
temp git repository made from this repository's protos and buf.yaml (plus a probe message the test edits); an added
field passes; buf lint passes on this repository."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "buf-breaking.sh"
PROTO = Path("protos/taskservice/v1/task_service.proto")
# Any command here ends well within this many seconds.
COMMAND_SECONDS = 120
PROBE = """
// Only in the test's copy of the contract.
message BreakingProbe {
  string kept = 1;
  string moved = 2;
  string dropped = 3;
}
"""


def find_buf() -> str | None:
    beside = ROOT / ".venv" / "bin" / "buf"
    return str(beside) if os.access(beside, os.X_OK) else shutil.which("buf")


BUF = find_buf()
if BUF is None:
    pytest.skip("buf not found: install the buf-bin package (the dev extra)", allow_module_level=True)


def run(*command: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "BUF": str(BUF),
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.invalid",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
        stdin=subprocess.DEVNULL,
    )


def git(repo: Path, *args: str) -> str:
    result = run("git", *args, cwd=repo)
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout


def check(repo: Path) -> subprocess.CompletedProcess[str]:
    # Run from elsewhere, with the repository as the argument.
    return run("bash", SCRIPT, repo, cwd=ROOT)


def edit(repo: Path, old: str, new: str) -> None:
    path = repo / PROTO
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not in the proto exactly once"
    path.write_text(text.replace(old, new))


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Path]:
    """A git repository holding this repository's buf.yaml and protos/, in one commit."""
    repo = tmp_path / "contract"
    shutil.copytree(ROOT / "protos", repo / "protos")
    shutil.copy2(ROOT / "buf.yaml", repo / "buf.yaml")
    # A message of the test's own, so the edits below stay unique however the real contract grows.
    with (repo / PROTO).open("a") as proto:
        proto.write(PROBE)
    git(repo, "init", "-q", "-b", "main")
    commit(repo, "contract v1")
    yield repo


def test_the_unchanged_contract_passes(repo: Path) -> None:
    result = check(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "compatible with all 1 committed version(s)" in result.stdout


def test_an_added_field_passes_committed_or_not(repo: Path) -> None:
    edit(repo, "  string dropped = 3;\n", "  string dropped = 3;\n  string added = 4;\n")
    result = check(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    commit(repo, "BreakingProbe.added")
    result = check(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "compatible with all 2 committed version(s)" in result.stdout


def test_a_renumbered_field_fails_with_bufs_message(repo: Path) -> None:
    edit(repo, "  string moved = 2;", "  string moved = 20;")
    commit(repo, "renumber BreakingProbe.moved")
    result = check(repo)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BREAKING against" in result.stdout
    assert "task_service.proto" in result.stdout and '"moved"' in result.stdout and "BreakingProbe" in result.stdout
    assert "never renamed, renumbered or removed" in result.stderr


def test_a_removed_field_fails_against_an_older_version_too(repo: Path) -> None:
    # v1, then an added field (fine), then that field and an original one removed: both versions must object.
    edit(repo, "  string dropped = 3;\n", "  string dropped = 3;\n  bool extra = 4;\n")
    commit(repo, "BreakingProbe.extra")
    edit(repo, "  string dropped = 3;\n  bool extra = 4;\n", "")
    result = check(repo)  # uncommitted: the working tree is what is checked
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.count("BREAKING against") == 2
    assert "deleted" in result.stdout and '"dropped"' in result.stdout
    commit(repo, "drop BreakingProbe.dropped and extra")
    result = check(repo)
    assert result.returncode == 1 and result.stdout.count("BREAKING against") == 2, result.stdout


def test_a_shallow_clone_checks_the_history_it_has_and_says_so(repo: Path, tmp_path: Path) -> None:
    edit(repo, "  string dropped = 3;\n", "  string dropped = 3;\n  bool follow_up = 4;\n")
    commit(repo, "BreakingProbe.follow_up")
    shallow = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo}", str(shallow))
    result = check(shallow)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "shallow clone" in result.stdout and "1 version(s)" in result.stdout
    edit(shallow, "  bool follow_up = 4;\n", "")
    result = check(shallow)
    assert result.returncode == 1, result.stdout + result.stderr


def test_not_a_repository_is_an_error_not_a_pass(tmp_path: Path) -> None:
    (tmp_path / "protos").mkdir()
    result = check(tmp_path)
    assert result.returncode == 2
    assert "not a git repository" in result.stderr


def test_this_repository_passes_breaking_and_lint() -> None:
    result = check(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    lint = run(str(BUF), "lint", cwd=ROOT)
    assert lint.returncode == 0, lint.stdout + lint.stderr
