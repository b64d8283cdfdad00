"""Opening paths beneath a folder, one component at a time, so that no link leads out and no swap slips in.

Checking a path with `resolve()` and opening it later leaves a window: a user who can make links in the data
root swaps a checked file for a link to a file outside, and the task reads that instead. Here every component
is opened relative to the descriptor of the folder before it, with O_NOFOLLOW; a link is read with readlinkat
and its target followed by the same rules (never above the top, absolute targets only inside it). What the
walk ends on is a descriptor, and a handler is given that descriptor's /proc path: whatever happens to the
names afterwards, it reads and writes the very file that was checked.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from pathlib import Path

# Linux's limits: one name, and a whole path as a system call takes it.
NAME_MAX_BYTES = 255
PATH_MAX_BYTES = 4096
# As the kernel's own limit on links followed while resolving one path.
MAX_LINK_HOPS = 40
# Folders made on the way to an output, and links followed, are bounded; a walk past this many steps is refused.
MAX_STEPS = 4096

_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Non-blocking, so that a FIFO swapped in for an input cannot hang the open; it is refused after fstat.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
# The errors open(O_NOFOLLOW) gives for a link, on Linux (ELOOP) and the BSDs (EMLINK, EFTYPE).
_LINK_ERRNOS = {errno.ELOOP, errno.EMLINK, getattr(errno, "EFTYPE", errno.ELOOP), errno.ENOTDIR}


class PathRefused(Exception):
    """A path cannot be used; the message says why, in words the person who sent it can act on."""


def descriptor_path(fd: int) -> str:
    """A path naming the open file `fd` itself: opening it reopens that file, whatever its name is now."""
    return f"{_FD_FOLDER}/{fd}"


_FD_FOLDER = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"


class Beneath:
    """A folder held open by descriptor; paths are opened beneath it and never outside."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder).resolve()
        # Absolute paths and absolute link targets are accepted when they name something under the folder as
        # configured or as resolved (e.g. /data as well as /srv/data when /data is a link to it).
        self._prefixes = {str(Path(folder).absolute()), str(self.path)}
        self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # ------------------------------------------------------------------ parsing

    def components(self, value: str) -> list[str]:
        """The components of `value` relative to the folder; PathRefused for what no file system takes."""
        if "\x00" in value:
            raise PathRefused("holds a NUL byte, which no path may contain")
        size = len(os.fsencode(value))
        if size > PATH_MAX_BYTES:
            raise PathRefused(f"is {size} bytes long; a path may be at most {PATH_MAX_BYTES} bytes")
        parts = self._relative(value).split("/")
        for part in parts:
            length = len(os.fsencode(part))
            if length > NAME_MAX_BYTES:
                raise PathRefused(
                    f"has a name of {length} bytes ({part[:24]!r}...); a name may be at most {NAME_MAX_BYTES} bytes"
                )
        return parts

    def _relative(self, value: str) -> str:
        if not value.startswith("/"):
            return value
        normal = os.path.normpath(value)
        for prefix in self._prefixes:
            if normal == prefix:
                return "."
            if normal.startswith(prefix.rstrip("/") + "/"):
                return normal[len(prefix.rstrip("/")) + 1 :]
        raise PathRefused("is outside the data root")

    # ------------------------------------------------------------------ the walk

    def open_file(self, value: str) -> int:
        """A read-only descriptor of the regular file `value` names (links inside the folder followed)."""
        fd = self._walk(self.components(value), last="file")
        assert fd is not None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise PathRefused("is not a regular file")
        os.set_blocking(fd, True)
        return fd

    def open_folder(self, value: str, *, create: bool = False) -> int:
        """A descriptor of the folder `value` names (links inside the folder followed; made when create=True)."""
        fd = self._walk(self.components(value), last="folder", missing="make" if create else "refuse")
        assert fd is not None
        return fd

    def open_parent(self, value: str, *, create: bool) -> tuple[int, str]:
        """The folder that holds the last name of `value`, and that name (not followed: it may not exist yet).

        create=True makes missing folders on the way. With create=False a missing folder is no error as long as
        what follows it cannot lead anywhere else (no '..'): the fd returned is then -1 (nothing to open yet).
        """
        parts = self.components(value)
        while parts and parts[-1] in ("", "."):
            parts.pop()
        if not parts or parts[-1] == "..":
            raise PathRefused("names a folder, not a file")
        name = parts.pop()
        fd = self._walk(parts, last="folder", missing="make" if create else "allow")
        if fd is None:
            return -1, name
        try:
            info = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return fd, name
        except OSError as exc:
            os.close(fd)
            raise _refusal(exc, name) from None
        if stat.S_ISDIR(info.st_mode):
            os.close(fd)
            raise PathRefused("is a folder; it must name a file")
        return fd, name

    def _walk(self, parts: list[str], *, last: str, missing: str = "refuse") -> int | None:
        """Follow `parts` from the folder; the descriptor of what they name, opened as `last` ('file', 'folder').

        A missing folder is refused (missing='refuse'), made ('make'), or ends the walk with None ('allow').
        """
        pending = deque(parts)
        stack = [os.dup(self.fd)]
        hops = steps = 0
        try:
            while pending:
                steps += 1
                if steps > MAX_STEPS:
                    raise PathRefused("takes too many steps to resolve")
                name = pending.popleft()
                if name in ("", "."):
                    continue
                if name == "..":
                    if len(stack) == 1:
                        raise PathRefused("leads outside the data root")
                    os.close(stack.pop())
                    continue
                is_last = not any(part not in ("", ".") for part in pending)
                as_file = is_last and last == "file"
                try:
                    fd = os.open(name, _FILE_FLAGS if as_file else _DIRECTORY_FLAGS, dir_fd=stack[-1])
                except OSError as exc:
                    target = _link_target(stack[-1], name) if exc.errno in _LINK_ERRNOS else None
                    if target is not None:
                        hops += 1
                        if hops > MAX_LINK_HOPS:
                            raise PathRefused(f"goes through more than {MAX_LINK_HOPS} links (a loop?)") from None
                        if target.startswith("/"):
                            for fd_above in stack[1:]:
                                os.close(fd_above)
                            del stack[1:]
                        pending.extendleft(reversed(self._link_components(target, name)))
                        continue
                    if exc.errno == errno.ENOENT and missing != "refuse" and not as_file:
                        if missing == "allow":
                            if ".." in pending:
                                raise PathRefused(
                                    f"goes up ('..') from the folder {name!r}, which does not exist yet"
                                ) from None
                            return None
                        _make_folder(stack[-1], name)
                        pending.appendleft(name)
                        continue
                    raise _refusal(exc, name) from None
                if is_last:
                    return fd
                stack.append(fd)
            # The parts named the folder itself ('', '.', 'a/..').
            if last == "file":
                raise PathRefused("names a folder, not a file")
            return stack.pop()
        finally:
            for fd in stack:
                os.close(fd)

    def _link_components(self, target: str, name: str) -> list[str]:
        try:
            return self._relative(target).split("/")
        except PathRefused:
            raise PathRefused(f"goes through the link {name!r}, which points outside the data root") from None


def _link_target(dir_fd: int, name: str) -> str | None:
    """What the link `name` points to; None when it is not a link."""
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError:
        return None


def _make_folder(dir_fd: int, name: str) -> None:
    try:
        os.mkdir(name, dir_fd=dir_fd)
    except FileExistsError:
        pass  # made meanwhile (or a link now): the walk opens it again and judges what it is
    except OSError as exc:
        raise _refusal(exc, name) from None


_REASONS = {
    errno.ENOENT: "does not exist",
    errno.ENOTDIR: "is not a folder",
    errno.EACCES: "may not be read by the server (permission denied)",
    errno.EPERM: "may not be used by the server (operation not permitted)",
    errno.ENAMETOOLONG: "is too long for the file system",
    errno.ELOOP: "goes through too many links",
    errno.ENXIO: "is not a regular file",
    errno.EISDIR: "is a folder",
    errno.EROFS: "is on a read-only file system",
    errno.ENOSPC: "has no space left on its file system",
}


# The server is short of descriptors: no fault of the path's, so the OSError goes on (the RPC answers UNAVAILABLE).
DESCRIPTOR_SHORTAGE = frozenset({errno.EMFILE, errno.ENFILE})


def _refusal(exc: OSError, name: str) -> PathRefused | OSError:
    if exc.errno in DESCRIPTOR_SHORTAGE:
        return exc
    reason = _REASONS.get(exc.errno or 0, exc.strerror or str(exc))
    shown = name if len(name) <= 60 else name[:57] + "..."
    return PathRefused(f"cannot be opened: {shown!r} {reason}")
