"""The sink of stdout (or any byte stream): a renderer formats each batch (NDJSON, CSV,
TSV, a JSON array, ``--fields``, tables) and the sink writes it out; a batch is written
once the renderer has flushed it.

What is durable there is the cursor store's part: with ``--state`` the state file
commits, per group, the cursors and where the output file's written lines end (after an
``fsync`` of the output), and a restart reads the output back from there
(:class:`c2ws.cursors.FileCursors`).  So what the sink promises depends on where stdout
goes, which :func:`output_guarantee` says:

* a regular file appended to (``>> FILE``): exactly once, any format that appends
  (NDJSON lines are read back; CSV, TSV, ``--fields`` and table lines after the last
  commit are cut and sent again by the server), except ``-o json``, one array per run,
  which no file appended to across runs can hold: refused with ``--state``;
* a pipe, a terminal, a socket, a file written at an offset: at least once, a crash
  repeating at most what was written after the last commit.
"""

from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, TextIO

from c2ws import events as ev
from c2ws import spec
from c2ws.events import SubscriptionKey
from c2ws.render import Renderer, messages_handler
from c2ws.sinks import Guarantee

if TYPE_CHECKING:
    from c2ws.streaming import Batch

__all__ = ["OutputSink", "output_guarantee", "output_kind"]


def output_kind(fd: int | None) -> str:
    """What ``fd`` is, in words: ``file`` (a regular file appended to, or written at its
    end), ``file written at an offset``, ``pipe``, ``terminal``, ``socket``, ``device``,
    ``closed``."""
    if fd is None:
        return "closed"
    try:
        status = os.fstat(fd)
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    except OSError:
        return "closed"
    mode = status.st_mode
    if stat.S_ISREG(mode):
        try:
            at_end = bool(flags & os.O_APPEND) or os.lseek(fd, 0, os.SEEK_CUR) == status.st_size
        except OSError:
            at_end = False
        return "file" if at_end else "file written at an offset"
    if stat.S_ISFIFO(mode):
        return "pipe"
    if stat.S_ISSOCK(mode):
        return "socket"
    if os.isatty(fd):
        return "terminal"
    return "device"


def output_guarantee(
    fd: int | None, *, read_back: bool, one_document: bool = False
) -> tuple[Guarantee, str]:
    """What stdout on ``fd`` keeps with ``--state`` (see the module docstring), and the
    detail: ``read_back``: each message is its NDJSON envelope line; ``one_document``:
    the format is one JSON array per run (``-o json``)."""
    kind = output_kind(fd)
    if kind == "file":
        if one_document:
            return Guarantee.NONE, (
                "-o json writes one JSON array per run, which a file appended to across runs "
                "cannot hold (after a restart it is no JSON document; after a crash its array "
                "is never closed); use -o ndjson (exactly once) or send -o json to a pipe")
        how = ("the lines after the last commit are read back at the next start"
               if read_back else
               "the lines after the last commit are cut at the next start and the server "
               f"sends them again (at most {spec.CUT_OUTPUT_MAX_UNCOMMITTED} messages; "
               "positions are not replayed)")
        return Guarantee.EXACTLY_ONCE, f"stdout is appended to a regular file: {how}"
    where = {"file written at an offset": "a file written at an offset before its end "
                                          "(not appended to with >>)",
             "closed": "not a file"}.get(kind, f"a {kind}")
    return Guarantee.AT_LEAST_ONCE, (
        f"stdout is {where}, which cannot be read back: after a kill -9 the next run writes "
        f"again the messages written after the last commit (at most "
        f"{spec.COMMIT_GROUP_MAX_MESSAGES}; those of about the last "
        f"{spec.COMMIT_GROUP_MAX_SECONDS:g} s); for exactly once append stdout to a file "
        "(>> FILE)")


class OutputSink:
    """Batches through ``renderer`` to the byte stream it writes (see the module
    docstring).  ``text``: a text stream to flush after the renderer (the table writes
    through one); ``before``: called with how many events of the batch are being handed
    to the renderer and the event (None for a burst of stream messages, handed at once),
    before it is (the CLI reports gaps on stderr there, in order with the lines, and
    counts what was handed over)."""

    def __init__(
        self, renderer: Renderer, *, name: str = "stdout",
        guarantee: tuple[Guarantee, str] = (Guarantee.AT_LEAST_ONCE, "a byte stream"),
        text: TextIO | None = None,
        before: Callable[[int, ev.Event | None], None] | None = None,
    ) -> None:
        self.renderer = renderer
        self.name = name
        self.guarantee, self.guarantee_detail = guarantee
        self.text = text
        self.before = before
        self._handle_messages = messages_handler(renderer)
        # A renderer that writes the frames as they are (NDJSON) takes a burst as bytes.
        self._handle_ndjson: Callable[[bytes], None] | None = getattr(
            renderer, "handle_ndjson", None)
        # One that reads a burst's bytes (CSV, TSV) takes the runs as they were handed over.
        self._handle_events: Callable[[Sequence[ev.Event]], None] | None = getattr(
            renderer, "handle_events", None)
        self._written: list[Batch] = []

    def open(self, keys: Collection[SubscriptionKey]) -> Mapping[SubscriptionKey, int]:
        """Nothing to open: what a file holds is read back by the cursor store."""
        return {}

    def write(self, batch: Batch) -> None:
        """Render the batch and flush it; an ``OSError`` is the write's (disk full...).
        A batch of nothing but signals and positions, nearly every one, takes the
        renderer's batch path: for NDJSON, the batch's lines as bytes, made without an
        object per message (its bursts are never expanded into events)."""
        if batch.written_ahead:
            # Out already (c2ws.sinks.ahead): counted, and acknowledged once durable.
            if self.before is not None:
                self.before(len(batch), None)
            self._written.append(batch)
            return
        if batch.only_signals_and_positions:
            size = len(batch)
            if self.before is not None:
                self.before(size, None)
            if self._handle_ndjson is not None:
                if size:
                    self._handle_ndjson(batch.ndjson())
            elif self._handle_events is not None:
                self._handle_events(batch.handed_events)
            else:
                self._handle_messages(batch.events)  # type: ignore[arg-type]
        else:
            # Gaps, resets or REST lines among them: event by event, each told to
            # ``before`` first (so stderr reports them in order with the lines).
            before, handle = self.before, self.renderer.handle
            for index, event in enumerate(batch.events):
                if before is not None:
                    before(index + 1, event)
                handle(event)
        self._flush()
        self._written.append(batch)

    def _flush(self) -> None:
        self.renderer.flush()
        if self.text is not None:
            self.text.flush()

    def durable(self) -> list[Batch]:
        """Every batch written: what a commit makes durable is the cursor store's part."""
        written, self._written = self._written, []
        return written

    def sync(self) -> None:
        """Written is flushed already."""

    def close(self) -> None:
        """Close the renderer (a JSON array's closing bracket, what it buffers)."""
        self.renderer.close()
