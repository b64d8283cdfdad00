"""A TCP proxy of the test's own, between a server and its database: it takes the database away without touching
the machine's PostgreSQL.

    with TcpProxy("127.0.0.1", 5432) as proxy:
        dsn = proxy.dsn_for(pg_dsn)   # the same database, reached through the proxy
        proxy.cut()                   # open connections reset, new ones refused: the database is away
        proxy.restore()               # connections go through again

Threads only; every socket is closed when the proxy is.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._away = False
        self._closed = False
        self.refused = 0  # connections refused while away
        self._thread = threading.Thread(target=self._accept_loop, name="tcp-proxy", daemon=True)
        self._thread.start()

    def dsn_for(self, dsn: str) -> str:
        """`dsn` (a postgresql:// URL) pointed at this proxy."""
        parts = urlsplit(dsn)
        user = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{self.port}"))

    def cut(self) -> None:
        """The database goes away: what is open is reset, what comes is refused."""
        with self._lock:
            self._away = True
            held = list(self._open)
        for sock in held:
            _reset(sock)

    def restore(self) -> None:
        with self._lock:
            self._away = False

    def close(self) -> None:
        with self._lock:
            self._closed = True
            held = list(self._open)
        self._listener.close()
        for sock in held:
            _reset(sock)

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                refuse = self._away or self._closed
                self.refused += refuse
            if refuse:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.difference_update((source, sink))
            _reset(source)
            _reset(sink)


def _reset(sock: socket.socket) -> None:
    """Close with an RST, as a database that went away does, not a polite FIN. The shutdown first: a close alone
    does not wake a pump thread blocked in recv() on the socket, which keeps it open (and the connection with it,
    neither reset nor answered) for as long as no byte arrives."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
