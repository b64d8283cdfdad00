"""taskservice: a gRPC task service. Submit long jobs, ask their state, stop them, watch their progress live.

For writing task types: `from taskservice import TaskContext, task`. For calling a server:
`from taskservice.client import TaskClient`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Length", "OneOf", "Range", "StopTask", "TaskContext", "__version__", "task"]

if TYPE_CHECKING:
    from taskservice.core.constraints import Length, OneOf, Range
    from taskservice.core.context import TaskContext
    from taskservice.core.errors import StopTask
    from taskservice.core.registry import task

# Loaded on first use, so that `import taskservice.client` does not pull in the engine.
_LAZY = {
    "Length": "taskservice.core.constraints",
    "OneOf": "taskservice.core.constraints",
    "Range": "taskservice.core.constraints",
    "TaskContext": "taskservice.core.context",
    "StopTask": "taskservice.core.errors",
    "task": "taskservice.core.registry",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'taskservice' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
