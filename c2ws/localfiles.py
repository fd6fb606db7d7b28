"""Opening the local files a user names, one way everywhere: the config and key files,
``--state`` and its lock, ``--record`` and ``c2ws replay FILE``.

What is at the path is checked on the open descriptor (``fstat``, so it is the file that
is used that was checked) and, when it is not what the caller can use, said in words: a
directory, a FIFO, a device, a symbolic link, another user's file, a file too large.
Nothing at a path can hang c2ws (a FIFO where a file is expected is opened without
waiting for a writer), and a file c2ws writes into is never reached through a symbolic
link or a second hard link, never another user's, and never truncated unless c2ws
created it (the caller learns whether it did).

Plain functions over descriptors: the callers know what each file is for and word their
own errors around :attr:`UnusableFile.problem`.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Final

_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)
_NOCTTY: Final = getattr(os, "O_NOCTTY", 0)
_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK: Final = getattr(os, "O_NONBLOCK", 0)
# What open(O_NOFOLLOW) fails with when the last component is a symbolic link (Linux
# ELOOP, the BSDs EMLINK).
_SYMLINK_ERRNOS: Final = frozenset({errno.ELOOP, errno.EMLINK})
# Create-or-open races with a file being removed at the same moment; a few rounds settle it.
_OPEN_OWN_ATTEMPTS: Final = 3


class UnusableFile(Exception):
    """Something at ``path`` that c2ws will not use; ``problem`` says what it is, as the
    rest of a sentence that starts with the path ("is a directory, not a regular file")."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{os.fspath(path)} {problem}")
        self.path = path
        self.problem = problem


class FileTooLarge(UnusableFile):
    """A regular file larger than the caller reads."""


def kind_of(mode: int) -> str:
    """What a file of ``st_mode`` ``mode`` is, in words ("a directory")."""
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "an unknown kind of file"


def _not_regular(path: Path, mode: int) -> UnusableFile:
    return UnusableFile(path, f"is {kind_of(mode)}, not a regular file")


def _open(path: Path, flags: int, mode: int = 0o600) -> int:
    """``os.open``; what the open itself refuses for being no regular file (a directory
    opened to write, a FIFO opened to write with no reader, a symbolic link under
    O_NOFOLLOW) is an :class:`UnusableFile` saying so."""
    try:
        return os.open(path, flags, mode)
    except OSError as exc:
        if exc.errno == errno.EISDIR:
            raise UnusableFile(path, "is a directory, not a regular file") from None
        if exc.errno in (errno.ENXIO, errno.ENODEV):
            try:
                found = os.stat(path).st_mode
            except OSError:
                found = stat.S_IFREG
            if not stat.S_ISREG(found):
                raise _not_regular(path, found) from None
        if flags & _NOFOLLOW and exc.errno in _SYMLINK_ERRNOS:
            try:
                is_link = stat.S_ISLNK(os.lstat(path).st_mode)
            except OSError:
                is_link = False
            if is_link:
                raise UnusableFile(path, "is a symbolic link (not followed)") from None
        raise


def _is_fifo(path: Path) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False  # the open says what is wrong


def _check_owner(path: Path, status: os.stat_result) -> None:
    if not hasattr(os, "geteuid"):  # pragma: no cover - no POSIX owners (Windows)
        return
    if status.st_uid != os.geteuid():
        raise UnusableFile(path, f"belongs to another user (uid {status.st_uid}), not to you")


def open_for_reading(
    path: Path,
    *,
    pipes: bool = False,
    follow_symlinks: bool = True,
    own: bool = False,
    max_bytes: int | None = None,
) -> int:
    """A blocking read-only descriptor of the regular file at ``path``.

    ``pipes``: a FIFO (or a ``<(...)`` pipe) is fine too, and its open waits for a
    writer as ``cat`` would; otherwise a FIFO is refused without waiting for one.
    ``follow_symlinks=False``: a symbolic link at ``path`` is refused.  ``own``: so is a
    file of another user.  ``max_bytes``: so (:class:`FileTooLarge`) is a regular file
    larger than that.  Raises :class:`UnusableFile` for what it refuses and ``OSError``
    when nothing can be opened (``FileNotFoundError`` when there is nothing at all)."""
    flags = os.O_RDONLY | _CLOEXEC | _NOCTTY
    if not follow_symlinks:
        flags |= _NOFOLLOW
    if not (pipes and _is_fifo(path)):
        flags |= _NONBLOCK
    fd = _open(path, flags)
    try:
        status = os.fstat(fd)
        regular = stat.S_ISREG(status.st_mode)
        if not regular and not (pipes and stat.S_ISFIFO(status.st_mode)):
            raise _not_regular(path, status.st_mode)
        if own:
            _check_owner(path, status)
        if regular and max_bytes is not None and status.st_size > max_bytes:
            raise FileTooLarge(
                path, f"is too large ({status.st_size} bytes; at most {max_bytes} expected)"
            )
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_own_file(path: Path, *, append: bool = False, mode: int = 0o600) -> tuple[int, bool]:
    """A blocking descriptor (read-write; ``append``: write-only, appending) of a regular
    file at ``path`` that this user owns and that has no other name, created with
    ``mode`` when there is none; and whether this call created it.

    Never through a symbolic link (O_EXCL, then O_NOFOLLOW), never a FIFO or a device
    (opened without waiting), never another user's file or a hard link to one (another
    name could be a file someone else cares about): each is an :class:`UnusableFile`
    and left exactly as it was.  Only a file this call created is the caller's to
    truncate; one that was there may be anything the checks let through."""
    access = (os.O_WRONLY | os.O_APPEND) if append else os.O_RDWR
    flags = access | _CLOEXEC | _NOCTTY | _NOFOLLOW | _NONBLOCK
    for attempt in range(_OPEN_OWN_ATTEMPTS):
        try:
            fd, created = os.open(path, flags | os.O_CREAT | os.O_EXCL, mode), True
            break
        except FileExistsError:
            try:
                fd, created = _open(path, flags), False
                break
            except FileNotFoundError:
                if attempt + 1 == _OPEN_OWN_ATTEMPTS:
                    raise  # removed each time it was there: let the caller say so
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise _not_regular(path, status.st_mode)
        _check_owner(path, status)
        if status.st_nlink != 1:
            raise UnusableFile(path, f"has {status.st_nlink} names (hard links), not one")
        if created:
            os.fchmod(fd, mode)  # whatever the umask took away
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, created
