#!/usr/bin/env bash
# Strict type check of the whole server and the typed Python client (what users import):
# scripts/typecheck.sh [PATH ...]
#
# Default: mypy --strict taskservice (the engine, the server, taskservice/client/) and taskctl. Needs mypy and types-grpcio in .venv, and the [tool.mypy]
# override in pyproject.toml that lets mypy read the .pyi files googleapis-common-protos ships without a
# py.typed marker (google.rpc). The cache lives in .venv so the work tree stays clean.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mypy=".venv/bin/mypy"
if [[ ! -x "$mypy" ]]; then
    mypy="$(command -v mypy || true)"
fi
if [[ -z "$mypy" ]]; then
    echo "typecheck: mypy not found: .venv/bin/pip install mypy types-grpcio" >&2
    exit 2
fi

if [[ $# -eq 0 ]]; then
    set -- taskservice clients/python/taskctl examples/typed
fi
exec "$mypy" --strict --cache-dir "${MYPY_CACHE_DIR:-.venv/.mypy_cache}" "$@"
