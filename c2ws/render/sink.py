"""The one way renderers put bytes out: every byte of a write, or an error, and nothing
more once a write has failed.

A raw file object (``sys.stdout.buffer`` under ``PYTHONUNBUFFERED=1`` or ``python -u``)
may take only part of a write and say so in its return value: on a nearly full disk
``write()`` stored 794 of 904 bytes, and a caller that ignored the count acknowledged a
line that was cut short.  :class:`ByteSink` loops until everything is written or the
operating system raises.  After the first failure it writes nothing more: a line cut
short must stay the last thing in the file (the next ``--state`` run cuts it as torn),
and a buffered stream must not retry the failed bytes at a later flush.
"""

from __future__ import annotations

import errno
import select
from typing import BinaryIO


class ByteSink:
    """A binary output stream whose :meth:`write` writes every byte or raises, and which,
    once a write or flush has failed, raises that failure again instead of touching the
    stream (see the module docstring)."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.failure: OSError | None = None

    @classmethod
    def of(cls, out: BinaryIO | ByteSink) -> ByteSink:
        """``out`` itself when it is a sink already (so its failure is shared), else ``out``
        wrapped."""
        return out if isinstance(out, ByteSink) else cls(out)

    @property
    def stream(self) -> BinaryIO:
        """The stream written to."""
        return self._out

    def write(self, data: bytes) -> int:
        """Write all of ``data``; returns its length."""
        self._check()
        try:
            written = self._out.write(data)
            if written != len(data):
                self._write_rest(data, written)
        except OSError as exc:
            self.failure = exc
            raise
        return len(data)

    def flush(self) -> None:
        self._check()
        try:
            self._out.flush()
        except OSError as exc:
            self.failure = exc
            raise

    def _check(self) -> None:
        failure = self.failure
        if failure is not None:
            # A new exception each time (one raised again would grow its traceback); the
            # errno keeps its subclass (BrokenPipeError...).
            if failure.errno is None:
                raise OSError(*failure.args)
            raise OSError(failure.errno, failure.strerror, failure.filename)

    def _write_rest(self, data: bytes, written: int | None) -> None:
        """A short write: never trust the count to be all; write the rest."""
        view = memoryview(data)
        done = 0
        while True:
            if written is None:
                # A non-blocking descriptor that cannot take more now (a raw stream says
                # so with None): wait until it can, as a blocking write would.
                select.select([], [self._out], [])
            elif written <= 0:
                # No progress and no error: looping would spin for ever.
                raise OSError(errno.EIO, "a write took no bytes")
            else:
                done += written
                if done >= len(view):
                    return
            written = self._out.write(view[done:])
