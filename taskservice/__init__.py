"""taskservice: a gRPC task service. Submit long jobs, ask their state, stop them, watch their progress live.

For writing task types: `from taskservice import TaskContext, task` (and InputFile, OutputFile, RetryPolicy,
Length, OneOf, Range, StopTask). For calling a server:
`from taskservice.client import TaskClient`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "InputFile",
    "Length",
    "OneOf",
    "OutputFile",
    "Range",
    "RetryPolicy",
    "StopTask",
    "TaskContext",
    "__version__",
    "task",
]

if TYPE_CHECKING:
    from taskservice.core.handlers.constraints import Length, OneOf, Range
    from taskservice.core.handlers.context import TaskContext
    from taskservice.core.handlers.paths import InputFile, OutputFile
    from taskservice.core.handlers.registry import task
    from taskservice.core.handlers.retry import RetryPolicy
    from taskservice.core.model.errors import StopTask

# Loaded on first use, so that `import taskservice.client` does not pull in the engine.
_LAZY = {
    "Length": "taskservice.core.handlers.constraints",
    "OneOf": "taskservice.core.handlers.constraints",
    "Range": "taskservice.core.handlers.constraints",
    "TaskContext": "taskservice.core.handlers.context",
    "InputFile": "taskservice.core.handlers.paths",
    "OutputFile": "taskservice.core.handlers.paths",
    "RetryPolicy": "taskservice.core.handlers.retry",
    "StopTask": "taskservice.core.model.errors",
    "task": "taskservice.core.handlers.registry",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'taskservice' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
