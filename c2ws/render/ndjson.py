"""NDJSON output: one compact JSON object per line, flushed per line, stdout only."""

from __future__ import annotations

from typing import BinaryIO

import orjson

from c2ws import events as ev

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
    """Stream messages as their envelopes; ``gap`` always (a consumer must see holes);
    control traffic only when asked."""

    def __init__(self, out: BinaryIO, *, include_control: bool = False) -> None:
        self._out = out
        self._include_control = include_control

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, (ev.StreamMessage, ev.GapReported)) or (
            self._include_control and isinstance(event, _CONTROL_EVENTS)
        ):
            self._out.write(orjson.dumps(event.message.raw, option=orjson.OPT_APPEND_NEWLINE))
            self._out.flush()

    def close(self) -> None:
        self._out.flush()
