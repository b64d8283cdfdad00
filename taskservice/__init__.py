"""taskservice: a gRPC task service. Submit long jobs, ask their state, stop them, watch their progress live.

For writing task types: `from taskservice import TaskContext, task`. For calling a server:
`from taskservice.client import TaskClient`.
"""

from taskservice.core.context import TaskContext
from taskservice.core.errors import StopTask
from taskservice.core.registry import task

__version__ = "0.1.0"

__all__ = ["StopTask", "TaskContext", "__version__", "task"]
