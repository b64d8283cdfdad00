"""Path arguments: resolved under the data root, checked at Submit, outputs written atomically.

A handler declares which args are paths by their type:

    def copy(ctx, *, input_fpath: InputFile, output_fpath: OutputFile) -> dict: ...

Submit rejects a path that escapes the data root (`..`, an absolute path elsewhere, a symlink pointing
out), one no file system takes (a name over 255 bytes, a link loop), and an input file that does not exist.
When the task runs, its paths are opened again from a descriptor of the data root (beneath.py) and the
handler gets descriptor paths (/proc/self/fd/N) of what was opened: it reads and writes exactly the files
that were checked, whatever is renamed or swapped meanwhile. An output is a hidden file created in its
folder and renamed into place only when the task succeeds.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import os
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

from taskservice.core.handlers.beneath import DESCRIPTOR_SHORTAGE, NAME_MAX_BYTES, Beneath, PathRefused, descriptor_path
from taskservice.core.model.errors import InvalidRequest


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
    """The folder every path argument must stay inside, and the free space tasks must leave on it.

    Paths are checked at Submit and opened again, race-free, when the task runs (see beneath.py): the handler
    gets descriptor paths of what was opened, so no swap of a name between the check and the use reaches it.
    """

    def __init__(self, root: str | Path, *, min_free_bytes: int = 0) -> None:
        Path(root).mkdir(parents=True, exist_ok=True)
        self._beneath = Beneath(root)
        self.root = self._beneath.path
        # File tasks stop writing before their output would leave less than this free on its file system, so
        # that one task (a decompression bomb) cannot fill the disk the task database and the others share.
        self.min_free_bytes = min_free_bytes

    def close(self) -> None:
        self._beneath.close()

    def check(self, field: str, value: Any, role: PathRole) -> None:
        """At Submit: InvalidRequest naming `field` unless `value` can serve as `role` now."""
        text = _path_text(field, value)
        try:
            if role is PathRole.INPUT:
                os.close(self._beneath.open_file(text))
            elif role is PathRole.DIRECTORY:
                os.close(self._beneath.open_folder(text))
            else:
                fd, _ = self._beneath.open_parent(text, create=False)
                if fd >= 0:
                    os.close(fd)
        except PathRefused as exc:
            raise _invalid(field, text, exc) from None

    def open_args(self, params: Iterable[tuple[str, PathRole]], args: dict[str, Any], stage_tag: str) -> OpenedPaths:
        """At run time: open every path arg of a task (outputs staged under a name made from `stage_tag`).

        InvalidRequest naming the field for a path that can no longer be used; nothing stays open then.
        """
        opened = OpenedPaths()
        try:
            for name, role in params:
                value = args.get(name)
                if value is None:
                    continue
                field = f"args.{name}"
                text = _path_text(field, value)
                try:
                    opened.add(name, text, self._open(text, role, stage_tag))
                except PathRefused as exc:
                    raise _invalid(field, text, exc) from None
        except BaseException:
            opened.close()
            raise
        return opened

    def open_folder(self, value: str) -> OpenedFolder:
        """A folder under the root, made when missing, held open: for folders the operator configures.

        InvalidRequest saying why when it cannot be (a link out, a file in the way).
        """
        try:
            return OpenedFolder(self._beneath.open_folder(value, create=True))
        except PathRefused as exc:
            raise InvalidRequest(str(exc)) from None

    def _open(self, text: str, role: PathRole, stage_tag: str) -> OpenedFile | OpenedFolder | StagedOutput:
        if role is PathRole.INPUT:
            return OpenedFile(self._beneath.open_file(text))
        if role is PathRole.DIRECTORY:
            return OpenedFolder(self._beneath.open_folder(text))
        parent, name = self._beneath.open_parent(text, create=True)
        try:
            return StagedOutput.create(parent, name, stage_tag)
        except BaseException:
            os.close(parent)
            raise


def _path_text(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"{field} must be a path", [(field, "expected a non-empty path string")])
    return value


def _invalid(field: str, value: str, refused: PathRefused) -> InvalidRequest:
    shown = value if len(value) <= 80 else value[:77] + "..."
    return InvalidRequest(f"path {shown!r} cannot be used", [(field, str(refused))])


class OpenedFile:
    """An input file held open; `path` reopens exactly this file."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.path = descriptor_path(fd)

    def close(self) -> None:
        _close(self)


class OpenedFolder(OpenedFile):
    """A folder held open; `path` names exactly this folder (names beneath it are the handler's to open)."""


def _close(item: OpenedFile | StagedOutput) -> None:
    if item.fd >= 0:
        os.close(item.fd)
        item.fd = -1


# A staged name: "." + a prefix of the final name + "." + 12 hex digits + ".part", within NAME_MAX.
_STAGE_PREFIX_BYTES = NAME_MAX_BYTES - len("..0123456789ab.part")


class StagedOutput:
    """An output file: created hidden beside its final name, renamed into place only when the task succeeds.

    Both the file and its folder are held by descriptor, so the rename happens in the folder that was checked
    even if a name on the way was swapped for a link meanwhile.
    """

    def __init__(self, parent_fd: int, final_name: str, temporary_name: str, fd: int) -> None:
        self.parent_fd = parent_fd
        self.final_name = final_name
        self.temporary_name = temporary_name
        self.fd = fd
        self.path = descriptor_path(fd)

    @classmethod
    def create(cls, parent_fd: int, final_name: str, stage_tag: str) -> StagedOutput:
        # The hidden name stays within NAME_MAX whatever the final name's length: a legal name always works.
        prefix = os.fsdecode(os.fsencode(final_name)[:_STAGE_PREFIX_BYTES])
        tag = hashlib.sha256(stage_tag.encode()).hexdigest()[:12]
        temporary = f".{prefix}.{tag}.part"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            try:
                fd = os.open(temporary, flags, 0o666, dir_fd=parent_fd)
            except FileExistsError:  # left by a run of the same attempt that a crash interrupted
                os.unlink(temporary, dir_fd=parent_fd)
                fd = os.open(temporary, flags, 0o666, dir_fd=parent_fd)
        except OSError as exc:
            if exc.errno in DESCRIPTOR_SHORTAGE:
                raise
            raise PathRefused(f"cannot be written: {exc.strerror or exc}") from None
        return cls(parent_fd, final_name, temporary, fd)

    def commit(self) -> None:
        """Move the finished output into place, durably."""
        os.fsync(self.fd)
        os.rename(self.temporary_name, self.final_name, src_dir_fd=self.parent_fd, dst_dir_fd=self.parent_fd)
        os.fsync(self.parent_fd)

    def discard(self, *, keep: bool) -> None:
        """After a failure or stop: remove the partial output, or keep it (as the .part file) for debugging."""
        if not keep:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.temporary_name, dir_fd=self.parent_fd)

    def close(self) -> None:
        _close(self)
        if self.parent_fd >= 0:
            os.close(self.parent_fd)
            self.parent_fd = -1


class OpenedPaths:
    """The path args of one run, held open for its length; `paths` are what the handler is given."""

    def __init__(self) -> None:
        self.paths: dict[str, str] = {}
        # What the client sent, per arg, for messages and names (a descriptor path says nothing to a person).
        self.given: dict[str, str] = {}
        self.outputs: list[StagedOutput] = []
        self._held: list[OpenedFile | StagedOutput] = []

    def add(self, name: str, given: str, item: OpenedFile | StagedOutput) -> None:
        self._held.append(item)
        self.paths[name] = item.path
        self.given[name] = given
        if isinstance(item, StagedOutput):
            self.outputs.append(item)

    @property
    def fds(self) -> tuple[int, ...]:
        """The descriptors behind `paths`, for a child process that must open them too."""
        return tuple(item.fd for item in self._held if item.fd >= 0)

    def commit_outputs(self) -> None:
        for staged in self.outputs:
            staged.commit()

    def discard_outputs(self, *, keep: bool) -> None:
        """Remove every output not moved into place (all of them are tried, the first error raised)."""
        failed: OSError | None = None
        for staged in self.outputs:
            try:
                staged.discard(keep=keep)
            except OSError as exc:
                failed = failed or exc
        if failed is not None:
            raise failed

    def close(self) -> None:
        for item in self._held:
            with contextlib.suppress(OSError):
                item.close()
