"""NDJSON output: one JSON object per line, stdout only.

Lines are written once per batch the engine hands over (a batch is what one socket read
brought), so a quiet stream is flushed per message and a burst costs one write.  A
message is written as the frame the server sent, byte for byte, when that is one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import BinaryIO, Final

from c2ws import events as ev

# Built in c2ws.lines (the library's messages write the same lines); the renderers and
# their tests import them from here too.
from c2ws.lines import (
    gap_line,
    gap_object,
    is_one_line,
    line_of,
    read_reset_object,
    reset_line,
    reset_object,
)
from c2ws.render.sink import ByteSink

__all__ = [
    "NdjsonRenderer", "gap_object", "is_one_line", "line_of", "read_reset_object",
    "reset_object",
]

_CONTROL_EVENTS = (
    ev.Connected,
    ev.HeartbeatAnswered,
    ev.SubscriptionConfirmed,
    ev.SubscriptionRejected,
    ev.Unsubscribed,
    ev.ServerError,
    ev.OtherControl,
)


class NdjsonRenderer:
    """Stream messages as their envelopes; ``gap`` and ``sequence.reset`` always (a
    consumer must see holes and renumberings); control traffic only when asked.  Lines
    are collected per batch and written at :meth:`flush` in one go."""

    def __init__(self, out: BinaryIO | ByteSink, *, include_control: bool = False) -> None:
        self._out = ByteSink.of(out)
        self._include_control = include_control
        self._lines: list[bytes] = []  # lines handled, without their newlines
        self._chunks: list[bytes] = []  # NDJSON ready to write: whole lines before _lines

    @property
    def sink(self) -> ByteSink:
        """What the lines are written to."""
        return self._out

    def handle(self, event: ev.Event) -> None:
        if type(event) is _STREAM_MESSAGE or (
            self._include_control and isinstance(event, _CONTROL_EVENTS)
        ):
            self._lines.append(line_of(event.message))
        elif isinstance(event, ev.GapReported):
            self._lines.append(gap_line(event))
        elif isinstance(event, ev.SequenceReset):
            self._lines.append(reset_line(event))
        elif isinstance(event, _REST_LINES):  # issue 24: --snapshot, --heal-gaps
            self._lines.append(event.line)

    def handle_messages(self, messages: Sequence[ev.StreamMessage]) -> None:
        """:meth:`handle` for a batch of stream messages only, in one pass."""
        self._lines.extend([
            data if is_one_line(data := event.message.data) else line_of(event.message)
            for event in messages
        ])

    def handle_ndjson(self, data: bytes) -> None:
        """Stream messages already rendered as NDJSON, every line with its newline
        (``Batch.ndjson()``): written as they are, after what was handled before."""
        self._end_lines()
        self._chunks.append(data)

    def flush(self) -> None:
        self._end_lines()
        chunks = self._chunks
        if chunks:
            self._chunks = []  # handed over now: a failing write must not repeat them
            self._out.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        self._out.flush()

    def _end_lines(self) -> None:
        """The lines handled so far, as NDJSON ready to write."""
        lines = self._lines
        if lines:
            lines.append(b"")  # the last line's newline
            self._lines = []
            self._chunks.append(b"\n".join(lines))

    def close(self) -> None:
        self.flush()


_STREAM_MESSAGE: Final = ev.StreamMessage
# Lines of c2ws's own from the REST API, written in order with the stream.
_REST_LINES: Final = (ev.PositionsSnapshot, ev.BackfillOrder, ev.BackfillFailed)
