"""The side of an engine process that a supervisor runs (`--procs`; see supervisor.py): its channel to its
siblings, and its end with its supervisor."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
from pathlib import Path

from taskservice.core.board.sqlite.siblings import Siblings
from taskservice.server.settings import Settings

log = logging.getLogger("taskservice")

PR_SET_PDEATHSIG = 1


def siblings_of(settings: Settings) -> Siblings | None:
    """The channel to the other engine processes of this server, when a supervisor runs this one."""
    if not settings.supervised:
        return None
    slot, count, folder = settings.supervised.split("/", 2)
    return Siblings(Path(folder), int(slot), int(count))


def die_with_supervisor() -> None:
    """Be killed when the supervisor dies, as in a crash of the whole server: its lock on the database goes with
    it, and a server started next reaps what this process ran. Exits now if the supervisor is already gone."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            log.warning("cannot follow the supervisor's end: %s", os.strerror(ctypes.get_errno()))
    except (OSError, AttributeError) as exc:  # not Linux
        log.warning("cannot follow the supervisor's end: %s", exc)
    if os.getppid() == 1:
        os._exit(1)
