"""A handler in a worker process gets the same context as in a thread: every public method and attribute."""

from __future__ import annotations

import threading

from taskservice.core.handlers.context import TaskContext
from taskservice.core.handlers.process_child import ChildContext


def test_the_process_context_has_everything_the_thread_context_has() -> None:
    thread_ctx = TaskContext(task_id="t", task_type="x", attempt=1, args={}, stop_event=threading.Event(),
                             report=lambda *a: None, deadline=None)  # fmt: skip
    meta = {"task_id": "t", "task_type": "x", "attempt": 1, "args": {}, "stop_grace": 5.0, "time_left": None,
            "min_free_bytes": 0, "data_root": None, "given": {}}  # fmt: skip
    process_ctx = ChildContext(conn=None, stop=None, meta=meta)
    public = {name for name in dir(thread_ctx) if not name.startswith("_")}
    missing = {name for name in public if not hasattr(type(process_ctx), name) and name not in vars(process_ctx)}
    assert not missing, f"a handler in a process would miss: {sorted(missing)}"
