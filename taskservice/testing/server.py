"""TaskServer: `taskservice serve` as a child process for a test suite, with everything it writes in a temp dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from taskservice.client import AsyncTaskClient, TaskClient, TaskServiceError

# How long a server may take to come up, and to drain when stopped, seconds.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


class TaskServerError(RuntimeError):
    """The server did not come up; the message holds the end of its log."""


class TaskServer:
    """A real server on 127.0.0.1 (a free port) over a new SQLite file, running the task types of `tasks` (module
    names, imported by the server as `--tasks` does; the test's sys.path is passed on so that its modules are found).

        with TaskServer(tasks=["myapp.tasks"]) as server, server.client() as client:
            run = resize.submit(client, width=640)

    `workers` worker threads; `extra_args` go to `taskservice serve` as they are (e.g. ["--isolation", "process"]).
    Its data root is `server.data_root` (a folder of the temp dir), for tasks that read and write files.
    """

    def __init__(self, tasks: Iterable[str] = (), *, workers: int = 4, extra_args: Sequence[str] = ()) -> None:
        self.tasks = tuple(tasks)
        self.workers = workers
        self.extra_args = tuple(extra_args)
        self._dir = tempfile.TemporaryDirectory(prefix="taskservice-test-")
        self.root = Path(self._dir.name)
        self.data_root = self.root / "data"
        self.log_path = self.root / "server.log"
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        if self.port is None:
            raise RuntimeError("the server is not started")
        return f"127.0.0.1:{self.port}"

    def client(self, **options: object) -> TaskClient:
        """A client of this server (close it, or use it in a `with`)."""
        return TaskClient(self.address, **options)  # type: ignore[arg-type]

    def async_client(self, **options: object) -> AsyncTaskClient:
        """An asyncio client of this server; make it inside the running event loop."""
        return AsyncTaskClient(self.address, **options)  # type: ignore[arg-type]

    def start(self) -> TaskServer:
        """Start the server and return once it answers calls; TaskServerError, with its log, when it does not."""
        self.data_root.mkdir(exist_ok=True)
        port_file = self.root / "port"
        command = [sys.executable, "-m", "taskservice", "serve", "--listen", "127.0.0.1:0", "--port-file",
                   str(port_file), "--http-listen", "off", "--db", str(self.root / "tasks.db"), "--state-dir",
                   str(self.root / "state"), "--data-root", str(self.data_root), "--workers", str(self.workers),
                   *(arg for module in self.tasks for arg in ("--tasks", module)), *self.extra_args]  # fmt: skip
        # Settings come from here only, not from the TASKSERVICE_* of the shell running the tests.
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASKSERVICE_")}
        env["PYTHONPATH"] = os.pathsep.join(p for p in [os.getcwd(), *sys.path] if p)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        try:
            self.port = self._wait_for_port(port_file)
            self._wait_until_answering()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_for_port(self, port_file: Path) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            text = port_file.read_text().strip() if port_file.exists() else ""
            if text.isdigit():
                return int(text)
            if self._process is not None and self._process.poll() is not None:
                raise TaskServerError(f"the server exited with status {self._process.returncode}:\n{self.log()}")
            time.sleep(0.02)
        raise TaskServerError(f"the server did not listen within {START_TIMEOUT:g} s:\n{self.log()}")

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        with self.client(timeout=2.0) as client:
            while True:
                try:
                    client.list(page_size=1)
                    return
                except TaskServiceError as exc:
                    if time.monotonic() > deadline:
                        late = f"the server did not answer within {START_TIMEOUT:g} s"
                        raise TaskServerError(f"{late}:\n{self.log()}") from exc
                    time.sleep(0.05)

    def log(self) -> str:
        """The server's log so far (the last 4,000 characters)."""
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        """Stop the server (SIGTERM: running tasks are stopped as a shutdown stops them), killing it if it lingers."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def close(self) -> None:
        """Stop the server and remove its files."""
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> TaskServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
