"""Task storage: one interface (base.TaskStore), an embedded SQLite default and an in-memory twin."""

from taskservice.core.store.base import (
    DeleteTasks,
    InsertTask,
    SaveProgress,
    SaveTask,
    StoreOpenError,
    TaskStore,
    Write,
)
from taskservice.core.store.memory import MemoryStore
from taskservice.core.store.sqlite import SQLiteStore

__all__ = [
    "DeleteTasks",
    "InsertTask",
    "MemoryStore",
    "SQLiteStore",
    "SaveProgress",
    "SaveTask",
    "StoreOpenError",
    "TaskStore",
    "Write",
]
