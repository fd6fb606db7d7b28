"""rich Consoles that leave the handling of a closed pipe to c2ws.

rich's default answer to a broken pipe is ``SystemExit(1)``; c2ws documents its own:
a closed stdout ends the run cleanly with exit 0, a closed stderr silences messages.
"""

from __future__ import annotations

import errno
import math
import os
import stat
from collections.abc import Iterable, Mapping
from typing import Final

from rich.console import Console


class DataConsole(Console):
    """For stdout (tables): a closed pipe surfaces as BrokenPipeError like NDJSON's."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, "stdout was closed by its reader")


class MessageConsole(Console):
    """For stderr: once nobody reads it, messages are dropped; the data keeps flowing."""

    def on_broken_pipe(self) -> None:
        self.quiet = True


# --- what stdout and stderr are ----------------------------------------------------------


def _fd_of(stream: object) -> int | None:
    try:
        fd = stream.fileno()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return None
    return fd if isinstance(fd, int) else None


def same_terminal(first: object, second: object) -> bool:
    """Both streams are the same terminal (``c2ws ...`` in a shell, no redirection): what
    one prints can overwrite what the other printed."""
    fds = [_fd_of(first), _fd_of(second)]
    if None in fds:
        return False
    try:
        if not all(os.isatty(fd) for fd in fds if fd is not None):
            return False
        one, two = (os.fstat(fd) for fd in fds if fd is not None)
    except OSError:
        return False
    return os.path.samestat(one, two)


def is_pipe(stream: object) -> bool:
    """``stream`` is a pipe or socket: another program reads it (``| jq``), and may well
    write to the terminal itself."""
    fd = _fd_of(stream)
    if fd is None:
        return False
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def terminal_width(*streams: object) -> int | None:
    """The width of the first of ``streams`` that is a terminal (e.g. stderr while stdout
    is piped through ``tee``), else None."""
    for stream in streams:
        fd = _fd_of(stream)
        if fd is None:
            continue
        try:
            if os.isatty(fd):
                return os.get_terminal_size(fd).columns
        except OSError:
            continue
    return None


# --- resizing ----------------------------------------------------------------------------

# Terminals that cut their lines when made narrower instead of rewrapping them: xterm
# (which says so in XTERM_VERSION) and the Linux console.  Others (VTE terminals, iTerm2,
# Terminal.app, kitty, Konsole, Windows Terminal, tmux...) rewrap.
_CUTTING_TERMS: Final = frozenset({"linux"})


def rewraps_on_resize(environ: Mapping[str, str]) -> bool:
    """Whether the terminal c2ws runs in rewraps its lines when resized (a line longer
    than the new width then takes several rows).  Most do; xterm and the Linux console
    cut them instead.  tmux rewraps whatever terminal shows it."""
    if environ.get("TMUX"):
        return True
    if environ.get("XTERM_VERSION"):
        return False
    return environ.get("TERM", "") not in _CUTTING_TERMS


def rewrapped_rows(line_lengths: Iterable[int], width: int) -> int:
    """Rows that lines of these lengths (in cells) take once rewrapped to ``width``."""
    return sum(max(1, math.ceil(length / max(width, 1))) for length in line_lengths)
