"""Run the real server (`python -m taskservice serve`) as a child process, for tests.

    with ServerProcess(tmp_path / "tasks.db") as server:
        server.start()
        client = TaskClient(server.address)
        server.kill()        # SIGKILL, like a crash
        server.restart()     # same db, same port: clients reconnect to the same address

The first start binds port 0 and learns the port from --port-file; later starts reuse that port so that
the address stays the same. stdout and stderr go to a log file whose tail is part of every failure
message. Leaving the `with` block always kills the process. TASKSERVICE_* variables of the calling
environment are not passed on (settings come from extra_args and env only).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

# How much of the server log a failure message shows.
_LOG_TAIL_CHARS = 4000
# Pause between two looks at the port file / health service while starting.
_POLL_SECONDS = 0.05


class ServerStartError(RuntimeError):
    """The server did not come up (exited, or not SERVING by the deadline)."""


class ServerProcess:
    """The taskservice server as a child process on 127.0.0.1, with a SQLite db at `db_path`."""

    def __init__(
        self,
        db_path: str | os.PathLike[str],
        *,
        workers: int = 2,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        # A postgresql:// URL stays as it is; a file is a path.
        self.db = str(db_path) if str(db_path).startswith(("postgresql://", "postgres://")) else None
        self.db_path = Path(db_path)
        self.workers = workers
        self.extra_args = tuple(extra_args)
        self.env = dict(env) if env is not None else None
        self._tmp = tempfile.TemporaryDirectory(prefix="taskservice-server-")
        self.port_file = Path(self._tmp.name) / "port"
        self.http_port_file = Path(self._tmp.name) / "http-port"
        self.http_port: int | None = None
        self.log_path = Path(self._tmp.name) / "server.log"
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        """'127.0.0.1:PORT' of the running (or last) server."""
        if self.port is None:
            raise RuntimeError("the server has not been started")
        return f"127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        """'http://127.0.0.1:PORT' of the HTTP face of the running (or last) server."""
        if self.http_port is None:
            raise RuntimeError("the server has not been started, or serves no HTTP")
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command(self) -> list[str]:
        listen = f"127.0.0.1:{self.port or 0}"
        # HTTP on a free port too (its default, 8080, would be shared by every server of a test run), unless a
        # test chose.
        http = () if "--http-listen" in self.extra_args else (
            "--http-listen", f"127.0.0.1:{self.http_port or 0}", "--http-port-file", str(self.http_port_file)
        )  # fmt: skip
        return [
            sys.executable,
            "-m",
            "taskservice",
            "serve",
            "--listen",
            listen,
            "--port-file",
            str(self.port_file),
            "--db",
            self.db or str(self.db_path),
            "--workers",
            str(self.workers),
            *http,
            *self.extra_args,
        ]

    def start(self, timeout: float = 15, *, health_check: bool = True) -> ServerProcess:
        """Start the server and wait until it answers health checks with SERVING.

        health_check=False waits only for the port file (the server writes it once it serves): for TLS
        servers, which the plaintext probe cannot reach.
        """
        if self.running:
            raise RuntimeError(f"the server is already running (pid {self.proc.pid})")  # type: ignore[union-attr]
        self.port_file.unlink(missing_ok=True)
        self.http_port_file.unlink(missing_ok=True)
        # TASKSERVICE_* settings of the caller's shell would change the server under test: drop them.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("TASKSERVICE_")}
        env = {**inherited, **(self.env or {}), "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("ab") as log:
            log.write(f"--- {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        deadline = time.monotonic() + timeout
        try:
            self.port = self._wait_for_port(deadline)
            http_port = self.http_port_file.read_text().strip() if self.http_port_file.exists() else ""
            self.http_port = int(http_port) if http_port.isdigit() else self.http_port
            if health_check:
                self._wait_for_serving(deadline)
        except BaseException:
            self.kill()
            raise
        return self

    def restart(self, timeout: float = 15) -> ServerProcess:
        """Start again on the same db and port; kills the current process first if it still runs."""
        self.kill()
        return self.start(timeout)

    def kill(self) -> None:
        """SIGKILL (a crash) and reap; nothing when not running."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def terminate(self, timeout: float = 15) -> int:
        """SIGTERM (graceful drain) and wait up to `timeout` seconds; returns the exit code.

        Raises subprocess.TimeoutExpired when the server did not exit in time (it is still running).
        """
        if self.proc is None:
            raise RuntimeError("the server has not been started")
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def committed(self, task_id: str) -> tuple[str, int] | None:
        """A task's state and attempt as committed to the db (read beside the running server), or None.

        GetState shows RUNNING as soon as a worker takes a task, a moment before it is on disk. A test that
        kills the server and expects what a crash does to a RUNNING task waits for this to say RUNNING first:
        it does once the handler's start is on disk too (a claimed task whose handler never started is PENDING
        again after a crash, whatever its type), "CLAIMED" before.
        """
        with contextlib.closing(sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)) as conn:
            row = conn.execute(
                "SELECT CASE WHEN state = 'RUNNING' AND started_at IS NULL THEN 'CLAIMED' ELSE state END, attempt "
                "FROM tasks WHERE task_id = ?",
                (task_id,),
            ).fetchone()
        return (row[0], row[1]) if row else None

    def log(self) -> str:
        """Everything the server printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, chars: int = _LOG_TAIL_CHARS) -> str:
        return self.log()[-chars:]

    def close(self) -> None:
        """Kill the process and remove the temporary files (the db is the caller's)."""
        self.kill()
        self._tmp.cleanup()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- waiting -----------------------------------------------------------------------------------

    def _fail(self, why: str) -> ServerStartError:
        return ServerStartError(
            f"{why}\ncommand: {' '.join(self.command())}\n--- server log (tail) ---\n{self.log_tail()}"
        )

    def _check_alive(self) -> None:
        assert self.proc is not None
        code = self.proc.poll()
        if code is not None:
            raise self._fail(f"the server exited with code {code} while starting")

    def _wait_for_port(self, deadline: float) -> int:
        while True:
            self._check_alive()
            try:
                text = self.port_file.read_text()
            except FileNotFoundError:
                text = ""
            # The server writes "PORT\n"; without the newline the write may not be complete yet.
            if text.endswith("\n") and text.strip().isdigit():
                return int(text.strip())
            if time.monotonic() >= deadline:
                raise self._fail(f"no port in {self.port_file} before the deadline")
            time.sleep(_POLL_SECONDS)

    def _wait_for_serving(self, deadline: float) -> None:
        last_error = "no answer"
        with grpc.insecure_channel(self.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                self._check_alive()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._fail(f"health check of {self.address} not SERVING before the deadline ({last_error})")
                try:
                    reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=min(left, 1.0))
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                    last_error = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
                except grpc.RpcError as err:
                    last_error = f"{err.code().name}: {err.details()}"  # type: ignore[attr-defined]
                time.sleep(_POLL_SECONDS)
