from __future__ import annotations

import dataclasses

from taskservice.core.model.models import Progress, Task, TaskError, TaskState


def test_copy_carries_every_field_and_shares_no_mutable_part() -> None:
    task = Task(
        task_id="t",
        task_type="demo",
        args={"a": 1},
        state=TaskState.RUNNING,
        submitted_at=1.0,
        priority=3,
        labels={"k": "v"},
        time_limit=9.0,
        progress=Progress(50.0, "half", 5, 10, 2.0),
        result={"r": 1},
        error=TaskError("E", "m", "tb"),
        started_at=2.0,
        ended_at=3.0,
        attempt=2,
        submit_order=7,
        event_sequence=11,
        request_digest="d",
        run_after=4.0,
        retention=3600.0,
        after=("a", "b"),
        parent_id="p",
        detached=True,
    )
    assert all(
        getattr(task, f.name) != f.default for f in dataclasses.fields(Task) if f.default is not dataclasses.MISSING
    )
    copy = task.copy()
    assert copy == task
    copy.labels["k"] = "changed"
    copy.progress.percent = 99.0
    assert task.labels == {"k": "v"} and task.progress.percent == 50.0
