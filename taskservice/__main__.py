"""`taskservice serve [flags]`: run the task service."""

from __future__ import annotations

import asyncio
import sys

USAGE = "usage: taskservice serve [--help] [flags]"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] != "serve":
        print(USAGE, file=sys.stderr)
        return 2
    from taskservice.server import app, settings
    from taskservice.server.logformat import configure_logging

    config = settings.parse(args[1:])
    configure_logging(config.log_level, config.log_format)
    if config.procs != 1 and not config.supervised:
        from taskservice.server.supervisor import Supervisor

        return Supervisor(config, args[1:]).run()
    return asyncio.run(app.serve(config))


if __name__ == "__main__":
    sys.exit(main())
