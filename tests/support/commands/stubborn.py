"""A command that ignores SIGTERM: writes its pid to argv[1] once it does, then sleeps (at most 60 s)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

signal.signal(signal.SIGTERM, signal.SIG_IGN)
pid_file = Path(sys.argv[1])
pid_file.with_suffix(".tmp").write_text(str(os.getpid()))
pid_file.with_suffix(".tmp").replace(pid_file)
print("ignoring SIGTERM", flush=True)
time.sleep(60)
