"""``-o csv`` and ``-o tsv``: a header, then one row per signal or position.

Rows are the decoded fields of :mod:`c2ws.render.records` (or the ``--fields`` chosen),
written with the standard library's ``csv`` module (RFC 4180 quoting for CSV; TSV cells
never hold a tab or line break, which are replaced by spaces).  Gaps, sequence resets and
control traffic are not rows: gaps and resets are reported on stderr.
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
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, delimiter=delimiter, lineterminator="\n",
                                  quoting=csv.QUOTE_MINIMAL)
        self._writer.writerow(self._projection.names)

    def handle(self, event: ev.Event) -> None:
        if not isinstance(event, ev.StreamMessage):
            return
        if self._channels is not None and event.message.msg_type not in self._channels:
            return
        self._writer.writerows(self._cells.rows(event.message, event.key))

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
        self._writer.writerows(rows)

    def flush(self) -> None:
        text = self._buffer.getvalue()
        if text:
            self._buffer.seek(0)
            self._buffer.truncate()  # handed over now: a failing write must not repeat them
            self._out.write(text.encode("utf-8"))
        self._out.flush()

    def close(self) -> None:
        self.flush()
