"""Display values pulled out of signal and position payloads.

The C2 WebSocket docs publish no payload schema (see "Our choices" in the protocol
reference), so payloads are open JSON objects whose key case is unknown: the REST
docs use PascalCase, some OpenAPI copies camelCase, a synthetic feed may use
snake_case.  Every lookup here therefore ignores case and underscores, and every
function is total: any JSON value in any field yields a string, never an exception.

Everything that came from the server is hostile input.  Each string returned by this
module has had terminal control sequences removed and is capped in length; callers
must still put it into ``rich.text.Text`` (never into markup) when printing.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from c2ws import protocol

MAX_CELL_CHARS: Final = 64
ELLIPSIS: Final = "…"

# Control sequences are removed whole: what is left of one after stripping just the
# ESC byte ("[2J") would still be noise in a cell.  OSC/DCS strings run until their
# terminator or, if it never comes (a truncated value), to the end of the text.
_CONTROL_SEQUENCE: Final = re.compile(
    r"""
      [\x1b\x9b]\[? [0-?]* [ -/]* [@-~]          # CSI (7-bit ESC[ or 8-bit 0x9b) and 2-byte ESC x
    | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])    # OSC, DCS, SOS, PM, APC ...
      .*? (?:\x07|\x1b\\|\x9c|$)                 # ... up to BEL, ST or the end
    """,
    re.VERBOSE | re.DOTALL,
)
# Layout-breaking whitespace becomes a space; other C0, DEL and C1 controls, and the
# bidi overrides that can make text read differently from what it is ("Trojan
# source"), become U+FFFD so tampering stays visible.
_LINE_BREAKING: Final = re.compile(r"[\t\n\v\f\r\x85\u2028\u2029]")
_UNPRINTABLE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# Bounds the regex work on a huge value before it is capped to a cell.
_PRE_CAP_FACTOR: Final = 8

_DECIMAL_PLACES: Final = 8
_NUMBER_TEXT: Final = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def sanitize(text: str, limit: int = MAX_CELL_CHARS) -> str:
    """``text`` safe to show on a terminal in one cell: no control sequences, capped."""
    if len(text) > limit * _PRE_CAP_FACTOR:
        text = text[: limit * _PRE_CAP_FACTOR]
    text = _CONTROL_SEQUENCE.sub("", text)
    text = _LINE_BREAKING.sub(" ", text)
    text = _UNPRINTABLE.sub("\ufffd", text)
    return cap(text.strip(), limit)


def cap(text: str, limit: int = MAX_CELL_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + ELLIPSIS


def format_number(value: int | float) -> str:
    """A number as a person writes it: ``4312.25``, never ``4312.2500000001`` or ``1e-05``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return cap(str(value)) if value.bit_length() < 200 else cap(f"{value:.6e}")
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e15:
        return cap(f"{value:.6g}")
    # Rounding to a fixed number of places drops binary noise (0.1 + 0.2) yet keeps
    # forex and crypto precision; the trailing zeros it pads with are stripped.
    text = f"{value:.{_DECIMAL_PLACES}f}".rstrip("0").rstrip(".")
    if text in ("0", "-0"):  # smaller than the places kept: keep a few significant digits
        return f"{value:.3g}"
    return text


def parse_number(value: object) -> int | float | None:
    """A JSON number, or a string holding one (REST payloads quote some); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str) and len(value) <= 40:
        stripped = value.strip()
        if _NUMBER_TEXT.fullmatch(stripped):
            parsed = float(stripped)
            if stripped.lstrip("+-").isdigit():
                return int(stripped)
            return parsed if math.isfinite(parsed) else None
    return None


def display_text(value: object) -> str:
    """Any JSON value as one safe cell; missing (None) is the empty string."""
    if value is None:
        return ""
    if isinstance(value, str):
        return sanitize(value)
    if isinstance(value, (bool, int, float)):
        return format_number(value)
    if isinstance(value, Mapping):
        return "{…}"
    if isinstance(value, (list, tuple)):
        return "[…]"
    return ""


def display_number(value: object) -> str:
    """A numeric field: numbers and numeric strings formatted, anything else shown as text."""
    number = parse_number(value)
    return format_number(number) if number is not None else display_text(value)


def display_price(value: object) -> str:
    """Like :func:`display_number`, but a zero price means "not set" (REST sends 0)."""
    number = parse_number(value)
    if number == 0:
        return ""
    return format_number(number) if number is not None else display_text(value)


def normalise_key(key: str) -> str:
    """``OrderType``, ``orderType``, ``order_type`` and ``ORDER-TYPE`` all become ``ordertype``."""
    return key.lower().replace("_", "").replace("-", "")


class PayloadView:
    """Case- and underscore-insensitive read access to one JSON object."""

    __slots__ = ("_fields",)

    def __init__(self, payload: Mapping[str, object]) -> None:
        fields: dict[str, object] = {}
        for key, value in payload.items():
            # On a clash ("Side" and "side" both present) the first spelling wins.
            if isinstance(key, str):
                fields.setdefault(normalise_key(key), value)
        self._fields = fields

    def get(self, *names: str) -> object | None:
        """The first present, non-null value among ``names`` (already normalised)."""
        for name in names:
            value = self._fields.get(name)
            if value is not None:
                return value
        return None

    def nested(self, name: str) -> PayloadView | None:
        value = self._fields.get(name)
        return PayloadView(value) if isinstance(value, Mapping) else None


# --- codes -> names (the C2 REST v4 OrderStatusDTO codes; see the protocol reference) ----


@dataclass(frozen=True, slots=True)
class CodeTable:
    """One coded field: its numeric/letter codes and its names in canonical spelling."""

    codes: Mapping[str, str]
    names: Mapping[str, str]

    @classmethod
    def build(cls, codes: Mapping[str, str], extra_names: Iterable[str] = ()) -> CodeTable:
        names = {normalise_key(name).replace(" ", ""): name for name in codes.values()}
        names.update({normalise_key(name).replace(" ", ""): name for name in extra_names})
        return cls(codes=codes, names=names)

    def name_of(self, value: object) -> str:
        if value is None:
            return ""
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return self.codes.get(str(value), format_number(value))
        if not isinstance(value, str):
            return display_text(value)
        text = value.strip()
        name = self.codes.get(text) or self.codes.get(text.upper())
        if name is None:
            name = self.names.get(normalise_key(text).replace(" ", ""))
        if name is not None:
            return name
        return _title(sanitize(text))


def _title(text: str) -> str:
    """``BUY`` -> ``Buy``, ``stop_limit`` -> ``Stop Limit``; short upper-case tokens and
    mixed-case names (``MOC``, ``SellShort``) are left as the server spelled them."""
    spaced = text.replace("_", " ")
    if spaced.islower() or (spaced.isupper() and len(spaced) > 3):
        return spaced.title()
    return spaced


ORDER_TYPES: Final = CodeTable.build({"1": "Market", "2": "Limit", "3": "Stop"})
SIDES: Final = CodeTable.build({"1": "Buy", "2": "Sell"})
TIME_IN_FORCE: Final = CodeTable.build({"0": "Day", "1": "GTC"}, extra_names=("IOC", "FOK"))
OPEN_CLOSE: Final = CodeTable.build({"O": "Open", "C": "Close"})
ORDER_STATUSES: Final = CodeTable.build(
    {
        "A": "PendingNew",
        "0": "Working",
        "1": "Partially filled",
        "2": "Filled",
        "4": "Canceled",
        "5": "Replaced",
        "6": "Pending Cancel",
        "8": "Rejected",
        "C": "Expired",
        "E": "Pending Replace",
    },
    extra_names=("Cancelled",),
)


# --- the fields a row shows ---------------------------------------------------------

_STRATEGY_ID: Final = ("strategyid",)
_STRATEGY_NAME: Final = ("strategyname",)
_SIGNAL_ID: Final = ("signalid", "orderid")
_SIDE: Final = ("side",)
_OPEN_CLOSE: Final = ("openclose",)
_ORDER_QUANTITY: Final = ("orderquantity", "quantity", "qty")
_POSITION_QUANTITY: Final = ("quantity", "netquantity", "qty")
_ORDER_TYPE: Final = ("ordertype", "type")
_LIMIT: Final = ("limit", "limitprice")
_STOP: Final = ("stop", "stopprice")
_TIF: Final = ("tif", "timeinforce")
_ORDER_STATUS: Final = ("orderstatus", "status")
_AVG_PRICE: Final = ("avgpx", "avgprice", "averageprice", "avgfillprice")
_CURRENCY: Final = ("currency",)
_SYMBOL_CONTAINERS: Final = ("c2symbol", "symbol", "exchangesymbol")
_SYMBOL_INSIDE: Final = ("fullsymbol", "symbol")
# A positions message may carry a list of PositionDTOs (as the REST endpoint returns).
_POSITION_LISTS: Final = ("positions", "results")


def symbol_of(view: PayloadView) -> str:
    """``C2Symbol.FullSymbol``, else a plain ``symbol``, else ``ExchangeSymbol.Symbol``."""
    for container in _SYMBOL_CONTAINERS:
        value = view.get(container)
        if isinstance(value, Mapping):
            value = PayloadView(value).get(*_SYMBOL_INSIDE)
        if value is not None and not isinstance(value, (Mapping, list)):
            text = display_text(value)
            if text:
                return text
    return ""


def strategy_id_of(view: PayloadView) -> int | None:
    value = protocol.parse_int(view.get(*_STRATEGY_ID))
    return value if value is not None and value > 0 else None


def clock_time(timestamp: str | None, arrival: float) -> str:
    """HH:MM:SS UTC of the envelope timestamp, else of the local arrival time."""
    epoch = protocol.parse_timestamp(timestamp) if timestamp is not None else None
    return time.strftime("%H:%M:%S", time.gmtime(arrival if epoch is None else epoch))


@dataclass(frozen=True, slots=True)
class SignalFields:
    strategy_id: int | None
    strategy_name: str
    side: str
    open_close: str
    quantity: str
    symbol: str
    order_type: str
    price: str
    tif: str
    status: str
    signal_id: str


def signal_fields(payload: Mapping[str, object]) -> SignalFields:
    view = PayloadView(payload)
    limit = display_price(view.get(*_LIMIT))
    stop = display_price(view.get(*_STOP))
    # One column for both: a stop-limit order shows "limit/stop".
    price = f"{limit}/{stop}" if limit and stop else limit or stop
    return SignalFields(
        strategy_id=strategy_id_of(view),
        strategy_name=display_text(view.get(*_STRATEGY_NAME)),
        side=SIDES.name_of(view.get(*_SIDE)),
        open_close=OPEN_CLOSE.name_of(view.get(*_OPEN_CLOSE)),
        quantity=display_number(view.get(*_ORDER_QUANTITY)),
        symbol=symbol_of(view),
        order_type=ORDER_TYPES.name_of(view.get(*_ORDER_TYPE)),
        price=price,
        tif=TIME_IN_FORCE.name_of(view.get(*_TIF)),
        status=ORDER_STATUSES.name_of(view.get(*_ORDER_STATUS)),
        signal_id=display_text(view.get(*_SIGNAL_ID)),
    )


@dataclass(frozen=True, slots=True)
class PositionFields:
    strategy_id: int | None
    strategy_name: str
    symbol: str
    quantity: int | float | None  # None: the payload named no (numeric) quantity
    quantity_text: str
    avg_price: str
    currency: str


def position_fields(payload: Mapping[str, object]) -> list[PositionFields]:
    """Every position a ``strategy.positions`` payload carries: itself, or its list items.

    List items inherit the strategy of the enclosing object when they name none.
    """
    view = PayloadView(payload)
    items: list[Mapping[str, object]] = []
    for name in _POSITION_LISTS:
        value = view.get(name)
        if isinstance(value, list):
            items.extend(item for item in value if isinstance(item, Mapping))
    if not items:
        return [_position(view, None, "")]
    parent_id = strategy_id_of(view)
    parent_name = display_text(view.get(*_STRATEGY_NAME))
    return [_position(PayloadView(item), parent_id, parent_name) for item in items]


def _position(view: PayloadView, parent_id: int | None, parent_name: str) -> PositionFields:
    raw_quantity = view.get(*_POSITION_QUANTITY)
    strategy_id = strategy_id_of(view)
    return PositionFields(
        strategy_id=strategy_id if strategy_id is not None else parent_id,
        strategy_name=display_text(view.get(*_STRATEGY_NAME)) or parent_name,
        symbol=symbol_of(view),
        quantity=parse_number(raw_quantity),
        quantity_text=display_number(raw_quantity),
        avg_price=display_price(view.get(*_AVG_PRICE)),
        currency=display_text(view.get(*_CURRENCY)),
    )
