"""Submit a demo task, watch it with a progress bar, and stop it on Ctrl-C. Server: $TASKSERVICE_ADDR."""

import signal
import sys

from rich.progress import Progress

from taskservice.client import TaskClient

with TaskClient() as client, Progress() as bar:
    task = client.submit("demo", {"steps": int(sys.argv[1]) if len(sys.argv) > 1 else 20}).task
    # Ctrl-C asks the server to stop the task; the watch below then sees it end as REVOKED.
    signal.signal(signal.SIGINT, lambda *_: print("stopping:", client.stop(task.task_id, reason="Ctrl-C").state.value))
    line = bar.add_task(task.task_id, total=100)
    for event in client.watch(task.task_id):
        bar.update(line, completed=event.progress.percent, description=f"{task.task_id} {event.state.value}")
    final = client.get(task.task_id)
print(final.state.value, final.result if final.error is None else final.error.message)
