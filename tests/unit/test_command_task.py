"""The `command` task type at engine level: real child processes (tiny Python scripts), real process groups."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskservice.core.board import SQLiteBoard
from taskservice.core.engine.manager import ManagerConfig, WorkerManager
from taskservice.core.handlers.logs import TaskLogs
from taskservice.core.handlers.paths import DataRoot
from taskservice.core.handlers.registry import TaskRegistry
from taskservice.core.model.errors import InvalidRequest
from taskservice.core.model.models import Task, TaskState
from taskservice.tasks.command import (
    CommandCatalog,
    CommandConfigError,
    load_commands,
    register_command_task,
)
from taskservice.tasks.command_run import parse_progress
from tests.support.engine import wait_final
from tests.support.waiting import wait_until

SCRIPTS = Path(__file__).parents[1] / "support" / "commands"
EXAMPLES = Path(__file__).parents[2] / "examples" / "commands.toml"
STOP_GRACE = 1.0


def argv(script: str, *args: str) -> str:
    """A TOML array running one of the helper scripts with this interpreter (JSON strings are TOML strings)."""
    return json.dumps([sys.executable, str(SCRIPTS / script), *args])


CATALOG = f"""
[commands.act]
argv = {argv("act.py", "{program}")}
description = "scripted output, waits and exit codes"
[commands.act.args]
program = {{ type = "string", allow_dash = true }}

[commands.frames]
argv = {argv("act.py", "{program}")}
progress = 'frame=\\s*(?P<current>\\d+)/(?P<total>\\d+)'
[commands.frames.args]
program = {{ type = "string" }}

[commands.where]
argv = {argv("act.py", "pwd;env=GREETING;env=LEAKED;env=PATH")}
cwd = "work/sub"
env = {{ GREETING = "hi" }}

[commands.reader]
argv = {argv("act.py", "wait={gate};cat={input_fpath}")}
[commands.reader.args]
gate = {{ type = "string" }}

[commands.upper]
argv = {argv("upper.py", "{input_fpath}", "--out={output_fpath}", "{code}")}
[commands.upper.args]
code = {{ type = "integer", min = 0, max = 255, default = 0 }}

[commands.stubborn]
argv = {argv("stubborn.py", "{pid_file}")}
[commands.stubborn.args]
pid_file = {{ type = "string" }}

[commands.forker]
argv = {argv("forker.py", "{mode}", "{folder}")}
[commands.forker.args]
mode = {{ type = "string", choices = ["wait", "exit"] }}
folder = {{ type = "string" }}

[commands.show]
argv = {argv("show_argv.py", "{text}", "--label={label}")}
[commands.show.args]
text = {{ type = "string" }}
label = {{ type = "string", default = "x" }}

[commands.typed]
argv = {argv("show_argv.py", "{word}", "{count}", "{ratio}", "{loud}", "{speed}")}
[commands.typed.args]
word = {{ type = "string", pattern = "[a-z]+" }}
count = {{ type = "integer", min = 1, max = 10, default = 3 }}
ratio = {{ type = "number", min = 0, max = 1, default = 0.5 }}
loud = {{ type = "boolean", default = false }}
speed = {{ type = "string", choices = ["fast", "slow"], default = "fast" }}

[commands.missing]
argv = ["/nonexistent/taskservice-test-program"]
"""


class Harness:
    """A started manager whose registry holds only `command`, over a data root and task logs in tmp_path."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.root = tmp_path / "data"
        self.logs = TaskLogs(tmp_path / "logs")
        self._managers: list[WorkerManager] = []

    def manager(self, toml: str = CATALOG) -> WorkerManager:
        path = self.tmp / "commands.toml"
        path.write_text(toml)
        return self.manager_for(load_commands(path))

    def manager_for(self, catalog: CommandCatalog) -> WorkerManager:
        registry = TaskRegistry()
        register_command_task(registry, catalog)
        manager = WorkerManager(
            SQLiteBoard(self.tmp / f"tasks-{len(self._managers)}.db"),
            registry,
            config=ManagerConfig(workers=2, stop_grace=STOP_GRACE),
            data_root=DataRoot(self.root),
            logs=self.logs,
        )
        manager.start()
        self._managers.append(manager)
        return manager

    def log(self, task_id: str) -> str:
        return self.logs.read(task_id, 0, 1 << 20).data.decode()

    def close(self) -> None:
        for manager in self._managers:
            manager.close()
            manager.board.close()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.close()


def submit(manager: WorkerManager, args: dict[str, Any], **options: Any) -> str:
    return manager.submit("command", args, **options).task.task_id


def progress_reaches(manager: WorkerManager, task_id: str, percent: float, message: str = "") -> Task:
    def reached() -> Task | None:
        task = manager.get(task_id)
        if task.state.is_terminal:
            raise AssertionError(f"task ended {task.state} before progress {percent}: {task.error}")
        ok = task.progress.percent == percent and message in task.progress.message
        return task if ok else None

    return wait_until(reached, timeout=10, what=f"progress {percent}% {message!r}")


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# ----------------------------------------------------------------------------- running


def test_progress_lines_and_tqdm_redraws_are_published_and_all_output_is_logged(harness: Harness) -> None:
    manager = harness.manager()
    gate1, gate2 = harness.tmp / "gate1", harness.tmp / "gate2"
    program = ";".join(
        [
            "out=hello from stdout",
            "err=hello from stderr",
            "out=PROGRESS 25 first quarter",
            f"wait={gate1}",
            "cr=  0%|          | 0/10",
            "cr=train:  50%|#####     | 5/10 [00:01<00:01]",
            f"wait={gate2}",
            "out=PROGRESS 100 done",
        ]
    )
    task_id = submit(manager, {"name": "act", "program": program})

    progress_reaches(manager, task_id, 25, "first quarter")
    gate1.touch()
    # The tqdm bar is parsed from the last \r segment while the line is still open.
    seen = progress_reaches(manager, task_id, 50, "5/10")
    assert seen.progress.message == "train: 50% 5/10 [00:01<00:01]"
    gate2.touch()

    final = wait_final(manager, task_id)
    assert final.state is TaskState.SUCCESS, final.error
    assert final.result["exit_code"] == 0 and final.result["duration_seconds"] >= 0
    assert final.progress.percent == 100 and final.progress.message == "done"
    log = harness.log(task_id)
    for text in ("hello from stdout\n", "hello from stderr\n", "\r  0%|", "\rtrain:  50%|#####", "PROGRESS 100 done"):
        assert text in log


def test_the_operators_progress_pattern_replaces_the_default_ones(harness: Harness) -> None:
    manager = harness.manager()
    gate = harness.tmp / "gate"
    task_id = submit(manager, {"name": "frames", "program": f"out=PROGRESS 90;out=frame=  3/12 fps=30;wait={gate}"})
    seen = progress_reaches(manager, task_id, 25)
    assert (seen.progress.current, seen.progress.total) == (3, 12)
    gate.touch()
    assert wait_final(manager, task_id).state is TaskState.SUCCESS


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("PROGRESS 42", (42.0, "")),
        ("PROGRESS 7.5 copying blocks", (7.5, "copying blocks")),
        (" 50%|#####     | 5/10 [00:01<00:01, 4.9it/s]", (50.0, "50% 5/10 [00:01<00:01, 4.9it/s]")),
        ("done: 100%", (100.0, "done: 100%")),
        ("progress is nice", None),
        ("1234%", None),
    ],
)
def test_default_progress_patterns(line: str, expected: tuple[float, str] | None) -> None:
    parsed = parse_progress(line)
    assert (None if parsed is None else (parsed.percent, parsed.message)) == expected


def test_non_zero_exit_is_failure_with_the_code_and_the_stderr_tail(harness: Harness) -> None:
    manager = harness.manager()
    lines = ";".join(f"err=line {n}" for n in range(1, 31))
    final = wait_final(manager, submit(manager, {"name": "act", "program": f"{lines};exit=3"}))
    assert final.state is TaskState.FAILURE
    assert final.error is not None and final.error.type == "CommandFailed"
    assert "command 'act' exited with code 3" in final.error.message
    assert "line 11\n" in final.error.message and final.error.message.endswith("line 30")
    assert "line 10\n" not in final.error.message  # only the last 20 lines


def test_death_by_signal_is_failure_naming_the_signal(harness: Harness) -> None:
    manager = harness.manager()
    task_id = submit(manager, {"name": "act", "program": f"err=about to die;signal={signal.SIGKILL}"})
    final = wait_final(manager, task_id)
    assert final.state is TaskState.FAILURE and final.error is not None
    assert "killed by signal SIGKILL" in final.error.message and "about to die" in final.error.message


def test_a_program_that_cannot_start_is_a_failure(harness: Harness) -> None:
    manager = harness.manager()
    final = wait_final(manager, submit(manager, {"name": "missing"}))
    assert final.state is TaskState.FAILURE and final.error is not None
    assert final.error.type == "CommandFailed" and "could not start" in final.error.message


def test_a_command_reads_the_checked_input_even_when_it_is_swapped_for_a_link_out_while_it_runs(
    harness: Harness,
) -> None:
    manager = harness.manager()
    (harness.root / "in").mkdir(parents=True)
    (harness.root / "in" / "a.txt").write_text("inside")
    (harness.tmp / "secret.txt").write_text("outside the data root")
    gate = harness.tmp / "gate"
    task_id = submit(manager, {"name": "reader", "input_fpath": "in/a.txt", "gate": str(gate)})
    wait_until(lambda: "running command" in harness.log(task_id), what="the command started")
    os.rename(harness.root / "in" / "a.txt", harness.root / "in" / "moved.txt")
    os.symlink(harness.tmp / "secret.txt", harness.root / "in" / "a.txt")
    gate.touch()
    assert wait_final(manager, task_id).state is TaskState.SUCCESS
    assert "inside" in harness.log(task_id)
    assert "outside the data root" not in harness.log(task_id)


def test_the_output_file_appears_only_when_the_command_succeeds(harness: Harness) -> None:
    manager = harness.manager()
    (harness.root / "in").mkdir(parents=True)
    (harness.root / "in" / "a.txt").write_text("hello")
    ok = submit(manager, {"name": "upper", "input_fpath": "in/a.txt", "output_fpath": "out/ok.txt"})
    assert wait_final(manager, ok).state is TaskState.SUCCESS
    assert (harness.root / "out" / "ok.txt").read_text() == "HELLO"

    bad = submit(manager, {"name": "upper", "input_fpath": "in/a.txt", "output_fpath": "out/bad.txt", "code": 2})
    assert wait_final(manager, bad).state is TaskState.FAILURE
    assert sorted(p.name for p in (harness.root / "out").iterdir()) == ["ok.txt"]  # no bad.txt, no .part left
    # It did write, to the staged file, which the command reaches by descriptor; the log says which file that is.
    assert "wrote --out=/proc/self/fd/" in harness.log(bad)
    assert "output_fpath 'out/bad.txt' is /proc/self/fd/" in harness.log(bad)

    kept = submit(
        manager,
        {"name": "upper", "input_fpath": "in/a.txt", "output_fpath": "out/kept.txt", "code": 1, "clear_nodes": False},
    )
    assert wait_final(manager, kept).state is TaskState.FAILURE
    assert [p.read_text() for p in (harness.root / "out").glob(".kept.txt.*.part")] == ["HELLO"]


def test_cwd_under_the_data_root_and_a_minimal_environment(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEAKED", "secret")
    manager = harness.manager()
    task_id = submit(manager, {"name": "where"})
    assert wait_final(manager, task_id).state is TaskState.SUCCESS
    log = harness.log(task_id)
    assert f"cwd={harness.root.resolve() / 'work' / 'sub'}\n" in log
    assert "GREETING=hi\n" in log and "LEAKED unset\n" in log and f"PATH={os.environ['PATH']}\n" in log


def test_a_value_with_spaces_stays_one_argument(harness: Harness) -> None:
    manager = harness.manager()
    task_id = submit(manager, {"name": "show", "text": "a b  c; rm -rf / $(x) 'q'", "label": "-rf two words"})
    assert wait_final(manager, task_id).state is TaskState.SUCCESS
    printed = next(json.loads(line) for line in harness.log(task_id).splitlines() if line.startswith("{"))
    assert printed == {"argc": 3, "args": ["a b  c; rm -rf / $(x) 'q'", "--label=-rf two words"]}


# ----------------------------------------------------------------------------- stop, limits, no orphans


def test_stop_kills_a_command_that_ignores_sigterm_after_the_grace(harness: Harness) -> None:
    manager = harness.manager()
    pid_file = harness.tmp / "stubborn.pid"
    task_id = submit(manager, {"name": "stubborn", "pid_file": str(pid_file)})
    pid = int(wait_until(lambda: pid_file.exists() and pid_file.read_text(), what="the child's pid file"))

    stopped_at = time.monotonic()
    manager.stop(task_id)
    final = wait_final(manager, task_id)
    elapsed = time.monotonic() - stopped_at

    assert final.state is TaskState.REVOKED
    assert final.error is not None and "abandoned" not in final.error.message  # the handler returned in time
    assert STOP_GRACE - 0.3 <= elapsed < STOP_GRACE + 1.0, elapsed  # SIGTERM was ignored: SIGKILL ended it
    assert gone(pid)  # killed and reaped
    assert "ignored SIGTERM" in harness.log(task_id)


@pytest.fixture
def subreaper() -> Iterator[None]:
    """Make this process adopt orphaned descendants, so a grandchild's death can be reaped and checked here.

    (Here pid 1 may never reap orphans, and a zombie still answers kill(pid, 0).)
    """
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_CHILD_SUBREAPER is Linux only")
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_child_subreaper = 36
    if libc.prctl(pr_set_child_subreaper, 1, 0, 0, 0) != 0:
        pytest.skip(f"prctl(PR_SET_CHILD_SUBREAPER) failed: errno {ctypes.get_errno()}")
    yield
    libc.prctl(pr_set_child_subreaper, 0, 0, 0, 0)


def reaped_signal(pid: int) -> int:
    """Reap an adopted orphan; the signal that killed it (waits up to 5 s)."""

    def reap() -> tuple[int, int] | None:
        done_pid, status = os.waitpid(pid, os.WNOHANG)
        return (done_pid, status) if done_pid else None

    _, status = wait_until(reap, timeout=5, what=f"process {pid} to die")
    assert os.WIFSIGNALED(status), f"process {pid} exited with status {status} instead of being killed"
    return os.WTERMSIG(status)


def test_stop_leaves_neither_the_child_nor_its_grandchild(harness: Harness, subreaper: None) -> None:
    manager = harness.manager()
    task_id = submit(manager, {"name": "forker", "mode": "wait", "folder": str(harness.tmp)})
    wait_until(lambda: (harness.tmp / "child.pid").exists(), what="the child and the grandchild")
    child = int((harness.tmp / "child.pid").read_text())
    grandchild = int((harness.tmp / "grandchild.pid").read_text())

    stopped_at = time.monotonic()
    manager.stop(task_id)
    final = wait_final(manager, task_id)
    assert final.state is TaskState.REVOKED
    assert time.monotonic() - stopped_at < STOP_GRACE + 1.0
    assert gone(child)  # reaped by the handler
    # The grandchild ignores SIGTERM: the SIGKILL to the group ended it.
    assert reaped_signal(grandchild) == signal.SIGKILL
    assert gone(grandchild)


def test_a_command_that_exits_leaves_no_background_process_behind(harness: Harness, subreaper: None) -> None:
    manager = harness.manager()
    task_id = submit(manager, {"name": "forker", "mode": "exit", "folder": str(harness.tmp)})
    final = wait_final(manager, task_id, timeout=10)  # does not hang on the grandchild's open stdout
    assert final.state is TaskState.SUCCESS, final.error
    grandchild = int((harness.tmp / "grandchild.pid").read_text())
    assert reaped_signal(grandchild) == signal.SIGKILL


def test_a_time_limit_ends_the_command_timed_out(harness: Harness) -> None:
    manager = harness.manager()
    started = time.monotonic()
    task_id = submit(manager, {"name": "act", "program": f"out=started;wait={harness.tmp / 'never'}"}, time_limit=0.5)
    final = wait_final(manager, task_id)
    assert final.state is TaskState.TIMED_OUT
    assert time.monotonic() - started < 0.5 + STOP_GRACE + 1.0
    assert "started" in harness.log(task_id)


CAPPED = f"""
[commands.capped]
argv = {argv("act.py", "{program}")}
time_limit = "500ms"
[commands.capped.args]
program = {{ type = "string" }}

[commands.open]
argv = {argv("act.py", "{program}")}
[commands.open.args]
program = {{ type = "string" }}
"""


def test_a_commands_time_limit_is_the_default_and_the_most_a_submit_may_ask(harness: Harness) -> None:
    manager = harness.manager(CAPPED)
    quick = {"name": "capped", "program": "out=hi"}
    assert manager.submit("command", quick).task.time_limit == 0.5
    assert manager.submit("command", quick, time_limit=0.25).task.time_limit == 0.25
    with pytest.raises(InvalidRequest) as refused:
        manager.submit("command", quick, time_limit=60)
    assert refused.value.message.startswith("a time limit of 60 s is more than command 'capped' allows")
    assert refused.value.field_violations == [
        ("time_limit", "at most 0.5 s for this command (its time_limit in the commands file)")
    ]
    assert manager.submit("command", {"name": "open", "program": "out=hi"}).task.time_limit is None


def test_a_command_with_a_time_limit_times_out_without_one_from_the_client(harness: Harness) -> None:
    manager = harness.manager(CAPPED)
    task_id = submit(manager, {"name": "capped", "program": f"out=started;wait={harness.tmp / 'never'}"})
    final = wait_final(manager, task_id)
    assert final.state is TaskState.TIMED_OUT and final.time_limit == 0.5
    assert final.error is not None and final.error.message == "time limit of 0.5 s passed"


# ----------------------------------------------------------------------------- Submit checks


def violations_of(manager: WorkerManager, args: dict[str, Any]) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        manager.submit("command", args)
    return caught.value


def test_an_unknown_command_name_is_rejected_naming_the_allowed_ones(harness: Harness) -> None:
    error = violations_of(harness.manager(), {"name": "rm"})
    assert [field for field, _ in error.field_violations] == ["args.name"]
    assert "unknown command 'rm'" in error.message and "act, forker, frames, missing, reader, show" in error.message


def test_a_server_without_a_commands_file_allows_none(harness: Harness) -> None:
    error = violations_of(harness.manager_for(CommandCatalog.empty()), {"name": "act"})
    assert error.field_violations[0][0] == "args.name" and "--commands" in error.message


def test_a_value_that_would_read_as_a_flag_is_rejected(harness: Harness) -> None:
    manager = harness.manager()
    error = violations_of(manager, {"name": "show", "text": "-rf"})
    assert error.field_violations == [("args.text", "may not start with '-': the command would read it as an option")]
    # Inside an element (--label=...) or with allow_dash = true, a dash is just text.
    label_task = submit(manager, {"name": "show", "text": "ok", "label": "-rf"})
    assert wait_final(manager, label_task).state is TaskState.SUCCESS
    assert '"--label=-rf"' in harness.log(label_task)
    submit(manager, {"name": "act", "program": "-out=x"})  # accepted: `program` says allow_dash = true


@pytest.mark.parametrize(
    ("args", "field", "reason"),
    [
        ({"name": "show", "text": "a", "extra": 1}, "args.extra", "unknown argument of command 'show'"),
        ({"name": "show"}, "args.text", "required by command 'show'"),
        ({"name": "show", "text": 5}, "args.text", "expected a string"),
        ({"name": "typed", "word": "Nope"}, "args.word", "must match the pattern '[a-z]+'"),
        ({"name": "typed", "word": "ok", "count": 11}, "args.count", "must be at most 10"),
        ({"name": "typed", "word": "ok", "count": 2.5}, "args.count", "expected an integer"),
        ({"name": "typed", "word": "ok", "ratio": -0.1}, "args.ratio", "must be at least 0"),
        ({"name": "typed", "word": "ok", "loud": "yes"}, "args.loud", "expected a boolean"),
        ({"name": "typed", "word": "ok", "speed": "warp"}, "args.speed", "must be one of: fast, slow"),
        ({"name": "typed", "word": "a\x00b"}, "args.word", "NUL"),
        ({"name": "upper", "output_fpath": "o.txt"}, "args.input_fpath", "required by command 'upper'"),
        ({"name": "show", "text": "a", "output_fpath": "o.txt"}, "args.output_fpath", "takes no output_fpath"),
    ],
)
def test_args_are_checked_against_the_commands_declaration(
    harness: Harness, args: dict[str, Any], field: str, reason: str
) -> None:
    error = violations_of(harness.manager(), args)
    assert any(f == field and reason in why for f, why in error.field_violations), error.field_violations


def test_typed_args_are_rendered_as_argv_text(harness: Harness) -> None:
    manager = harness.manager()
    task_id = submit(manager, {"name": "typed", "word": "ok", "count": 7.0, "ratio": 0.25, "loud": True})
    assert wait_final(manager, task_id).state is TaskState.SUCCESS
    printed = next(json.loads(line) for line in harness.log(task_id).splitlines() if line.startswith("{"))
    assert printed["args"] == ["ok", "7", "0.25", "true", "fast"]


def test_the_command_type_is_not_rerun_after_a_crash() -> None:
    registry = TaskRegistry()
    task_type = register_command_task(registry, CommandCatalog.empty())
    assert task_type.name == "command" and not task_type.rerun_on_restart


# ----------------------------------------------------------------------------- the commands file


ARGV = '["prog", "{x}"]'


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[commands.a\n", "not valid TOML"),
        ("", "no commands defined"),
        ('shell = true\n[commands.a]\nargv = ["ls"]', "shell: unknown top-level key"),
        ('[commands."a b"]\nargv = ["ls"]', "command name is"),
        ('[commands.a]\nargv = ["ls"]\nshell = true', "commands.a.shell: unknown key (allowed: argv,"),
        ('[commands.a]\ndescription = "x"', "commands.a: argv is missing"),
        ("[commands.a]\nargv = []", "commands.a.argv: must be a non-empty list of strings"),
        ('[commands.a]\nargv = "ls -l"', "commands.a.argv: must be a non-empty list of strings"),
        ('[commands.a]\nargv = ["ls", 1]', "commands.a.argv: must be a non-empty list of strings"),
        ('[commands.a]\nargv = ["ls", "{nope}"]', "commands.a.argv[1]: placeholder {nope} is not a declared arg"),
        ('[commands.a]\nargv = ["{x}"]\nargs.x = { type = "string" }', "commands.a.argv[0]: the program must be"),
        ('[commands.a]\nargv = ["ls", "{x!r}"]\nargs.x = { type = "string" }', "must be a plain {name}"),
        ('[commands.a]\nargv = ["ls", "{x"]', "commands.a.argv[1]: expected '}'"),
        ('[commands.a]\nargv = ["ls"]\nargs.x = { type = "string" }', "commands.a.args.x: declared but not used"),
        (f'[commands.a]\nargv = {ARGV}\nargs.x = {{ type = "string", maxx = 1 }}', "commands.a.args.x.maxx"),
        (f'[commands.a]\nargv = {ARGV}\nargs.x = {{ type = "str" }}', "args.x.type: must be one of string"),
        (f'[commands.a]\nargv = {ARGV}\nargs.x = {{ type = "integer", min = 1, default = 0 }}', "args.x.default"),
        (f'[commands.a]\nargv = {ARGV}\nargs.x = {{ type = "string", min = 1 }}', "only integer and number"),
        (f'[commands.a]\nargv = {ARGV}\nargs.x = {{ type = "string", pattern = "(" }}', "not a valid regular"),
        (f'[commands.a]\nargv = {ARGV}\nargs.x = {{ type = "string", choices = ["-v"] }}', "allow_dash = true"),
        (f'[commands.a]\nargv = {ARGV}\nargs.name = {{ type = "string" }}', "args.name: an arg name is"),
        ('[commands.a]\nargv = ["ls"]\nprogress = "("', "commands.a.progress: not a valid regular expression"),
        ('[commands.a]\nargv = ["ls"]\nprogress = "\\\\d+%"', "needs a named group"),
        ('[commands.a]\nargv = ["ls"]\ncwd = "/tmp"', "commands.a.cwd: must be a relative folder"),
        ('[commands.a]\nargv = ["ls"]\ncwd = "a/../.."', "commands.a.cwd: must be a relative folder"),
        ('[commands.a]\nargv = ["ls"]\nenv = { X = 1 }', "commands.a.env.X: must be a string"),
        ('[commands.a]\nargv = ["ls"]\ntime_limit = "soon"', "commands.a.time_limit: 'soon' is not a duration"),
        ('[commands.a]\nargv = ["ls"]\ntime_limit = 0', "commands.a.time_limit: must be more than 0"),
        (
            '[commands.a]\nargv = ["ls"]\ntime_limit = 40000000',
            "commands.a.time_limit: must be more than 0 and at most",
        ),
        ('[commands.a]\nargv = ["ls"]\ntime_limit = true', "commands.a.time_limit: must be a number of seconds"),
        ('[commands.a]\nargv = ["ls"]\nlimit = "2h"', "commands.a.limit: unknown key"),
    ],
)
def test_a_bad_commands_file_is_rejected_with_a_clear_message(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "commands.toml"
    path.write_text(toml)
    with pytest.raises(CommandConfigError) as caught:
        load_commands(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_a_missing_commands_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(CommandConfigError, match="cannot read the commands file"):
        load_commands(tmp_path / "nope.toml")


def test_the_example_commands_file_loads_and_its_checksum_command_runs(harness: Harness) -> None:
    catalog = load_commands(EXAMPLES)
    assert {"checksum", "compress", "pause"} <= set(catalog)
    if not shutil.which("sha256sum"):
        pytest.skip("sha256sum is not installed")
    manager = harness.manager_for(catalog)
    harness.root.mkdir(parents=True, exist_ok=True)
    (harness.root / "a.txt").write_text("abc")
    task_id = submit(manager, {"name": "checksum", "input_fpath": "a.txt"})
    assert wait_final(manager, task_id).state is TaskState.SUCCESS
    assert "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" in harness.log(task_id)
