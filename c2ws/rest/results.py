"""What the REST side gives a program: typed orders and positions, and the lines c2ws
writes for them.

The typed results read their fields exactly as the stream's :class:`~c2ws.Signal` and
:class:`~c2ws.Position` do (the same descriptors of :mod:`c2ws.messages`: any key case,
codes as enums, exact Decimals, never raising): a REST order is an ``OrderStatusDTO``
like a signal's payload.  They are *not* stream messages: no ``seq_id``, and a class of
their own, so a consumer never takes a backfilled order for a live signal.

Lines (one JSON object each, as ``c2ws positions``, ``c2ws orders`` and ``c2ws subscribe
--snapshot / --heal-gaps`` write them; the REST object as received is the ``payload``)::

    {"msg_type":"positions.snapshot","strategy_id":N,"timestamp":T,"payload":[PositionDTO...]}
    {"msg_type":"order","strategy_id":N,"payload":OrderDTO}
    {"msg_type":"backfill.order","strategy_id":N,"channel":"strategy.signal",
     "payload":OrderDTO,"gap":{...the gap line's "missing"...},"window":{...}}
    {"msg_type":"backfill.failed","strategy_id":N,"channel":"strategy.signal",
     "reason":"...","written":K,"gap":{...},"window":{...}}
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Final

import orjson

from c2ws import events as ev
from c2ws import spec
from c2ws.events import StreamMessage, SubscriptionKey
from c2ws.lines import gap_object
from c2ws.messages import Gap, _Message, _OrderFields, _PositionFields, _short
from c2ws.protocol import Envelope, JsonObject, format_timestamp
from c2ws.rest import api

__all__ = [
    "BackfillFailed",
    "BackfillOrder",
    "OpenPosition",
    "Order",
    "PositionsSnapshot",
]


# --- the lines -------------------------------------------------------------------------


def snapshot_object(strategy_id: int, positions: Sequence[JsonObject], taken_at: str
                    ) -> JsonObject:
    return {"msg_type": spec.MSG_POSITIONS_SNAPSHOT, "strategy_id": strategy_id,
            "timestamp": taken_at, "payload": list(positions)}


def order_object(strategy_id: int, order: JsonObject) -> JsonObject:
    return {"msg_type": spec.MSG_ORDER, "strategy_id": strategy_id, "payload": order}


def window_object(start: datetime.datetime, end: datetime.datetime | None) -> JsonObject:
    """The time window a backfill asked the REST API for, and the margin it added."""
    return {"start": api.format_date(start),
            "end": None if end is None else api.format_date(end, round_up=True),
            "margin_seconds": spec.BACKFILL_MARGIN_SECONDS}


def backfill_object(gap: ev.GapReported, order: JsonObject, window: JsonObject) -> JsonObject:
    return {"msg_type": spec.MSG_BACKFILL_ORDER, "strategy_id": gap.key.strategy_id,
            "channel": gap.key.channel, "payload": order, "gap": gap_object(gap)["missing"],
            "window": window}


def backfill_failed_object(gap: ev.GapReported, reason: str, written: int,
                           window: JsonObject) -> JsonObject:
    return {"msg_type": spec.MSG_BACKFILL_FAILED, "strategy_id": gap.key.strategy_id,
            "channel": gap.key.channel, "reason": reason, "written": written,
            "gap": gap_object(gap)["missing"], "window": window}


def snapshot_event(strategy_id: int, positions: Sequence[JsonObject], now: float
                   ) -> ev.PositionsSnapshot:
    taken_at = format_timestamp(now)
    return ev.PositionsSnapshot(strategy_id, tuple(positions), taken_at,
                                snapshot_object(strategy_id, positions, taken_at))


# --- typed results ---------------------------------------------------------------------


def _holder(strategy_id: int, channel: str, payload: JsonObject, obj: JsonObject) -> StreamMessage:
    """What the shared field descriptors read: a private envelope around the REST object
    (never handed to an engine: it is no stream message)."""
    return StreamMessage(SubscriptionKey(strategy_id, channel),
                         Envelope(str(obj.get("msg_type", "")), payload, raw=obj,
                                  data=orjson.dumps(obj)))


class Order(_OrderFields):
    """A REST order (``OrderStatusDTO``: history, working orders, backfill): the fields of
    a :class:`~c2ws.Signal` (``signal_id``, ``side``, ``status``, ``quantity``...), plus
    ``posted_at``.  ``raw`` is the line's object, ``payload`` the REST object as
    received, ``line`` what ``c2ws orders`` writes for it.  ``seq_id`` is None: REST
    objects carry none."""

    __slots__ = ()

    def __init__(self, strategy_id: int, order: JsonObject, obj: JsonObject | None = None
                 ) -> None:
        holder = _holder(strategy_id, spec.CHANNEL_SIGNAL, order,
                         obj if obj is not None else order_object(strategy_id, order))
        object.__setattr__(self, "_event", holder)
        object.__setattr__(self, "_memo", None)

    @property
    def channel(self) -> str:
        """``strategy.signal``: orders are what signals carry."""
        return spec.CHANNEL_SIGNAL

    @property
    def payload(self) -> JsonObject:
        """The REST object as received."""
        return self._event.message.payload

    @property
    def posted_at(self) -> datetime.datetime | None:
        """``PostedDate`` as an aware UTC datetime (None when absent or unreadable)."""
        return api.posted_date_of(self.payload)

    @property
    def timestamp(self) -> datetime.datetime | None:  # type: ignore[override]
        """As :attr:`posted_at`."""
        return self.posted_at

    def __reduce__(self) -> tuple[type[Order], tuple[int, JsonObject, JsonObject]]:  # type: ignore[override]
        return type(self), (self._event.key.strategy_id, self.payload,  # type: ignore[union-attr]
                            self._event.message.raw)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(strategy_id={self.strategy_id!r}, "
                f"signal_id={self.signal_id!r}, side={_short(self.side)}, "
                f"quantity={_short(self.quantity)}, symbol={_short(self.symbol)}, "
                f"status={_short(self.status)})")


class OpenPosition(_PositionFields):
    """A REST position (``PositionDTO``): the fields of a :class:`~c2ws.Position`
    (``symbol``, ``quantity`` signed, ``avg_price``, ``currency``...), plus
    ``opened_at``.  ``raw`` is the REST object as received."""

    __slots__ = ()

    def __init__(self, strategy_id: int, position: JsonObject) -> None:
        holder = _holder(strategy_id, spec.CHANNEL_POSITIONS, position, position)
        object.__setattr__(self, "_event", holder)
        object.__setattr__(self, "_memo", None)

    @property
    def channel(self) -> str:
        return spec.CHANNEL_POSITIONS

    @property
    def opened_at(self) -> datetime.datetime | None:
        """``OpenedDate`` as an aware UTC datetime (None when absent or unreadable)."""
        return api.parse_date(self._payload().get("openeddate"))

    @property
    def timestamp(self) -> datetime.datetime | None:  # type: ignore[override]
        return self.opened_at

    def __reduce__(self) -> tuple[type[OpenPosition], tuple[int, JsonObject]]:  # type: ignore[override]
        return OpenPosition, (self._event.key.strategy_id,  # type: ignore[union-attr]
                              self._event.message.payload)

    def __repr__(self) -> str:
        return (f"OpenPosition(strategy_id={self.strategy_id!r}, symbol={_short(self.symbol)}, "
                f"quantity={_short(self.quantity)}, avg_price={_short(self.avg_price)})")


class BackfillOrder(Order):
    """An order the REST history gave to fill a :class:`~c2ws.Gap` (``gap``), written
    right after it and before the first signal after the hole (``c2ws.stream(...,
    heal_gaps=True)``).  Its ``line`` has ``"msg_type": "backfill.order"``."""

    __slots__ = ("_source",)
    _source: ev.BackfillOrder

    def __init__(self, event: ev.BackfillOrder) -> None:
        super().__init__(event.key.strategy_id, event.order, event.obj)
        object.__setattr__(self, "_source", event)

    @property
    def gap(self) -> Gap:
        """The gap this order fills."""
        return Gap(self._source.gap)

    def __reduce__(self) -> tuple[type[BackfillOrder], tuple[ev.BackfillOrder]]:  # type: ignore[override]
        return BackfillOrder, (self._source,)


class _Note(_Message):
    """A line of c2ws's own about the REST side (a snapshot, a failed backfill)."""

    __slots__ = ("_source",)
    _source: ev.PositionsSnapshot | ev.BackfillFailed

    @property
    def seq_id(self) -> None:
        return None

    @property
    def raw(self) -> JsonObject:
        return self._source.obj

    @property
    def line(self) -> bytes:
        return self._source.line


class PositionsSnapshot(_Note):
    """The open positions of ``strategy_id`` as the REST API gave them at ``timestamp``
    (``c2ws.stream(..., snapshot=True)``): ``positions``, each an :class:`OpenPosition`;
    none when the strategy is flat everywhere."""

    __slots__ = ()
    _source: ev.PositionsSnapshot

    def __init__(self, event: ev.PositionsSnapshot) -> None:
        object.__setattr__(self, "_source", event)

    @property
    def strategy_id(self) -> int:
        return self._source.strategy_id

    @property
    def channel(self) -> str:
        return spec.CHANNEL_POSITIONS

    @property
    def timestamp(self) -> datetime.datetime | None:
        return api.parse_date(self._source.taken_at)

    @property
    def positions(self) -> tuple[OpenPosition, ...]:
        return tuple(OpenPosition(self.strategy_id, p) for p in self._source.positions)

    def __reduce__(self) -> tuple[type[PositionsSnapshot], tuple[ev.PositionsSnapshot]]:
        return PositionsSnapshot, (self._source,)

    def __repr__(self) -> str:
        return (f"PositionsSnapshot(strategy_id={self.strategy_id!r}, "
                f"positions={len(self._source.positions)})")


class BackfillFailed(_Note):
    """The backfill of ``gap`` failed after its retries (or was cut at the limit):
    ``reason`` (one line), ``written`` (orders of it written before).  The hole is not
    known to be filled: fetch it yourself, or run again."""

    __slots__ = ()
    _source: ev.BackfillFailed

    def __init__(self, event: ev.BackfillFailed) -> None:
        object.__setattr__(self, "_source", event)

    @property
    def strategy_id(self) -> int:
        return self._source.key.strategy_id

    @property
    def channel(self) -> str:
        return self._source.key.channel

    @property
    def timestamp(self) -> None:
        return None

    @property
    def gap(self) -> Gap:
        return Gap(self._source.gap)

    @property
    def reason(self) -> str:
        return self._source.reason

    @property
    def written(self) -> int:
        return self._source.written

    def __reduce__(self) -> tuple[type[BackfillFailed], tuple[ev.BackfillFailed]]:
        return BackfillFailed, (self._source,)

    def __repr__(self) -> str:
        return f"BackfillFailed(strategy_id={self.strategy_id!r}, written={self.written!r})"


_TYPED: Final[Mapping[type, type]] = {
    ev.BackfillOrder: BackfillOrder,
    ev.BackfillFailed: BackfillFailed,
    ev.PositionsSnapshot: PositionsSnapshot,
}
REST_EVENTS: Final = (ev.BackfillOrder, ev.BackfillFailed, ev.PositionsSnapshot)


def rest_message(event: ev.BackfillOrder | ev.BackfillFailed | ev.PositionsSnapshot
                 ) -> BackfillOrder | BackfillFailed | PositionsSnapshot:
    """The typed message of a REST event the stream delivers."""
    return _TYPED[type(event)](event)  # type: ignore[no-any-return]
