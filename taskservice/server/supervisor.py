"""`taskservice serve --procs N`: N engine processes, each a whole server (gRPC, HTTP, engine, workers) on the same
ports through SO_REUSEPORT, sharing the board, under this supervisor.

The supervisor holds what one server holds: the SQLite file's lock (it reaps what an earlier server left running,
then its processes share the file as nodes share PostgreSQL), the ports (reserved when port 0 is asked, so every
process binds the same one), the port files (written once every process serves) and the metrics endpoint (the
processes' figures summed). A process that dies is started again, and the leases of its tasks end at once, so
that a sibling's next reap takes them. SIGTERM drains every process; a second signal kills them.
"""

from __future__ import annotations

import contextlib
import http.server
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from taskservice.core.board import DatabaseUnreachable, StoreInUse, is_database_url
from taskservice.core.board.sql.lifecycle import SqlBoard
from taskservice.core.engine.nodes import node_prefix
from taskservice.core.model.errors import StoreOpenError
from taskservice.server import app
from taskservice.server.metrics_sum import summed_metrics
from taskservice.server.settings import Settings

log = logging.getLogger("taskservice")

# How long the processes have to serve at start, and how often the supervisor looks at them.
START_SECONDS = 60.0
LOOK_SECONDS = 0.1
# A process that dies this soon after its start, this many times in a row, is not started again: the server stops.
EARLY_DEATH_SECONDS = 10.0
MOST_EARLY_DEATHS = 3


def process_count(settings: Settings) -> int:
    return settings.procs or os.cpu_count() or 1


class Supervisor:
    def __init__(self, settings: Settings, argv: Sequence[str]) -> None:
        self.settings = settings
        self._argv = list(argv)
        self.count = process_count(settings)
        self._folder = Path(tempfile.mkdtemp(prefix="taskservice-procs-"))
        self._reserved: list[socket.socket] = []
        self._procs: list[subprocess.Popen[bytes] | None] = [None] * self.count
        self._started_at = [0.0] * self.count
        self._early_deaths = [0] * self.count
        self._board: SqlBoard | None = None
        self._lock_fd = -1
        self._stopping = threading.Event()
        self._metrics: http.server.ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------ start

    def open_board(self) -> int:
        """Take the database as one server does; an exit code when it cannot be used, else 0."""
        db = self.settings.db
        try:
            if is_database_url(db):
                from taskservice.core.board.postgres.board import PostgresBoard

                self._board = PostgresBoard(db, pool_size=2)
            else:
                from taskservice.core.board.sqlite.board import SQLiteBoard
                from taskservice.core.board.sqlite.lock import lock_file

                self._lock_fd = lock_file(Path(db))
                self._board = SQLiteBoard(db, lock=False)
        except StoreInUse as exc:
            log.error("%s", exc)
            return app.EXIT_DATABASE_IN_USE
        except DatabaseUnreachable as exc:
            log.error("%s; is the database running, and does --db name it?", exc)
            return app.EXIT_DATABASE_UNREACHABLE
        except StoreOpenError as exc:
            log.error("%s", exc)
            return app.EXIT_BAD_DATABASE
        return 0

    def _reserve(self, listen: str) -> str:
        """host:port with the port fixed: port 0 is bound here (SO_REUSEPORT, never listening) for as long as the
        server runs, so that every process binds the same port."""
        host, _, port = listen.rpartition(":")
        if port != "0":
            return listen
        bare = host.strip("[]") or "0.0.0.0"
        family = socket.AF_INET6 if ":" in bare else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((bare, 0))
        self._reserved.append(sock)
        return f"{host}:{sock.getsockname()[1]}"

    def _command(self, slot: int) -> list[str]:
        s = self.settings
        own = self._folder / str(slot)
        extra = [
            "--procs", "1",
            "--supervised", f"{slot}/{self.count}/{self._folder}",
            "--listen", self._listen,
            "--port-file", str(own) + ".port",
            "--http-listen", self._http_listen,
            "--http-port-file", str(own) + ".http-port" if self._http_listen != "off" else "",
            "--metrics-listen", "127.0.0.1:0" if s.metrics_listen else "",
            "--metrics-port-file", str(own) + ".metrics-port" if s.metrics_listen else "",
        ]  # fmt: skip
        return [sys.executable, "-m", "taskservice", "serve", *self._argv, *extra]

    def _start(self, slot: int) -> None:
        for suffix in (".port", ".http-port", ".metrics-port"):
            (self._folder / f"{slot}{suffix}").unlink(missing_ok=True)
        # Each process handles its own signals; the supervisor forwards SIGTERM and SIGINT (its own group).
        self._procs[slot] = subprocess.Popen(self._command(slot), stdin=subprocess.DEVNULL, start_new_session=True)
        self._started_at[slot] = time.monotonic()

    def _serving(self, slot: int) -> bool:
        return (self._folder / f"{slot}.port").exists()

    # ------------------------------------------------------------------ run

    def run(self) -> int:
        code = self.open_board()
        if code:
            self.close()
            return code
        try:
            self._listen = self._reserve(self.settings.listen)
            self._http_listen = (
                self.settings.http_listen if self.settings.http_listen == "off"
                else self._reserve(self.settings.http_listen)
            )  # fmt: skip
        except OSError as exc:
            log.error("cannot listen on %s: %s", self.settings.listen, exc)
            self.close()
            return app.EXIT_CANNOT_LISTEN
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        for slot in range(self.count):
            self._start(slot)
        code = self._wait_serving()
        if code:
            self._stop_all(0)
            return code
        self._announce()
        return self._watch()

    def _wait_serving(self) -> int:
        deadline = time.monotonic() + START_SECONDS
        while not all(self._serving(slot) for slot in range(self.count)):
            for slot, proc in enumerate(self._procs):
                code = proc.poll() if proc is not None else None
                if code is not None:
                    log.error("engine process %d exited with code %d while starting", slot, code)
                    return code or app.EXIT_BAD_TASKS
            if self._stopping.is_set():
                return app.EXIT_OK
            if time.monotonic() > deadline:
                log.error("the engine processes did not all serve within %g s", START_SECONDS)
                return app.EXIT_CANNOT_LISTEN
            time.sleep(LOOK_SECONDS)
        return 0

    def _announce(self) -> None:
        s = self.settings
        if s.metrics_listen:
            self._serve_metrics()
        grpc_port = (self._folder / "0.port").read_text().strip()
        if s.http_port_file and self._http_listen != "off":
            http_port = (self._folder / "0.http-port").read_text().strip()
            app.write_port_file(s.http_port_file, int(http_port))
        if s.port_file:
            app.write_port_file(s.port_file, int(grpc_port))
        log.info("serving on %s with %d engine processes (db %s)", self._listen, self.count, s.db)

    def _watch(self) -> int:
        while not self._stopping.is_set():
            for slot, proc in enumerate(self._procs):
                code = proc.poll() if proc is not None else None
                if code is None or self._stopping.is_set():
                    continue
                assert proc is not None
                early = time.monotonic() - self._started_at[slot] < EARLY_DEATH_SECONDS
                self._early_deaths[slot] = self._early_deaths[slot] + 1 if early else 0
                ended = self._end_leases(proc.pid)
                log.warning("engine process %d (pid %d) exited with code %d; %d of its tasks go to the next reap; "
                            "starting it again", slot, proc.pid, code, ended)  # fmt: skip
                if self._early_deaths[slot] >= MOST_EARLY_DEATHS:
                    log.error("engine process %d keeps exiting at start (code %d): stopping the server", slot, code)
                    self._stop_all(0)
                    return code or 1
                self._start(slot)
            self._stopping.wait(LOOK_SECONDS)
        return self._stop_all(self.settings.drain + self.settings.stop_grace + 10)

    def _end_leases(self, pid: int) -> int:
        if self._board is None:
            return 0
        try:
            return self._board.end_leases(node_prefix(pid))
        except Exception as exc:  # the database away: the leases end on their own
            log.warning("could not end the leases of pid %d now (%s); they expire by themselves", pid, exc)
            return 0

    def _on_signal(self, signum: int, frame: object) -> None:
        if self._stopping.is_set():
            log.warning("second %s: killing the engine processes", signal.Signals(signum).name)
            for proc in self._procs:
                if proc is not None and proc.poll() is None:
                    with contextlib.suppress(OSError):
                        proc.kill()
            os._exit(app.EXIT_SECOND_SIGNAL)
        log.info("%s: draining %d engine processes", signal.Signals(signum).name, self.count)
        self._stopping.set()

    def _stop_all(self, wait_seconds: float) -> int:
        """SIGTERM to every process, then wait for them (SIGKILL past `wait_seconds`); 0 when all exited 0."""
        for proc in self._procs:
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(OSError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + wait_seconds
        worst = 0
        for proc in self._procs:
            if proc is None:
                continue
            try:
                code = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            worst = worst or code
        self.close()
        return worst

    # ------------------------------------------------------------------ metrics

    def _serve_metrics(self) -> None:
        ports = self._folder

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                texts = []
                for path in sorted(ports.glob("*.metrics-port")):
                    with contextlib.suppress(OSError, ValueError):
                        port = int(path.read_text().strip())
                        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                            texts.append(answer.read().decode())
                body = summed_metrics(texts).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        host, _, port = self.settings.metrics_listen.rpartition(":")
        self._metrics = http.server.ThreadingHTTPServer((host.strip("[]") or "0.0.0.0", int(port)), Handler)
        threading.Thread(target=self._metrics.serve_forever, name="taskservice-metrics", daemon=True).start()
        if self.settings.metrics_port_file:
            app.write_port_file(self.settings.metrics_port_file, self._metrics.server_port)
        log.info("metrics of all engine processes on http://%s:%d/metrics", host, self._metrics.server_port)

    def close(self) -> None:
        if self._metrics is not None:
            self._metrics.shutdown()
            self._metrics.server_close()
        for sock in self._reserved:
            sock.close()
        if self._board is not None:
            self._board.close()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
        shutil.rmtree(self._folder, ignore_errors=True)
