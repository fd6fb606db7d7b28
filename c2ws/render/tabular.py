"""``-o csv`` and ``-o tsv``: a header, then one row per signal or position.

Rows are the decoded fields of :mod:`c2ws.render.records` (or the ``--fields`` chosen;
made by :mod:`c2ws.render.cells`), written as the standard library's ``csv`` module
writes them (RFC 4180 quoting for CSV; TSV cells never hold a tab or line break, which
are replaced by spaces): by the module itself for a row that needs quoting, joined
directly otherwise.  Gaps, sequence resets and control traffic are not rows: gaps and
resets are reported on stderr.

The session of a run writing CSV or TSV passes frames through as NDJSON does (payloads
not decoded, bursts as :class:`~c2ws.events.StreamRun`): decoding every payload in full
(``orjson.loads``) cost more than the whole of an NDJSON message.  A run of signals has
nearly all its lines written straight from its bytes by the compiled
:func:`c2ws.render.cells.run_lines` (it reads only the fields the row needs); a line it
read but did not write has its row made in Python from the values it read, and joined
here; any line it did not read, and any other message, is decoded here in full, as the
session would have decoded it, and takes the general path (tests/test_render_csv_runs.py
holds the two to the same bytes on arbitrary frames).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import BinaryIO, Final

from c2ws import events as ev
from c2ws import protocol, spec
from c2ws.protocol import Envelope, MalformedMessage
from c2ws.render.cells import RowCells, run_lines
from c2ws.render.records import Projection
from c2ws.render.sink import ByteSink
from c2ws.stream_head import read_stream_head

_SIGNAL: Final = spec.CHANNEL_SIGNAL


class DelimitedRenderer:
    """CSV (``delimiter=","``) or TSV (``"\\t"``) rows of the stream messages of
    ``channels``.  Rows are collected per batch and written at :meth:`flush`; the header
    row goes out with the first flush (the run's first batch, even without rows), so
    that building the renderer writes nothing and cannot fail."""

    def __init__(
        self, out: BinaryIO | ByteSink, columns: Sequence[str], *, delimiter: str = ",",
        channels: Iterable[str] | None = None,
    ) -> None:
        self._out = ByteSink.of(out)
        self._channels = frozenset(channels) if channels is not None else None
        self._projection = Projection(columns, channels=self._channels)
        self._cells = RowCells(self._projection)
        self._delimiter = delimiter
        # The csv module writes the rows that need it (see _add_rows) into this buffer.
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, delimiter=delimiter, lineterminator="\n",
                                  quoting=csv.QUOTE_MINIMAL)
        self._lines: list[str] = []
        self._add_rows([list(self._projection.names)])

    def handle(self, event: ev.Event) -> None:
        if type(event) is ev.StreamRun:
            self.handle_events([event])
            return
        if not isinstance(event, ev.StreamMessage):
            return
        if self._channels is not None and event.message.msg_type not in self._channels:
            return
        self._add_rows(self._cells.rows(_with_payload(event.message), event.key))

    def handle_events(self, events: Sequence[ev.StreamMessage | ev.StreamRun]) -> None:
        """:meth:`handle` for a batch of stream messages and runs only, in one pass."""
        channels, rows_of, signal_row = self._channels, self._cells.rows, self._cells.signal_row
        values_row, columns, delimiter = (
            self._cells.values_row, self._cells.columns, self._delimiter)
        rows: list[Sequence[str]] = []
        append = rows.append
        for event in events:
            if type(event) is ev.StreamRun:
                key = event.key
                frames: list[bytes] | None = None
                if (values_row is not None and columns is not None and key.channel == _SIGNAL
                        and (channels is None or _SIGNAL in channels)):
                    # Signals: their lines written by the compiled writer (nearly all);
                    # a line it read but did not write made from its values, a line it
                    # did not read (every line without it) decoded in full.
                    for part in run_lines(event.ndjson, columns, delimiter):
                        if type(part) is str:
                            if rows:
                                self._add_rows(rows)
                                rows.clear()
                            self._lines.append(part)
                        elif type(part) is tuple:
                            append(values_row(key, part))
                        else:
                            if frames is None:
                                frames = event.frames
                            message = _decoded(frames[part])  # type: ignore[index]
                            if channels is None or message.msg_type in channels:
                                rows += rows_of(message, key)
                    continue
                for frame in event.frames:  # positions (or another projection): decoded
                    message = _decoded(frame)
                    if channels is None or message.msg_type in channels:
                        rows += rows_of(message, key)
                continue
            message = event.message  # type: ignore[union-attr]
            msg_type = message.msg_type
            if channels is not None and msg_type not in channels:
                continue
            if not message.payload:
                message = _with_payload(message)
            if signal_row is not None and msg_type == _SIGNAL:
                append(signal_row(message, event.key))
            else:
                rows += rows_of(message, event.key)
        self._add_rows(rows)

    handle_messages = handle_events

    def _add_rows(self, rows: Sequence[Sequence[str]]) -> None:
        """Each row as the csv module writes it (QUOTE_MINIMAL, "\\n"): a row none of
        whose cells holds the delimiter or a quote (nearly all: cells hold no line break)
        is its cells joined by the delimiter, as the module would write it; any other
        row, and a row of one empty cell (written ``""``), is written by the module."""
        delimiter, lines, writer = self._delimiter, self._lines, self._writer
        # Usually every row is plain: checked for the whole batch at once (no quote, as
        # many delimiters as the rows have cells between them, no empty line).
        joined = list(map(delimiter.join, rows))
        text = "\n".join(joined)
        if ('"' not in text and text.count(delimiter) == sum(map(len, rows)) - len(rows)
                and all(joined)):
            lines += joined
            return
        for row in rows:
            line = delimiter.join(row)
            if '"' in line or line.count(delimiter) != len(row) - 1 or not line:
                writer.writerow(row)
                line = self._buffer.getvalue()[:-1]
                self._buffer.seek(0)
                self._buffer.truncate()
            lines.append(line)

    def flush(self) -> None:
        lines = self._lines
        if lines:
            lines.append("")  # the last line's newline
            self._lines = []  # handed over now: a failing write must not repeat them
            self._out.write("\n".join(lines).encode("utf-8"))
        self._out.flush()

    def close(self) -> None:
        self.flush()


def _with_payload(message: Envelope) -> Envelope:
    """``message`` with its payload: a session passing frames through delivers the
    header fields only (``payload`` empty, ``data`` the frame), decoded here."""
    if message.payload or type(message.data) is not bytes:
        return message
    return _decoded(message.data, message)


def _decoded(frame: bytes, head: Envelope | None = None) -> Envelope:
    """The frame decoded as a session decoding payloads decodes it.  A frame orjson
    refuses (valid JSON with a number beyond a double's range), which such a session
    reported as malformed and skipped, is delivered by one passing frames through: its
    header fields alone make its row (``head``; else as msgspec reads them)."""
    try:
        return protocol.decode(frame)
    except MalformedMessage:
        if head is None:
            read = read_stream_head(frame)
            head = read[0] if read is not None else Envelope(_SIGNAL, {}, data=frame)
        return head
