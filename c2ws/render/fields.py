"""Display values pulled out of signal and position payloads.

The C2 WebSocket docs publish no payload schema (see "Our choices" in the protocol
reference), so payloads are open JSON objects whose key case is unknown.  Fields are
looked up through :mod:`c2ws.payload` (case and underscores ignored; the same names the
library's typed messages read), and every function here is total: any JSON value in any
field yields a string, never an exception.

Everything that came from the server is hostile input.  Each string returned by this
module has had terminal control sequences removed and is capped in length; callers
must still put it into ``rich.text.Text`` (never into markup) when printing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from c2ws import dto, protocol, spec
from c2ws.payload import (
    AVG_PRICE_KEYS,
    CURRENCY_KEYS,
    LIMIT_KEYS,
    MAX_NUMBER_TEXT,
    NUMBER_TEXT,
    OPEN_CLOSE_KEYS,
    ORDER_QUANTITY_KEYS,
    ORDER_STATUS_KEYS,
    ORDER_TYPE_KEYS,
    POSITION_LISTS,
    POSITION_QUANTITY_KEYS,
    SIDE_KEYS,
    SIGNAL_ID_KEYS,
    STOP_KEYS,
    STRATEGY_ID_KEYS,
    STRATEGY_NAME_KEYS,
    TIF_KEYS,
    PayloadView,
    normalise_key,
    symbol_candidates,
)
from c2ws.render.safe import ELLIPSIS, cap, terminal_safe  # noqa: F401 - ELLIPSIS re-exported

MAX_CELL_CHARS: Final = 64
# What a number too long for any cell shows instead (as spreadsheets do).
TOO_LONG_NUMBER: Final = "########"

_DECIMAL_PLACES: Final = 8


def sanitize(text: str, limit: int = MAX_CELL_CHARS) -> str:
    """``text`` safe to show on a terminal in one cell: no control sequences, capped."""
    return terminal_safe(text, limit)


def format_number(value: int | float) -> str:
    """A number as a person writes it: ``4312.25``, not ``4312.2500000001`` nor ``4.31225e3``.

    Only magnitudes no price or quantity has (>= 1e15, < 1e-8) fall back to exponents.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        # str() of an int is quadratic and refuses past 4300 digits.  A number is never
        # shown cut short (that would be a different number): too long is all hashes.
        text = str(value) if value.bit_length() < 1000 else TOO_LONG_NUMBER
        return text if len(text) <= MAX_CELL_CHARS else TOO_LONG_NUMBER
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e15:
        return cap(f"{value:.6g}", MAX_CELL_CHARS)
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
    if isinstance(value, str) and len(value) <= MAX_NUMBER_TEXT:
        stripped = value.strip()
        if NUMBER_TEXT.fullmatch(stripped):
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
    if number == 0 and spec.ZERO_PRICE_IS_UNSET:
        return ""
    return format_number(number) if number is not None else display_text(value)


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


ORDER_TYPES: Final = CodeTable.build(dto.ORDER_TYPE_NAMES)
SIDES: Final = CodeTable.build(dto.SIDE_NAMES)
TIME_IN_FORCE: Final = CodeTable.build(dto.TIF_NAMES, extra_names=("IOC", "FOK"))
OPEN_CLOSE: Final = CodeTable.build(dto.OPEN_CLOSE_NAMES)
ORDER_STATUSES: Final = CodeTable.build(dto.ORDER_STATUS_NAMES)


# --- the fields a row shows ---------------------------------------------------------

def symbol_of(view: PayloadView) -> str:
    """``C2Symbol.FullSymbol``, else a plain ``symbol``, else ``ExchangeSymbol.Symbol``."""
    for value in symbol_candidates(view):
        text = display_text(value)
        if text:
            return text
    return ""


def strategy_id_of(view: PayloadView) -> int | None:
    value = protocol.parse_int(view.get(*STRATEGY_ID_KEYS))
    return value if value is not None and value > 0 else None


def epoch_of(timestamp: str | None, arrival: float) -> float:
    """When a message happened: its envelope timestamp, else its arrival time."""
    epoch = protocol.parse_timestamp(timestamp) if timestamp is not None else None
    return arrival if epoch is None else epoch


def clock_time(timestamp: str | None, arrival: float) -> str:
    """HH:MM:SS UTC of the envelope timestamp, else of the local arrival time."""
    return time.strftime("%H:%M:%S", time.gmtime(epoch_of(timestamp, arrival)))


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
    limit = display_price(view.get(*LIMIT_KEYS))
    stop = display_price(view.get(*STOP_KEYS))
    # One column for both: a stop-limit order shows "limit/stop".
    price = f"{limit}/{stop}" if limit and stop else limit or stop
    return SignalFields(
        strategy_id=strategy_id_of(view),
        strategy_name=display_text(view.get(*STRATEGY_NAME_KEYS)),
        side=SIDES.name_of(view.get(*SIDE_KEYS)),
        open_close=OPEN_CLOSE.name_of(view.get(*OPEN_CLOSE_KEYS)),
        quantity=display_number(view.get(*ORDER_QUANTITY_KEYS)),
        symbol=symbol_of(view),
        order_type=ORDER_TYPES.name_of(view.get(*ORDER_TYPE_KEYS)),
        price=price,
        tif=TIME_IN_FORCE.name_of(view.get(*TIF_KEYS)),
        status=ORDER_STATUSES.name_of(view.get(*ORDER_STATUS_KEYS)),
        signal_id=display_text(view.get(*SIGNAL_ID_KEYS)),
    )


# Statuses that mean the order (partly) executed: what ``--bell-fills`` rings for.
FILL_STATUSES: Final = frozenset(
    {dto.ORDER_STATUS_NAMES[dto.STATUS_FILLED], dto.ORDER_STATUS_NAMES["1"]}
)


def is_fill(payload: Mapping[str, object]) -> bool:
    """The signal reports an execution (status Filled or Partially filled)."""
    status = ORDER_STATUSES.name_of(PayloadView(payload).get(*ORDER_STATUS_KEYS))
    return status in FILL_STATUSES


def price_value(value: object) -> int | float | None:
    """A price as a number: None when absent, not a number, or zero ("not set")."""
    number = parse_number(value)
    return None if number == 0 and spec.ZERO_PRICE_IS_UNSET else number



@dataclass(frozen=True, slots=True)
class SignalValues:
    """A signal's numbers as numbers, for machine-readable output (None: absent or not
    a number; a zero price is "not set", as REST sends it)."""

    quantity: int | float | None
    limit: int | float | None
    stop: int | float | None
    signal_id: int | str | None  # an integer when it is one, else its safe text


def signal_values(payload: Mapping[str, object]) -> SignalValues:
    view = PayloadView(payload)
    raw_id = view.get(*SIGNAL_ID_KEYS)
    signal_id = protocol.parse_int(raw_id)
    return SignalValues(
        quantity=parse_number(view.get(*ORDER_QUANTITY_KEYS)),
        limit=price_value(view.get(*LIMIT_KEYS)),
        stop=price_value(view.get(*STOP_KEYS)),
        signal_id=signal_id if signal_id is not None else (display_text(raw_id) or None),
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
    avg_price_value: int | float | None = None  # avg_price as a number, for scripts


def position_fields(payload: Mapping[str, object]) -> list[PositionFields]:
    """Every position a ``strategy.positions`` payload carries: itself, or its list items.

    List items inherit the strategy of the enclosing object when they name none.  A
    position naming neither a symbol nor a quantity has nothing to show and is left out.
    """
    view = PayloadView(payload)
    lists = [value for name in POSITION_LISTS if isinstance(value := view.get(name), list)]
    if lists:
        parent_id = strategy_id_of(view)
        parent_name = display_text(view.get(*STRATEGY_NAME_KEYS))
        found = [
            _position(PayloadView(item), parent_id, parent_name)
            for items in lists
            for item in items
            if isinstance(item, Mapping)
        ]
    else:
        found = [_position(view, None, "")]
    return [position for position in found if position.symbol or position.quantity_text]


def _position(view: PayloadView, parent_id: int | None, parent_name: str) -> PositionFields:
    raw_quantity = view.get(*POSITION_QUANTITY_KEYS)
    strategy_id = strategy_id_of(view)
    return PositionFields(
        strategy_id=strategy_id if strategy_id is not None else parent_id,
        strategy_name=display_text(view.get(*STRATEGY_NAME_KEYS)) or parent_name,
        symbol=symbol_of(view),
        quantity=parse_number(raw_quantity),
        quantity_text=display_number(raw_quantity),
        avg_price=display_price(view.get(*AVG_PRICE_KEYS)),
        currency=display_text(view.get(*CURRENCY_KEYS)),
        avg_price_value=price_value(view.get(*AVG_PRICE_KEYS)),
    )
