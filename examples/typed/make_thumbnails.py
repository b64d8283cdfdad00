"""Submit typed tasks and read typed results: `python make_thumbnails.py cat.jpg dog.png` (TASKSERVICE_ADDR set to a
server that runs `--tasks photo_tasks`)."""

from __future__ import annotations

import sys

from photo_tasks import Thumbnail, count, thumbnail

from taskservice.client import TaskClient, TaskFailed, TaskRun


def main(names: list[str]) -> int:
    with TaskClient() as client:
        # One task: the args are checked by mypy against thumbnail's signature; the result is a Thumbnail.
        first: TaskRun[Thumbnail] = thumbnail.submit(client, name=names[0], width=640)
        made = first.result(timeout=60)
        print(f"{made.name}: {made.width}x{made.height}")
        # Many in one call, each a run of its own.
        for run in client.submit_batch([thumbnail.bind(name=name, width=320) for name in names]):
            if isinstance(run, TaskRun):
                small = run.result(timeout=60)
                print(f"{small.name}: {small.width}x{small.height}")
        # Submit options (here a priority) on a copy of the handle.
        counts: dict[str, int] = count.with_options(priority=5).submit(client, names=names).result(timeout=60)
        print(", ".join(f"{extension}: {n}" for extension, n in sorted(counts.items())))
        # A failure comes back as TaskFailed with the remote error.
        try:
            thumbnail.submit(client, name=names[0], width=0).result(timeout=60)
        except TaskFailed as failed:
            print(f"failed as expected: {failed.error_type}: {failed.message}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["cat.jpg"]))
