"""The engine imports nothing from grpc or the generated code (docs/architecture.md)."""

from __future__ import annotations

import subprocess
import sys


def test_core_does_not_import_grpc_or_generated_code() -> None:
    probe = (
        "import sys, taskservice.core.engine.manager, taskservice.core.board, taskservice.tasks; "
        "bad = sorted(m for m in sys.modules if m == 'grpc' or m.startswith(('grpc.', 'taskservice.v1', "
        "'taskservice.server', 'google.protobuf'))); print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"core pulled in: {result.stdout} {result.stderr}"
