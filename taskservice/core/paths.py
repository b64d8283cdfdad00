"""Path arguments: resolved under the data root, checked at Submit, outputs written atomically.

A handler declares which args are paths by their type:

    def copy(ctx, *, input_fpath: InputFile, output_fpath: OutputFile) -> dict: ...

Submit rejects a path that escapes the data root (`..`, an absolute path elsewhere, a symlink pointing
out) and an input file that does not exist. The handler gets absolute paths; an output path points at a
temporary file in the same folder, renamed into place only when the task succeeds.
"""

from __future__ import annotations

import contextlib
import enum
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from taskservice.core.errors import InvalidRequest


class PathRole(enum.Enum):
    INPUT = "input"  # an existing file under the data root
    OUTPUT = "output"  # a file the task writes; it appears only if the task succeeds
    DIRECTORY = "directory"  # an existing folder under the data root (e.g. a working directory)


InputFile = Annotated[str, PathRole.INPUT]
OutputFile = Annotated[str, PathRole.OUTPUT]
Directory = Annotated[str, PathRole.DIRECTORY]

# The arg any task with outputs accepts: False keeps a failed or stopped task's partial output.
CLEAR_NODES_ARG = "clear_nodes"


def path_role(annotation: Any) -> PathRole | None:
    """The PathRole an annotation carries, directly or inside Optional[...]."""
    if typing.get_origin(annotation) is Annotated:
        return next((m for m in annotation.__metadata__ if isinstance(m, PathRole)), None)
    for option in typing.get_args(annotation):
        role = path_role(option)
        if role is not None:
            return role
    return None


class DataRoot:
    """The folder every path argument must stay inside, and the free space tasks must leave on it."""

    def __init__(self, root: str | Path, *, min_free_bytes: int = 0) -> None:
        Path(root).mkdir(parents=True, exist_ok=True)
        self.root = Path(root).resolve()
        # File tasks stop writing before their output would leave less than this free on its file system, so
        # that one task (a decompression bomb) cannot fill the disk the task database and the others share.
        self.min_free_bytes = min_free_bytes

    def resolve(self, field: str, value: Any, role: PathRole) -> Path:
        """The absolute path `value` names, or InvalidRequest naming `field`."""
        if not isinstance(value, str) or not value:
            raise InvalidRequest(f"{field} must be a path", [(field, "expected a non-empty path string")])
        if "\x00" in value:
            raise InvalidRequest(f"{field} holds a NUL byte", [(field, "not a valid path")])
        candidate = Path(value)
        if not candidate.is_absolute():
            candidate = self.root / candidate
        # resolve() follows symlinks, so a link inside the root that points out is caught here.
        resolved = candidate.resolve(strict=False)
        if resolved != self.root and not resolved.is_relative_to(self.root):
            raise InvalidRequest(
                f"{field} {value!r} is outside the data root",
                [(field, f"must stay inside the data root {self.root} (no '..', no links pointing out)")],
            )
        if role is PathRole.INPUT and not resolved.is_file():
            raise InvalidRequest(f"input file {value!r} not found", [(field, "no such file under the data root")])
        if role is PathRole.DIRECTORY and not resolved.is_dir():
            raise InvalidRequest(f"folder {value!r} not found", [(field, "no such folder under the data root")])
        if role is PathRole.OUTPUT and (resolved == self.root or resolved.is_dir()):
            raise InvalidRequest(f"{field} {value!r} is a folder", [(field, "must name a file")])
        return resolved


@dataclass(frozen=True, slots=True)
class StagedOutput:
    """An output file: the handler writes `temporary`; success renames it to `final`."""

    final: Path
    temporary: Path

    @classmethod
    def for_task(cls, final: Path, task_id: str, attempt: int) -> StagedOutput:
        final.parent.mkdir(parents=True, exist_ok=True)
        return cls(final, final.parent / f".{final.name}.{task_id}.{attempt}.part")

    def commit(self) -> None:
        """Move the finished output into place, durably. An output the handler never wrote stays absent."""
        if not self.temporary.exists():
            return
        with open(self.temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(self.temporary, self.final)
        directory = os.open(self.final.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def discard(self, *, keep: bool) -> None:
        """After a failure or stop: remove the partial output, or keep it (as the .part file) for debugging."""
        if not keep:
            with contextlib.suppress(FileNotFoundError):
                self.temporary.unlink()
