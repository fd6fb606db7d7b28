"""Giving the C heap's free pages back to the system during a long, fast stream.

The socket thread allocates each read's buffers (up to ``spec.SOCKET_READ_BYTES``, of
varying sizes) and the output thread frees them once written.  glibc's malloc keeps
such freed memory inside its heaps, where the next buffers of other sizes fit around
what stays allocated: over the first few hundred thousand messages of a stream drained
at full speed the resident size crept up by 4-5 MiB and stayed there (not a leak: the
objects Python holds did not grow; tracemalloc shows the same few MiB throughout).
``malloc_trim(0)`` hands every whole free page back (since glibc 2.8 also those inside
the heap, not only at its top).  A fixed ``M_MMAP_THRESHOLD`` would keep the big
buffers out of the heap instead, but a ``mmap``, its page faults and a ``munmap`` per
socket read halved the throughput to ``/dev/null``.

:class:`HeapTrimmer` is told how many messages were written and trims every
``spec.HEAP_TRIM_EVERY_MESSAGES``: an idle run never trims (no timer, no wake-up), and
a fast one spends well under a millisecond per trim, with the GIL released (ctypes
releases it around the call), so the socket thread reads on meanwhile.  The CLI owns its
process and uses it; the library does not touch the allocator of a process it only runs
in.  Where there is no ``malloc_trim`` (not glibc: musl, macOS) nothing is done.
"""

from __future__ import annotations

from collections.abc import Callable

from c2ws import spec

__all__ = ["HeapTrimmer", "malloc_trim"]


def malloc_trim() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)`` as a callable, or None where the C library has none."""
    try:
        import ctypes  # not at import: only a run that has written a lot needs it

        function = ctypes.CDLL(None).malloc_trim
    except (ImportError, OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return lambda: function(0)


class HeapTrimmer:
    """Trims the C heap once every ``every`` messages written (see the module
    docstring).  ``trim``: what trims (tests pass their own); by default
    :func:`malloc_trim`, looked up at the first trim."""

    def __init__(self, every: int = spec.HEAP_TRIM_EVERY_MESSAGES, *,
                 trim: Callable[[], object] | None = None) -> None:
        if every < 1:
            raise ValueError("every must be at least 1")
        self.every = every
        self._trim = trim
        self._looked_up = trim is not None
        self._until_next = every
        self.trims = 0

    def written(self, messages: int) -> None:
        """``messages`` more were written."""
        self._until_next -= messages
        if self._until_next > 0:
            return
        self._until_next = self.every
        if not self._looked_up:
            self._looked_up = True
            self._trim = malloc_trim()
        if self._trim is not None:
            self._trim()
            self.trims += 1
