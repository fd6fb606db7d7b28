"""``-o csv`` and ``-o tsv``: a header, then one row per signal or position.

Rows are the decoded fields of :mod:`c2ws.render.records` (or the ``--fields`` chosen;
made by :mod:`c2ws.render.cells`), written as the standard library's ``csv`` module
writes them (RFC 4180 quoting for CSV; TSV cells never hold a tab or line break, which
are replaced by spaces): by the module itself for a row that needs quoting, joined
directly otherwise.  Gaps, sequence resets and control traffic are not rows: gaps and
resets are reported on stderr.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import BinaryIO, Final

from c2ws import events as ev
from c2ws import spec
from c2ws.render.cells import RowCells
from c2ws.render.records import Projection
from c2ws.render.sink import ByteSink

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
        if not isinstance(event, ev.StreamMessage):
            return
        if self._channels is not None and event.message.msg_type not in self._channels:
            return
        self._add_rows(self._cells.rows(event.message, event.key))

    def handle_messages(self, messages: Sequence[ev.StreamMessage]) -> None:
        """:meth:`handle` for a batch of stream messages only, in one pass."""
        channels, rows_of, signal_row = self._channels, self._cells.rows, self._cells.signal_row
        rows: list[list[str]] = []
        append = rows.append
        for event in messages:
            message = event.message
            msg_type = message.msg_type
            if channels is not None and msg_type not in channels:
                continue
            if signal_row is not None and msg_type == _SIGNAL:
                append(signal_row(message, event.key))
            else:
                rows += rows_of(message, event.key)
        self._add_rows(rows)

    def _add_rows(self, rows: list[list[str]]) -> None:
        """Each row as the csv module writes it (QUOTE_MINIMAL, "\\n"): a row none of
        whose cells holds the delimiter or a quote (nearly all: cells hold no line break)
        is its cells joined by the delimiter, as the module would write it; any other
        row, and a row of one empty cell (written ``""``), is written by the module."""
        delimiter, lines, writer = self._delimiter, self._lines, self._writer
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
