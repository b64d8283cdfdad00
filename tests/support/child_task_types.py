"""The child task types of child_tasks.py in the default registry, for a server process: `--tasks` this module."""

from taskservice.core.handlers.registry import default_registry
from tests.support.child_tasks import register_child_tasks

register_child_tasks(default_registry)
