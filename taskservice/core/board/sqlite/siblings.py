"""Hints between the engine processes of one server (`--procs`): a datagram socket each, in a folder their
supervisor made, so that a Stop or new work reaches a sibling at once rather than at its next poll.

A hint carries no task data and may be lost (a sibling restarting, a full socket buffer): every process polls
the database besides, as servers sharing PostgreSQL do. On PostgreSQL, NOTIFY already reaches every process; this
is the channel of an SQLite file, which has none.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger(__name__)

MOST_HINT_BYTES = 256


class Siblings:
    """This process's end of the channel: `slot` of `count` processes, their sockets in `folder`."""

    def __init__(self, folder: Path, slot: int, count: int) -> None:
        self._paths = [folder / f"{other}.sock" for other in range(count) if other != slot]
        own = folder / f"{slot}.sock"
        own.unlink(missing_ok=True)  # left by the process this one replaces
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(str(own))
        self._socket.settimeout(0.5)  # how soon the listening thread sees close()
        self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sender.setblocking(False)
        self._heard: Callable[[set[str]], None] = lambda hints: None
        self._closing = False
        self._thread = threading.Thread(target=self._listen, name="taskservice-siblings", daemon=True)

    def start(self, heard: Callable[[set[str]], None]) -> None:
        """Call `heard(hints)` (on this channel's thread) for each hint a sibling sends."""
        self._heard = heard
        self._thread.start()

    def send(self, hints: Iterable[str]) -> None:
        """Tell every sibling; never waits (a sibling that is gone or full misses it and polls)."""
        payload = ",".join(sorted(set(hints))).encode()[:MOST_HINT_BYTES]
        for path in self._paths:
            with contextlib.suppress(OSError):
                self._sender.sendto(payload, str(path))

    def _listen(self) -> None:
        while not self._closing:
            try:
                data = self._socket.recv(MOST_HINT_BYTES)
            except TimeoutError:
                continue
            except OSError:
                return
            if data:
                try:
                    self._heard(set(data.decode(errors="replace").split(",")))
                except Exception:
                    log.exception("a sibling's hint could not be passed on")

    def close(self) -> None:
        self._closing = True
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        self._socket.close()
        self._sender.close()
