"""stdout written by the socket thread that read the message, when that cannot block.

At a trickle every message is a hand-over of its own, and waking the output thread for
it (a futex, then the GIL, on a core shared with whatever else runs) was most of what
c2ws added to a message's way from the socket to stdout (issue 22: p99 at 1k msg/s).
When the output thread is waiting with everything handed over before done (written and
flushed), nothing of its own can come before the next lines: the socket thread writes
them itself (:mod:`c2ws.net.handoff`, write-ahead), and the output thread counts and
acknowledges them when it wakes.

A socket thread must never wait for stdout's reader (heartbeats would wait with it), so
it writes only where the write cannot block:

- a pipe holding no unread byte, and at most ``PIPE_BUF`` bytes: an empty pipe has every
  slot free, and a write that size is atomic (all of it, or an error, never part);
- ``/dev/null``.

Anything else (a fuller pipe, a larger burst, a file, a terminal, a socket) goes the
usual way, through the output thread.  A write that fails is left to the output thread
too, which meets the error itself and reports it as it always does.
"""

from __future__ import annotations

import fcntl
import os
import select
import stat
import struct
import termios
from typing import Final

from c2ws import events as ev
from c2ws.render.sink import ByteSink
from c2ws.streaming import Batch

_DEV_NULL: Final = os.makedev(1, 3)
_NO_BYTES: Final = b"\0\0\0\0"


def write_ahead_kind(fd: int) -> str | None:
    """``"pipe"`` or ``"null"`` for an output a socket thread may write to (see the module
    docstring), None for any other (or one that cannot be looked at)."""
    try:
        mode = os.fstat(fd)
    except OSError:
        return None
    if stat.S_ISFIFO(mode.st_mode):
        return "pipe"
    if stat.S_ISCHR(mode.st_mode) and mode.st_rdev == _DEV_NULL:
        return "null"
    return None


def unread_bytes(fd: int) -> int:
    """How many bytes a pipe holds that its reader has not read (either end's fd)."""
    (unread,) = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, _NO_BYTES))
    return int(unread)


class WriteAhead:
    """The hand-off's ``write_ahead`` for stdout's NDJSON (see the module docstring):
    called on a socket thread with the events of one hand-over, under the hand-off's lock;
    True when it wrote their lines, byte for byte what the NDJSON renderer writes."""

    def __init__(self, sink: ByteSink, fd: int, kind: str) -> None:
        self._sink = sink
        self._fd = fd
        self._pipe = kind == "pipe"
        self._off = False  # a write failed: the output thread takes over for good
        self.lines_written = 0  # by a socket thread (for tests and the curious)

    @classmethod
    def of(cls, sink: ByteSink) -> WriteAhead | None:
        """One for the stream ``sink`` writes to, when that may be written ahead."""
        try:
            fd = sink.stream.fileno()
        except (AttributeError, OSError, ValueError):
            return None
        kind = write_ahead_kind(fd)
        return None if kind is None else cls(sink, fd, kind)

    def __call__(self, events: list[ev.Event]) -> bool:
        if self._off or self._sink.failure is not None:
            return False
        batch = Batch(events)
        if not batch.only_signals_and_positions:
            return False
        data = batch.ndjson()
        if self._pipe:
            if len(data) > select.PIPE_BUF:
                return False
            try:
                if unread_bytes(self._fd):
                    return False
            except OSError:
                self._off = True
                return False
        try:
            written = os.write(self._fd, data)
        except OSError:
            self._off = True
            return False
        if written != len(data):
            # Not for an atomic pipe write nor /dev/null; should it happen, the rest must
            # follow (the lines are out in part), and a failure then is stdout's failure.
            try:
                self._sink_rest(data, written)
            except OSError as exc:
                self._sink.failure = exc
        self.lines_written += len(batch)
        return True

    def _sink_rest(self, data: bytes, written: int) -> None:
        view = memoryview(data)
        while written < len(view):
            step = os.write(self._fd, view[written:])
            if step <= 0:
                raise OSError("a write took no bytes")
            written += step
