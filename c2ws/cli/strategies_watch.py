"""``--strategies-file FILE`` (issue 25): the strategies a running ``c2ws subscribe``
follows, changed without a restart.

A shell over :mod:`c2ws.strategies_file` (the format) and
:meth:`c2ws.Stream.set_subscriptions` (the change, on the running connections).  The
file is re-read when its stat changes, polled every ``spec.STRATEGIES_FILE_POLL_SECONDS``
by a thread that sleeps in a timed wait in between (no dependency, nothing measurable
when idle), and at once on SIGHUP.  A file that cannot be read or holds a bad line is
reported on stderr (``FILE:LINE: what is wrong``) and the last good set stays.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from c2ws import spec
from c2ws.cli.shared import threads_without_signals
from c2ws.errors import C2wsError
from c2ws.events import SubscriptionKey
from c2ws.render.safe import terminal_safe
from c2ws.strategies_file import StrategiesFileError, decode, read_file, subscriptions_of

if TYPE_CHECKING:
    from c2ws import Stream
    from c2ws.render.diagnostics import Diagnostics

# What tells a changed file: an editor that saves by renaming a new file over it changes
# the inode; one that writes in place, the modification time or the size.
Signature = tuple[int, int, int, int]


def read_subscriptions(
    path: Path, *, channels: Sequence[str], fixed: Sequence[SubscriptionKey]
) -> list[SubscriptionKey]:
    """The subscriptions ``fixed`` and the file ask for; StrategiesFileError naming the
    file (and the line) when it cannot be read or used."""
    name = terminal_safe(str(path), 300)
    return subscriptions_of(decode(read_file(path, name), name), name=name,
                            channels=channels, fixed=fixed)


class StrategiesFileWatch:
    """Keeps ``stream`` subscribed to what the file at ``path`` says (with ``fixed``, the
    command line's); ``current``: the set read at the start (see
    :func:`read_subscriptions`).  :meth:`start` once the stream has started;
    :meth:`hangup` from the SIGHUP handler; :meth:`close` at the end."""

    def __init__(
        self, path: Path, *, channels: Sequence[str], fixed: Sequence[SubscriptionKey],
        current: Sequence[SubscriptionKey], stream: Stream, diagnostics: Diagnostics,
        poll: float = spec.STRATEGIES_FILE_POLL_SECONDS,
    ) -> None:
        self.path = path
        self.name = terminal_safe(str(path), 300)
        self.channels = tuple(channels)
        self.fixed = tuple(fixed)
        self.current = tuple(current)
        self.stream = stream
        self.diagnostics = diagnostics
        self.poll = poll
        self._signature = self._stat()
        self._wake = threading.Event()
        self._hung_up = False
        self._closing = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with threads_without_signals():
            self._thread = threading.Thread(target=self._watch, name="c2ws-strategies-file",
                                            daemon=True)
            self._thread.start()

    def hangup(self) -> None:
        """SIGHUP: re-read the file now (called in the signal handler: only a flag and a
        wake-up here; the reading and the report happen on the watching thread)."""
        self._hung_up = True
        self._wake.set()

    def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    # --- the thread -----------------------------------------------------------------------

    def _watch(self) -> None:
        while True:
            self._wake.wait(self.poll)
            self._wake.clear()
            if self._closing:
                return
            hung_up, self._hung_up = self._hung_up, False
            signature = self._stat()
            if signature == self._signature and not hung_up:
                continue
            self._signature = signature
            self._reload(hung_up)

    def _reload(self, hung_up: bool) -> None:
        say = self.diagnostics.say
        why = "SIGHUP" if hung_up else "changed"
        try:
            wanted = read_subscriptions(self.path, channels=self.channels, fixed=self.fixed)
        except StrategiesFileError as exc:
            say(f"{exc}; still following the last good set ({len(self.current)} "
                "subscription(s))", "red", level="error", event="strategies_file.error")
            return
        if set(wanted) == set(self.current):
            if hung_up:
                say(f"{self.name} re-read (SIGHUP): no change ({len(wanted)} "
                    "subscription(s))", event="strategies_file.unchanged")
            return
        # Checked already (the count): this only asks; the consumer's thread applies it
        # and says what changed (a SubscriptionsChanged event).
        try:
            self.stream.set_subscriptions(wanted, source=f"{self.name}, {why}")
        except (C2wsError, RuntimeError) as exc:  # not expected: said, never a dead thread
            say(f"{self.name}: {terminal_safe(str(exc), 300)}; still following the last "
                f"good set ({len(self.current)} subscription(s))", "red", level="error",
                event="strategies_file.error")
            return
        self.current = tuple(wanted)

    def _stat(self) -> Signature | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None  # reported when it is read (a rename in progress: seen next poll)
        return (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)
