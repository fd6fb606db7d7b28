"""JSON outputs besides plain NDJSON: ``--fields`` projections and ``-o json`` (one array).

What is printed is what NDJSON prints (stream messages, ``gap`` and ``sequence.reset``
objects always, control traffic with ``--include-control``); with ``--fields`` each
stream message becomes the chosen fields (see :mod:`c2ws.render.records`), while gap,
reset and control objects stay whole: a consumer must see a hole even when it projects.
"""

from __future__ import annotations

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


class ProjectedNdjsonRenderer:
    """NDJSON of the chosen fields of each stream message."""

    def __init__(
        self, out: BinaryIO | ByteSink, projection: Projection, *,
        include_control: bool = False,
    ) -> None:
        self._out = ByteSink.of(out)
        self._projection = projection
        self._include_control = include_control

    def handle(self, event: ev.Event) -> None:
        for obj in output_objects(event, include_control=self._include_control,
                                  projection=self._projection):
            self._out.write(orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE))

    def flush(self) -> None:
        self._out.flush()

    def close(self) -> None:
        self._out.flush()


class JsonArrayRenderer:
    """One JSON array of everything NDJSON would print, an element per line, written as
    it arrives (memory stays flat) and closed at the end of the run, Ctrl-C included.
    Meant for small ``--count`` runs whose reader wants one document."""

    def __init__(
        self, out: BinaryIO | ByteSink, *, include_control: bool = False,
        projection: Projection | None = None,
    ) -> None:
        self._out = ByteSink.of(out)
        self._include_control = include_control
        self._projection = projection
        self._elements = 0
        self._closed = False

    def handle(self, event: ev.Event) -> None:
        for obj in output_objects(event, include_control=self._include_control,
                                  projection=self._projection):
            self._out.write(b",\n" if self._elements else b"[\n")
            self._out.write(orjson.dumps(obj))
            self._elements += 1

    def flush(self) -> None:
        self._out.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._out.write(b"\n]\n" if self._elements else b"[]\n")
        self._out.flush()
