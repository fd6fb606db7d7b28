"""JSON outputs besides plain NDJSON: ``--fields`` projections and ``-o json`` (one array).

What is printed is what NDJSON prints (stream messages, ``gap`` and ``sequence.reset``
objects always, control traffic with ``--include-control``); with ``--fields`` each
stream message becomes the chosen fields (see :mod:`c2ws.render.records`), while gap,
reset and control objects stay whole: a consumer must see a hole even when it projects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import BinaryIO

import orjson

from c2ws import events as ev
from c2ws.lines import gap_object, reset_object
from c2ws.protocol import JsonObject
from c2ws.render.ndjson import _CONTROL_EVENTS
from c2ws.render.records import Projection
from c2ws.render.sink import ByteSink


def output_objects(
    event: ev.Event, *, include_control: bool, projection: Projection | None
) -> list[JsonObject]:
    """The JSON objects an event prints as (none for most)."""
    if isinstance(event, ev.StreamMessage):
        if projection is None:
            return [event.message.raw]
        return list(projection.records(event.message, event.key))
    if isinstance(event, ev.GapReported):
        return [gap_object(event)]
    if isinstance(event, ev.SequenceReset):
        return [reset_object(event)]
    if isinstance(event, (ev.PositionsSnapshot, ev.BackfillOrder, ev.BackfillFailed)):
        return [event.obj]  # issue 24: whole, as NDJSON writes them
    if include_control and isinstance(event, _CONTROL_EVENTS):
        return [event.message.raw]
    return []


def _stream_objects(
    messages: Sequence[ev.StreamMessage], projection: Projection | None
) -> list[JsonObject]:
    """:func:`output_objects` of a batch of stream messages, in one pass."""
    if projection is None:
        return [event.message.raw for event in messages]
    records = projection.records
    objects: list[JsonObject] = []
    for event in messages:
        objects += records(event.message, event.key)
    return objects


class ProjectedNdjsonRenderer:
    """NDJSON of the chosen fields of each stream message.  Lines are collected per batch
    and written at :meth:`flush` in one go."""

    def __init__(
        self, out: BinaryIO | ByteSink, projection: Projection, *,
        include_control: bool = False,
    ) -> None:
        self._out = ByteSink.of(out)
        self._projection = projection
        self._include_control = include_control
        self._lines: list[bytes] = []

    def handle(self, event: ev.Event) -> None:
        self._lines += map(orjson.dumps, output_objects(
            event, include_control=self._include_control, projection=self._projection))

    def handle_messages(self, messages: Sequence[ev.StreamMessage]) -> None:
        """:meth:`handle` for a batch of stream messages only, in one pass."""
        self._lines += map(orjson.dumps, _stream_objects(messages, self._projection))

    def flush(self) -> None:
        lines = self._lines
        if lines:
            lines.append(b"")  # the last line's newline
            self._lines = []  # handed over now: a failing write must not repeat them
            self._out.write(b"\n".join(lines))
        self._out.flush()

    def close(self) -> None:
        self.flush()


class JsonArrayRenderer:
    """One JSON array of everything NDJSON would print, an element per line, written per
    batch (memory stays flat) and closed at the end of the run, Ctrl-C included.  Meant
    for small ``--count`` runs whose reader wants one document."""

    def __init__(
        self, out: BinaryIO | ByteSink, *, include_control: bool = False,
        projection: Projection | None = None,
    ) -> None:
        self._out = ByteSink.of(out)
        self._include_control = include_control
        self._projection = projection
        self._elements = 0
        self._pending: list[bytes] = []  # elements handled, not yet written
        self._closed = False

    def handle(self, event: ev.Event) -> None:
        self._add(output_objects(event, include_control=self._include_control,
                                 projection=self._projection))

    def handle_messages(self, messages: Sequence[ev.StreamMessage]) -> None:
        """:meth:`handle` for a batch of stream messages only, in one pass."""
        self._add(_stream_objects(messages, self._projection))

    def _add(self, objects: list[JsonObject]) -> None:
        if objects:
            self._pending += map(orjson.dumps, objects)
            self._elements += len(objects)

    def flush(self) -> None:
        pending = self._pending
        if pending:
            # The first element opens the array; each one after it follows a comma.
            opening = b"[\n" if self._elements == len(pending) else b",\n"
            self._pending = []  # handed over now: a failing write must not repeat them
            self._out.write(opening + b",\n".join(pending))
        self._out.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.flush()
        self._out.write(b"\n]\n" if self._elements else b"[]\n")
        self._out.flush()
