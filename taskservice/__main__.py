"""`taskservice serve [flags]`: run the task service. `taskservice protos`: print the folder of the .proto files a
client is generated from (`protoc -I "$(taskservice protos)" ...`)."""

from __future__ import annotations

import asyncio
import sys

USAGE = "usage: taskservice serve [--help] [flags] | taskservice protos"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["protos"]:
        print(protos_folder())
        return 0
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


def protos_folder() -> str:
    """Where the installed package keeps its .proto files (taskservice/v1/task_service.proto, google/api, google/rpc):
    inside it when installed from a wheel, the repository's protos/ in a source checkout (an editable install)."""
    from pathlib import Path

    package = Path(__file__).resolve().parent
    installed = package / "protos"
    return str(installed if installed.is_dir() else package.parent / "protos")


if __name__ == "__main__":
    sys.exit(main())
