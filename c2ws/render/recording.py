"""``--record FILE``: every frame received, as it arrived, appended to FILE (see
:mod:`c2ws.recording` for the format), alongside whatever stdout shows; and the positions
snapshots taken from the REST API, which a replay shows as the run did.

It is a renderer like the others: it sees the engine's ``Traffic`` events (the engine
runs with ``traffic=True``) in the order they crossed the wire, and what it has written
is flushed with every batch, before the batch is acknowledged.  Frames the run never
handed to its output (after ``--count`` was reached) are not recorded, so replaying
the recording shows exactly what the run showed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

from c2ws import events as ev
from c2ws import recording
from c2ws.render import Renderer
from c2ws.render.safe import redacted
from c2ws.render.sink import ByteSink


class RecordingRenderer:
    """Writes the header at once, then received frames and connection ends."""

    def __init__(
        self, out: BinaryIO | ByteSink, *, keys: Sequence[ev.SubscriptionKey], per_connection: int,
        url: str, label: str = "--record", clock: Callable[[], float] = time.time,
    ) -> None:
        self._out = ByteSink.of(out)
        self._label = label
        self._clock = clock
        # The time of the last line written with one: where a replay of it ends.
        self.last_at: float | None = None
        self._write(recording.header_line(keys, per_connection=per_connection,
                                          url=redacted(url), started_at=clock()))

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.Traffic):
            if event.direction == "<":
                at = event.at or self._clock()
                self._write(recording.frame_line(event.data, at=at, connection=event.shard + 1))
                self.last_at = at
        elif isinstance(event, ev.ConnectionEnded):
            at = self._clock()
            self._write(recording.end_line(event.end.reason.value, event.end.detail,
                                           at=at, connection=event.shard + 1))
            self.last_at = at
        elif isinstance(event, ev.PositionsSnapshot):
            at = self._clock()
            self._write(recording.snapshot_line(event.obj, at=at))
            self.last_at = at

    def _write(self, line: bytes) -> None:
        try:
            self._out.write(line)
        except OSError as exc:
            raise _named(exc, self._label) from None

    def flush(self) -> None:
        try:
            self._out.flush()
        except OSError as exc:
            raise _named(exc, self._label) from None

    def close(self) -> None:
        # A failed write was reported when it happened; closing must not fail again.
        with contextlib.suppress(OSError):
            self._out.flush()
        with contextlib.suppress(OSError):
            self._out.stream.close()


class RecordingUnusable(Exception):
    """The recording file cannot be opened; ``str()`` is one line (not yet made
    terminal-safe) naming the file and what to do."""


def open_recording(
    path: Path, *, keys: Sequence[ev.SubscriptionKey], per_connection: int, url: str,
    label: str = "--record",
) -> RecordingRenderer:
    """A :class:`RecordingRenderer` appending to ``path``: a file of this user's with one
    name, never reached through a symbolic link (see
    :func:`c2ws.localfiles.open_own_file`), created private: it holds the frames."""
    import os

    from c2ws.localfiles import UnusableFile, open_own_file

    try:
        fd, _ = open_own_file(path, append=True)
    except UnusableFile as exc:
        raise RecordingUnusable(f"{label}: {path} {exc.problem}; pass a file of your own") \
            from None
    except OSError as exc:
        raise RecordingUnusable(f"{label}: cannot open {path}: {exc.strerror or exc}") from None
    return RecordingRenderer(os.fdopen(fd, "ab"), keys=keys, per_connection=per_connection,
                             url=url, label=label)


def _named(exc: OSError, label: str) -> OSError:
    """The same error, naming the recording (not stdout) as what failed."""
    return OSError(exc.errno, exc.strerror or str(exc), f"the {label} file")


class TeeRenderer:
    """Hands every event to each renderer in turn."""

    def __init__(self, renderers: Iterable[Renderer]) -> None:
        self.renderers = tuple(renderers)

    def handle(self, event: ev.Event) -> None:
        for renderer in self.renderers:
            renderer.handle(event)

    def flush(self) -> None:
        for renderer in self.renderers:
            renderer.flush()

    def close(self) -> None:
        errors: list[BaseException] = []
        for renderer in self.renderers:
            try:
                renderer.close()
            except BaseException as exc:  # close the others, then re-raise the first
                errors.append(exc)
        if errors:
            raise errors[0]
