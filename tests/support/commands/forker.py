"""A command with a grandchild: `forker.py MODE DIR`.

Starts a grandchild that ignores SIGTERM and writes DIR/grandchild.pid, then writes its own pid to
DIR/child.pid. MODE `wait`: sleeps (at most 60 s; dies on SIGTERM). MODE `exit`: exits 0 at once, leaving
the grandchild running (and holding stdout open).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def write_pid(path: Path) -> None:
    path.with_suffix(".tmp").write_text(str(os.getpid()))
    path.with_suffix(".tmp").replace(path)


def wait_for(path: Path) -> None:
    deadline = time.monotonic() + 30
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)


if sys.argv[1] == "grandchild":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    write_pid(Path(sys.argv[2]) / "grandchild.pid")
    time.sleep(60)
    sys.exit(0)

mode, folder = sys.argv[1], Path(sys.argv[2])
subprocess.Popen([sys.executable, __file__, "grandchild", str(folder)])
wait_for(folder / "grandchild.pid")
write_pid(folder / "child.pid")
print(f"child and grandchild running ({mode})", flush=True)
if mode == "wait":
    time.sleep(60)
