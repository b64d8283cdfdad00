"""Task types with typed results, for the typed way of submitting: `thumbnail.submit(client, name=..., width=...)`.

The server loads this module (`taskservice serve --tasks photo_tasks`); a caller imports it too, for the handles and
the result types, and mypy checks each Submit against the handler's own signature.
"""

from __future__ import annotations

from dataclasses import dataclass

from taskservice import TaskContext, task


@dataclass(frozen=True)
class Thumbnail:
    name: str
    width: int
    height: int


@task("photos.thumbnail")
def thumbnail(ctx: TaskContext, *, name: str, width: int, height: int = 0) -> Thumbnail:
    """Make the thumbnail of one photo (a stand-in: it works out the size, keeping a 3:2 ratio)."""
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    ctx.progress(100, f"{name} at {width} px")
    return Thumbnail(name=name, width=width, height=height or width * 2 // 3)


@task("photos.count")
def count(ctx: TaskContext, *, names: list[str]) -> dict[str, int]:
    """How many photos of each extension."""
    counts: dict[str, int] = {}
    for name in names:
        extension = name.rpartition(".")[2].lower()
        counts[extension] = counts.get(extension, 0) + 1
    return counts
