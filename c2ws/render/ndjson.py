"""NDJSON output: one compact JSON object per line, stdout only.

Lines are flushed once per batch the engine hands over (a batch is what one socket read
brought), so a quiet stream is flushed per message and a burst costs one write.
"""

from __future__ import annotations

from typing import BinaryIO

import orjson

from c2ws import events as ev
from c2ws.protocol import JsonObject

_CONTROL_EVENTS = (
    ev.Connected,
    ev.HeartbeatAnswered,
    ev.SubscriptionConfirmed,
    ev.SubscriptionRejected,
    ev.Unsubscribed,
    ev.ServerError,
    ev.OtherControl,
)


def gap_object(gap: ev.GapReported) -> JsonObject:
    """The server's ``gap`` envelope, plus ``missing``: both ends of the hole (every seq_id
    strictly between ``after_seq_id`` and ``before_seq_id``), with their timestamps, so a
    script can backfill from the REST API.  ``before_*`` are null when no message came
    after the hole before c2ws stopped."""
    obj = dict(gap.message.raw)
    obj["missing"] = {
        "strategy_id": gap.key.strategy_id,
        "channel": gap.key.channel,
        "after_seq_id": gap.last_seq,
        "after_timestamp": gap.last_timestamp,
        "before_seq_id": gap.next_seq,
        "before_timestamp": gap.next_timestamp,
    }
    return obj


class NdjsonRenderer:
    """Stream messages as their envelopes; ``gap`` always (a consumer must see holes);
    control traffic only when asked."""

    def __init__(self, out: BinaryIO, *, include_control: bool = False) -> None:
        self._out = out
        self._include_control = include_control

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.StreamMessage) or (
            self._include_control and isinstance(event, _CONTROL_EVENTS)
        ):
            self._out.write(orjson.dumps(event.message.raw, option=orjson.OPT_APPEND_NEWLINE))
        elif isinstance(event, ev.GapReported):
            self._out.write(orjson.dumps(gap_object(event), option=orjson.OPT_APPEND_NEWLINE))

    def flush(self) -> None:
        self._out.flush()

    def close(self) -> None:
        self._out.flush()
