"""A command for tests, scripted by its one argument: actions separated by ';'.

out=TEXT      print TEXT and a newline on stdout        err=TEXT   the same on stderr
cr=TEXT       write '\\r' + TEXT on stderr, no newline (how tqdm redraws its bar)
wait=PATH     wait until PATH exists (exit 98 after 30 s)
pwd           print cwd=<the working directory>        env=NAME   print NAME=<value>, or NAME unset
cat=PATH      print the contents of the file PATH
signal=N      kill itself with signal N                 exit=N     exit with code N
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

WAIT_LIMIT_SECONDS = 30.0


def main(program: str) -> int:
    for action in program.split(";"):
        verb, _, value = action.partition("=")
        if verb == "out":
            print(value, flush=True)
        elif verb == "err":
            print(value, file=sys.stderr, flush=True)
        elif verb == "cr":
            sys.stderr.write("\r" + value)
            sys.stderr.flush()
        elif verb == "wait":
            deadline = time.monotonic() + WAIT_LIMIT_SECONDS
            while not Path(value).exists():
                if time.monotonic() > deadline:
                    return 98
                time.sleep(0.01)
        elif verb == "cat":
            print(Path(value).read_text(), flush=True)
        elif verb == "pwd":
            print(f"cwd={os.getcwd()}", flush=True)
        elif verb == "env":
            print(f"{value}={os.environ[value]}" if value in os.environ else f"{value} unset", flush=True)
        elif verb == "signal":
            os.kill(os.getpid(), int(value))
        elif verb == "exit":
            return int(value)
        else:
            print(f"act.py: unknown action {action!r}", file=sys.stderr)
            return 99
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
