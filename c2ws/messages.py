"""The typed messages of the library: what ``for msg in c2ws.stream(...)`` yields.

Four classes, nothing else: :class:`Signal` (a ``strategy.signal`` message),
:class:`Position` (a ``strategy.positions`` message), :class:`Gap` (signals the server
could not replay) and :class:`SequenceReset` (a stream's numbering started over).  Each
has ``seq_id``, ``strategy_id``, ``channel``, ``timestamp`` (an aware UTC ``datetime``),
``raw`` (the line's JSON object as a dict) and ``line`` (the exact bytes ``c2ws subscribe
-o ndjson`` writes for it, without the newline).

**Tolerant.**  C2 publishes no payload schema.  The decoded fields follow the C2 REST v4
objects (``OrderStatusDTO``, ``PositionDTO``; see :mod:`c2ws.dto`), read through
:mod:`c2ws.payload`: PascalCase, camelCase and snake_case keys alike, missing and unknown
fields allowed.  Reading a field never raises, whatever the server sent: a field that is
absent, null or blank is None; a code field (side, order type...) holding something that
is no known code is the enum's ``UNKNOWN``; a number that is no plausible price or
quantity is None.  Quantities and prices are exact ``Decimal``\\ s (a JSON number reads as
its shortest text: ``4312.25``, never ``4312.2500000000001``); a price of zero means
"not set" (``spec.ZERO_PRICE_IS_UNSET``) and reads as None.  Text fields are the
server's strings as sent (stripped of surrounding blanks): make them safe before writing
them to a terminal.

**Lazy.**  Building a message stores the engine's event and nothing more.  ``line`` and
the header fields (``seq_id``, ``channel``) cost no decoding; the first payload field read
decodes the frame if the engine did not (it does not when only lines are written), and
each field is kept once read.

**Frozen.**  No attribute can be set or deleted (``dataclasses.FrozenInstanceError``).
Two messages are equal, and hash alike, when they are of the same class and their lines
are the same bytes: a message the server replays after a reconnect is equal to the one
first delivered.  ``raw`` is the same dict on every read: treat it as read-only.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import FrozenInstanceError
from decimal import Decimal
from enum import Enum
from typing import Any, Final, Generic, TypeAlias, TypeVar, overload

import orjson

from c2ws import dto, spec
from c2ws.events import GapReported, StreamMessage, SubscriptionKey
from c2ws.lines import gap_object, line_of
from c2ws.payload import (
    AVG_FILL_PRICE_KEYS,
    AVG_PRICE_KEYS,
    CURRENCY_KEYS,
    FILLED_QUANTITY_KEYS,
    LIMIT_KEYS,
    OPEN_CLOSE_KEYS,
    ORDER_QUANTITY_KEYS,
    ORDER_STATUS_KEYS,
    ORDER_TYPE_KEYS,
    POSITION_QUANTITY_KEYS,
    SIDE_KEYS,
    SIGNAL_ID_KEYS,
    STOP_KEYS,
    STRATEGY_ID_KEYS,
    STRATEGY_NAME_KEYS,
    TIF_KEYS,
    PayloadView,
    decimal_of,
    normalise_key,
    symbol_candidates,
)
from c2ws.protocol import JsonObject, parse_datetime, parse_int

__all__ = [
    "Gap",
    "Message",
    "OpenClose",
    "OrderStatus",
    "OrderType",
    "Position",
    "SequenceReset",
    "Side",
    "Signal",
    "TimeInForce",
    "message_of",
]

# --- codes ------------------------------------------------------------------------------


class Side(Enum):
    """Which way an order trades (REST ``Side``: "1" Buy, "2" Sell).  A short sale is a
    ``SELL`` that ``OPEN``\\ s, a cover a ``BUY`` that ``CLOSE``\\ s (see :class:`OpenClose`)."""

    BUY = "buy"
    SELL = "sell"
    UNKNOWN = "unknown"


class OpenClose(Enum):
    """Whether an order opens or closes a position (REST ``OpenClose``: "O", "C")."""

    OPEN = "open"
    CLOSE = "close"
    UNKNOWN = "unknown"


class OrderType(Enum):
    """How an order is priced (REST ``OrderType``: "1" Market, "2" Limit, "3" Stop)."""

    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    UNKNOWN = "unknown"


class TimeInForce(Enum):
    """How long an order works (REST ``TIF``: "0" Day, "1" GTC; ``IOC`` and ``FOK`` are
    recognised by name, as the table shows them)."""

    DAY = "day"
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"
    UNKNOWN = "unknown"


class OrderStatus(Enum):
    """Where an order stands (REST ``OrderStatus``: "A" PendingNew, "0" Working,
    "1" Partially filled, "2" Filled, "4" Canceled, "5" Replaced, "6" Pending Cancel,
    "8" Rejected, "C" Expired, "E" Pending Replace)."""

    PENDING_NEW = "pending_new"
    WORKING = "working"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REPLACED = "replaced"
    PENDING_CANCEL = "pending_cancel"
    REJECTED = "rejected"
    EXPIRED = "expired"
    PENDING_REPLACE = "pending_replace"
    UNKNOWN = "unknown"


_CodeEnum = TypeVar("_CodeEnum", bound=Enum)

_MAX_CODE_NUMBER: Final = spec.MAX_CODE_NUMBER

def _name_key(text: str) -> str:
    """``Partially filled``, ``PARTIALLY_FILLED`` and ``partiallyFilled`` read alike."""
    return normalise_key(text).replace(" ", "")


class _CodeReader(Generic[_CodeEnum]):
    """One coded field: the REST codes and the names that mean each member.

    Reads what the table renderer names (:class:`c2ws.render.fields.CodeTable`): a code
    as a string (any letter case, surrounding blanks ignored) or a number (``1`` and
    ``1.0`` are code "1"), or a member's name in any case or spacing."""

    def __init__(
        self, unknown: _CodeEnum, codes: Mapping[str, str], members: Iterable[_CodeEnum]
    ) -> None:
        names: dict[str, _CodeEnum] = {
            _name_key(member.value): member for member in members if member is not unknown
        }
        self._unknown: _CodeEnum = unknown
        self._names = names
        # Every REST code names one of the members (a KeyError here: dto and the enum
        # drifted apart; the tests import this module).
        self._codes: dict[str, _CodeEnum] = {
            code.upper(): names[_name_key(name)] for code, name in codes.items()
        }

    def read(self, value: object) -> _CodeEnum | None:
        """The member ``value`` names; None when absent (null, blank), ``UNKNOWN`` when it
        is there but names no member.  Total."""
        if type(value) is str:  # the usual case first
            return self._read_text(value)
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool):
            return self._unknown
        if isinstance(value, int):
            if -_MAX_CODE_NUMBER < value < _MAX_CODE_NUMBER:
                return self._codes.get(str(value), self._unknown)
            return self._unknown
        if not isinstance(value, str):
            return self._unknown
        return self._read_text(value)

    def _read_text(self, value: str) -> _CodeEnum | None:
        text = value.strip()
        if not text:
            return None
        member = self._codes.get(text.upper())
        if member is None:
            member = self._names.get(_name_key(text))
        return self._unknown if member is None else member


_SIDES: Final = _CodeReader(Side.UNKNOWN, dto.SIDE_NAMES, Side)
_OPEN_CLOSE: Final = _CodeReader(OpenClose.UNKNOWN, dto.OPEN_CLOSE_NAMES, OpenClose)
_ORDER_TYPES: Final = _CodeReader(OrderType.UNKNOWN, dto.ORDER_TYPE_NAMES, OrderType)
_TIME_IN_FORCE: Final = _CodeReader(TimeInForce.UNKNOWN, dto.TIF_NAMES, TimeInForce)
_ORDER_STATUSES: Final = _CodeReader(OrderStatus.UNKNOWN, dto.ORDER_STATUS_NAMES, OrderStatus)


# --- values -----------------------------------------------------------------------------


def _text(value: object) -> str | None:
    """A string as sent, stripped; None for anything else or a blank one."""
    if isinstance(value, str):
        text = value.strip()
        if text:
            return text
    return None


def _price(value: object) -> Decimal | None:
    number = decimal_of(value)
    if number is not None and spec.ZERO_PRICE_IS_UNSET and number.is_zero():
        return None
    return number


def _symbol(view: PayloadView) -> str | None:
    for value in symbol_candidates(view):
        text = _text(value)  # a symbol is text: a bare number names no instrument
        if text is not None:
            return text
    return None


def _decode_frame(data: bytes | str | None) -> JsonObject:
    """The frame's JSON object; {} when it holds none (built by hand, or not JSON)."""
    if data is None:
        return {}
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        # Valid JSON orjson will not hold (a number beyond a double's range, a lone
        # surrogate escape): the standard library reads it.
        try:
            obj = json.loads(data)
        except (ValueError, TypeError, RecursionError):
            return {}
    return obj if type(obj) is dict else {}


def _short(value: object) -> str:
    """A value for a repr: strings cut to a few dozen characters, control characters
    escaped (repr does that), so a repr stays one short, harmless line."""
    if isinstance(value, str) and len(value) > _REPR_TEXT_CHARS:
        value = value[:_REPR_TEXT_CHARS] + "…"
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, Decimal):
        return str(value)
    return repr(value)


_REPR_TEXT_CHARS: Final = 32


def _slot_setter(cls: type, name: str) -> Callable[[Any, Any], None]:
    """Writes the slot ``name`` of a ``cls`` instance past the frozen ``__setattr__``
    (as fast as a plain attribute write: building a message must stay cheap)."""
    setter: Callable[[Any, Any], None] = cls.__dict__[name].__set__
    return setter


# --- the common shape -------------------------------------------------------------------


class _Message:
    """What every message has; frozen; equal by class and line."""

    __slots__ = ()

    @property
    def seq_id(self) -> int | None:
        raise NotImplementedError

    @property
    def strategy_id(self) -> int | None:
        raise NotImplementedError

    @property
    def channel(self) -> str:
        raise NotImplementedError

    @property
    def timestamp(self) -> datetime.datetime | None:
        raise NotImplementedError

    @property
    def raw(self) -> JsonObject:
        raise NotImplementedError

    @property
    def line(self) -> bytes:
        raise NotImplementedError

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}: messages are frozen")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}: messages are frozen")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _Message)
        return self.line == other.line

    def __hash__(self) -> int:
        return hash(self.line)


_Value = TypeVar("_Value")

# What a memo holds for a field not read yet (None is a value a field may have).
_UNREAD: Final[Any] = object()


class _Decoded(Generic[_Value]):
    """A field of a stream message computed by ``read`` on first access, then kept in the
    message's memo under the field's name."""

    def __init__(self, read: Callable[[_StreamMessage], _Value], doc: str) -> None:
        self._read = read
        self._name = ""
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, item: None, owner: type) -> _Decoded[_Value]: ...

    @overload
    def __get__(self, item: _StreamMessage, owner: type) -> _Value: ...

    def __get__(self, item: _StreamMessage | None, owner: type) -> _Decoded[_Value] | _Value:
        if item is None:
            return self
        # No try/except for the memo: a raised KeyError or AttributeError costs more
        # than most fields do (~0.5 us on CPython 3.11).
        memo = item._memo
        if memo is None:
            memo = item._start_memo()
        value: _Value = memo.get(self._name, _UNREAD)
        if value is _UNREAD:
            value = memo[self._name] = self._read(item)
        return value


class _PayloadField(_Decoded[_Value]):
    """A field read as ``convert`` of the first of ``keys`` present in the payload (the
    hot case, inlined: each field of a message is typically read once)."""

    def __init__(
        self, keys: tuple[str, ...], convert: Callable[[object], _Value], doc: str
    ) -> None:
        super().__init__(lambda item: convert(item._payload().get(*keys)), doc)
        self._keys = keys
        self._convert = convert

    @overload
    def __get__(self, item: None, owner: type) -> _Decoded[_Value]: ...

    @overload
    def __get__(self, item: _StreamMessage, owner: type) -> _Value: ...

    def __get__(self, item: _StreamMessage | None, owner: type) -> _Decoded[_Value] | _Value:
        if item is None:
            return self
        memo = item._memo
        if memo is None:
            memo = item._start_memo()
        value: _Value = memo.get(self._name, _UNREAD)
        if value is _UNREAD:
            view = memo.get(_VIEW)
            if view is None:
                view = item._payload()
            value = memo[self._name] = self._convert(view.get(*self._keys))
        return value


def _positive_int(value: object) -> int | None:
    number = parse_int(value)
    return number if number is not None and number > 0 else None


class _StreamMessage(_Message):
    """A message of a subscribed stream, built around the engine's event."""

    # _memo: None until a decoded field is first read, then the fields read so far, the
    # frame's object (under _RAW) and the payload view (under _VIEW).
    __slots__ = ("_event", "_memo")
    _event: StreamMessage
    _memo: dict[str, Any] | None

    def __init__(self, event: StreamMessage) -> None:
        _set_event(self, event)
        _set_memo(self, None)

    def __reduce__(self) -> tuple[type[_StreamMessage], tuple[StreamMessage]]:
        return type(self), (self._event,)

    @property
    def seq_id(self) -> int | None:
        """The envelope's ``seq_id`` (None when it carried none)."""
        return self._event.message.seq_id

    @property
    def strategy_id(self) -> int | None:
        """The strategy: the subscription the engine placed the message in, else the
        positive ``StrategyId`` its payload names (None when it names none)."""
        key = self._event.key
        if key is not None:
            return key.strategy_id
        return self._payload_strategy_id

    _payload_strategy_id = _PayloadField(
        STRATEGY_ID_KEYS, _positive_int, "The payload's StrategyId."
    )

    @property
    def channel(self) -> str:
        """``strategy.signal`` or ``strategy.positions`` (the envelope's ``msg_type``)."""
        return self._event.message.msg_type

    timestamp = _Decoded(
        lambda item: parse_datetime(item._event.message.timestamp),
        "The envelope's ``timestamp`` as an aware UTC datetime (None when absent or no "
        "valid UTC ISO 8601 time; a fraction finer than a microsecond is cut).",
    )

    @property
    def line(self) -> bytes:
        """The NDJSON line the CLI writes (no newline): the frame as the server sent it,
        byte for byte, line breaks between its tokens turned into spaces."""
        return line_of(self._event.message)

    @property
    def raw(self) -> JsonObject:
        """The envelope as a dict, unknown keys included (decoded from the frame on first
        read when the engine did not decode it; {} if it cannot be)."""
        raw = self._event.message.raw
        if raw:
            return raw
        memo = self._memo
        if memo is None:
            memo = self._start_memo()
        decoded: JsonObject | None = memo.get(_RAW)
        if decoded is None:
            decoded = memo[_RAW] = _decode_frame(self._event.message.data)
        return decoded

    def _payload(self) -> PayloadView:
        """The payload, read case- and underscore-insensitively (decoded once)."""
        memo = self._memo
        if memo is None:
            memo = self._start_memo()
        view: PayloadView | None = memo.get(_VIEW)
        if view is None:
            payload: object = self._event.message.payload
            if not payload:  # not decoded by the engine, or empty: the frame says which
                payload = self.raw.get("payload")
            view = memo[_VIEW] = PayloadView(payload if isinstance(payload, dict) else {})
        return view

    def _start_memo(self) -> dict[str, Any]:
        memo: dict[str, Any] = {}
        _set_memo(self, memo)
        return memo


# Keys of a message's memo that no field has (a field's key is its attribute name).
_RAW: Final = " raw"
_VIEW: Final = " view"


_set_event: Final = _slot_setter(_StreamMessage, "_event")
_set_memo: Final = _slot_setter(_StreamMessage, "_memo")


def _decoded_symbol(item: _StreamMessage) -> str | None:
    return _symbol(item._payload())


_SYMBOL_DOC: Final = (
    "The instrument: ``C2Symbol.FullSymbol`` (``@ESZ6``, ``AAPL``, ``EURUSD``), else a "
    "plain ``symbol``, else ``ExchangeSymbol.Symbol``; None when none is a non-blank string."
)
_STRATEGY_NAME_DOC: Final = "The strategy's name (``StrategyName``), None when absent."


class _OrderFields(_StreamMessage):
    """The decoded fields of an order (REST ``OrderStatusDTO``): a :class:`Signal`'s, and
    those of the REST orders of :mod:`c2ws.rest` (read the same way)."""

    __slots__ = ()

    symbol = _Decoded(_decoded_symbol, _SYMBOL_DOC)
    strategy_name = _PayloadField(STRATEGY_NAME_KEYS, _text, _STRATEGY_NAME_DOC)
    signal_id = _PayloadField(
        SIGNAL_ID_KEYS, parse_int,
        "C2's id of the signal (``SignalId``, else ``OrderId``): an integer; the key to "
        "dedupe a REST backfill against.",
    )  # fmt: skip
    side = _PayloadField(SIDE_KEYS, _SIDES.read, "BUY or SELL (``Side``).")
    open_close = _PayloadField(
        OPEN_CLOSE_KEYS, _OPEN_CLOSE.read,
        "Whether the order opens or closes a position (``OpenClose``).",
    )  # fmt: skip
    order_type = _PayloadField(
        ORDER_TYPE_KEYS, _ORDER_TYPES.read, "MARKET, LIMIT or STOP (``OrderType``)."
    )
    time_in_force = _PayloadField(TIF_KEYS, _TIME_IN_FORCE.read, "DAY, GTC... (``TIF``).")
    status = _PayloadField(
        ORDER_STATUS_KEYS, _ORDER_STATUSES.read,
        "Where the order stands: WORKING, FILLED, CANCELED... (``OrderStatus``).",
    )  # fmt: skip
    quantity = _PayloadField(
        ORDER_QUANTITY_KEYS, decimal_of,
        "How much the order is for (``OrderQuantity``), an exact Decimal.",
    )  # fmt: skip
    filled_quantity = _PayloadField(
        FILLED_QUANTITY_KEYS, decimal_of,
        "How much of it has filled (``FilledQuantity``), an exact Decimal.",
    )  # fmt: skip
    limit_price = _PayloadField(
        LIMIT_KEYS, _price, "The limit price (``Limit``); None when not set."
    )
    stop_price = _PayloadField(STOP_KEYS, _price, "The stop price (``Stop``); None when not set.")
    avg_fill_price = _PayloadField(
        AVG_FILL_PRICE_KEYS, _price,
        "The average fill price (``AvgFillPrice``); None until something filled.",
    )  # fmt: skip



class Signal(_OrderFields):
    """A ``strategy.signal`` message: an order of a followed strategy (REST
    ``OrderStatusDTO``).  Every decoded field is None when the payload does not say."""

    __slots__ = ()

    def __repr__(self) -> str:
        return (
            f"Signal(strategy_id={self.strategy_id!r}, seq_id={self.seq_id!r}, "
            f"side={_short(self.side)}, quantity={_short(self.quantity)}, "
            f"symbol={_short(self.symbol)}, status={_short(self.status)})"
        )


class _PositionFields(_StreamMessage):
    """The decoded fields of a position (REST ``PositionDTO``): a :class:`Position`'s, and
    those of the REST positions of :mod:`c2ws.rest` (read the same way)."""

    __slots__ = ()

    symbol = _Decoded(_decoded_symbol, _SYMBOL_DOC)
    strategy_name = _PayloadField(STRATEGY_NAME_KEYS, _text, _STRATEGY_NAME_DOC)
    quantity = _PayloadField(
        POSITION_QUANTITY_KEYS, decimal_of,
        "The net position (``Quantity``), an exact Decimal: negative when short, zero when "
        "flat.",
    )  # fmt: skip
    avg_price = _PayloadField(
        AVG_PRICE_KEYS, _price, "The average entry price (``AvgPx``); None when flat (C2 sends 0)."
    )
    currency = _PayloadField(CURRENCY_KEYS, _text, "The instrument's currency (``Currency``).")


class Position(_PositionFields):
    """A ``strategy.positions`` message: a followed strategy's position in one instrument
    after a change (REST ``PositionDTO``).  A payload carrying a list of positions (as the
    REST endpoint returns them) decodes no fields here: read them from ``raw``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return (
            f"Position(strategy_id={self.strategy_id!r}, seq_id={self.seq_id!r}, "
            f"symbol={_short(self.symbol)}, quantity={_short(self.quantity)}, "
            f"avg_price={_short(self.avg_price)})"
        )


# --- gaps and resets --------------------------------------------------------------------


def _set_slots(item: _Message, **values: object) -> None:
    """Fill the slots of a rarely built message (past the frozen ``__setattr__``)."""
    for name, value in values.items():
        object.__setattr__(item, name, value)


class Gap(_Message):
    """Signals the server could not replay after a reconnect: every seq_id strictly
    between ``after_seq_id`` and ``before_seq_id`` is missing and must be fetched from the
    REST API (by time window: ``after_timestamp`` to ``before_timestamp``).  ``before_*``
    are None when no message has come after the hole yet."""

    __slots__ = (
        "_after_timestamp", "_before_timestamp", "_gap", "_line", "_raw", "_timestamp",
    )  # fmt: skip
    _gap: GapReported
    _line: bytes
    _raw: JsonObject
    _timestamp: datetime.datetime | None
    _after_timestamp: datetime.datetime | None
    _before_timestamp: datetime.datetime | None

    def __init__(self, gap: GapReported) -> None:
        raw = gap_object(gap)
        _set_slots(
            self,
            _gap=gap,
            _raw=raw,
            _line=orjson.dumps(raw),  # c2ws.lines.gap_line, from the object kept as raw
            _timestamp=parse_datetime(gap.message.timestamp),
            _after_timestamp=parse_datetime(gap.last_timestamp),
            _before_timestamp=parse_datetime(gap.next_timestamp),
        )

    def __reduce__(self) -> tuple[type[Gap], tuple[GapReported]]:
        return Gap, (self._gap,)

    @property
    def seq_id(self) -> int | None:
        """The ``gap`` envelope's own ``seq_id``: None as C2 sends it (a gap is no stream
        message; its ends are ``after_seq_id`` and ``before_seq_id``)."""
        return self._gap.message.seq_id

    @property
    def strategy_id(self) -> int:
        """The strategy whose signals are missing."""
        return self._gap.key.strategy_id

    @property
    def channel(self) -> str:
        """The stream with the hole: ``strategy.signal``."""
        return self._gap.key.channel

    @property
    def timestamp(self) -> datetime.datetime | None:
        """When the server sent the ``gap`` message (aware UTC; None when not valid)."""
        return self._timestamp

    @property
    def raw(self) -> JsonObject:
        """The object of :attr:`line`: the server's ``gap`` envelope plus ``missing``."""
        return self._raw

    @property
    def line(self) -> bytes:
        """The NDJSON line the CLI writes for the gap (no newline)."""
        return self._line

    @property
    def after_seq_id(self) -> int | None:
        """The last seq_id held before the hole (None: nothing was held)."""
        return self._gap.last_seq

    @property
    def after_timestamp(self) -> datetime.datetime | None:
        """The timestamp of the message at ``after_seq_id``."""
        return self._after_timestamp

    @property
    def before_seq_id(self) -> int | None:
        """The first seq_id that arrived after the hole (None: none yet)."""
        return self._gap.next_seq

    @property
    def before_timestamp(self) -> datetime.datetime | None:
        """The timestamp of the message at ``before_seq_id``."""
        return self._before_timestamp

    @property
    def text(self) -> str:
        """The server's explanation, as sent (make it safe before a terminal)."""
        return self._gap.text

    def __repr__(self) -> str:
        return (
            f"Gap(strategy_id={self.strategy_id!r}, channel={_short(self.channel)}, "
            f"after_seq_id={self.after_seq_id!r}, before_seq_id={self.before_seq_id!r})"
        )


class SequenceReset(_Message):
    """A stream's numbering started over (the server renumbered it): messages now count
    from ``first_seq_id`` again, below ``old_cursor``, the last seq_id of the old
    numbering.  The cursor follows the new numbering; nothing is known to be lost, but
    a consumer keyed on seq_id must not take the new numbers for old ones.

    Built by the engine from plain values and the line the CLI writes for it (a
    ``{"msg_type":"sequence.reset",...}`` object)."""

    __slots__ = (
        "_first_seq_id", "_key", "_line", "_old_cursor", "_old_timestamp", "_raw",
        "_timestamp",
    )  # fmt: skip
    _key: SubscriptionKey
    _old_cursor: int | None
    _first_seq_id: int
    _line: bytes
    _raw: JsonObject
    _timestamp: str | None
    _old_timestamp: str | None

    def __init__(
        self,
        key: SubscriptionKey,
        old_cursor: int | None,
        first_seq_id: int,
        line: bytes,
        timestamp: str | None = None,
        old_timestamp: str | None = None,
    ) -> None:
        _set_slots(
            self,
            _key=key,
            _old_cursor=old_cursor,
            _first_seq_id=first_seq_id,
            _line=line,
            _raw=_decode_frame(line),
            _timestamp=timestamp,
            _old_timestamp=old_timestamp,
        )

    def __reduce__(self) -> tuple[type[SequenceReset], tuple[object, ...]]:
        return SequenceReset, (
            self._key, self._old_cursor, self._first_seq_id, self._line, self._timestamp,
            self._old_timestamp,
        )  # fmt: skip

    @property
    def seq_id(self) -> int:
        """The first seq_id of the new numbering (as :attr:`first_seq_id`)."""
        return self._first_seq_id

    @property
    def strategy_id(self) -> int:
        """The strategy whose stream was renumbered."""
        return self._key.strategy_id

    @property
    def channel(self) -> str:
        """The renumbered stream's channel."""
        return self._key.channel

    @property
    def timestamp(self) -> datetime.datetime | None:
        """The timestamp of the first message of the new numbering (aware UTC)."""
        return parse_datetime(self._timestamp)

    @property
    def raw(self) -> JsonObject:
        """The object of :attr:`line` ({} if the line holds none)."""
        return self._raw

    @property
    def line(self) -> bytes:
        """The NDJSON line the CLI writes for the reset (no newline)."""
        return self._line

    @property
    def old_cursor(self) -> int | None:
        """The last seq_id of the old numbering (None: none had been delivered)."""
        return self._old_cursor

    @property
    def old_timestamp(self) -> datetime.datetime | None:
        """The timestamp of the message at ``old_cursor`` (aware UTC)."""
        return parse_datetime(self._old_timestamp)

    @property
    def first_seq_id(self) -> int:
        """The first seq_id of the new numbering."""
        return self._first_seq_id

    def __repr__(self) -> str:
        return (
            f"SequenceReset(strategy_id={self.strategy_id!r}, channel={_short(self.channel)}, "
            f"old_cursor={self.old_cursor!r}, first_seq_id={self.first_seq_id!r})"
        )


Message: TypeAlias = Signal | Position | Gap | SequenceReset
"""Everything a stream yields."""


_POSITIONS: Final = spec.CHANNEL_POSITIONS


def message_of(event: StreamMessage) -> Signal | Position:
    """The typed message of a stream message event: a :class:`Position` for
    ``strategy.positions``, else a :class:`Signal`.  Cheap: nothing is decoded."""
    if event.message.msg_type == _POSITIONS:
        return Position(event)
    return Signal(event)
