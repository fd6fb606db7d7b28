"""Tolerant reads of signal and position payloads: the schema C2 does not publish.

The C2 WebSocket docs publish no payload schema (see "Our choices" in the protocol
reference), so payloads are open JSON objects whose key case is unknown: the REST docs
use PascalCase, some OpenAPI copies camelCase, a synthetic feed may use snake_case.
Every lookup here therefore ignores case, underscores and hyphens, and every function is
total: any JSON value in any field gives a value or None, never an exception.

Core code (no rendering): the table renderer (:mod:`c2ws.render.fields`) and the
library's typed messages (:mod:`c2ws.messages`) read payloads through this module, with
the same key names, so both see the same fields.  Nothing here makes text safe for a
terminal; that is the renderers' job.
"""

from __future__ import annotations

import decimal
import functools
import math
import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Final

from c2ws import spec

# --- keys -----------------------------------------------------------------------------


def _normalise(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


# Payloads repeat the same few dozen keys and code values; bounded, so a feed of random
# keys only misses.  Long strings are never kept: 1024 of them could be a gigabyte.
_normalise_cached: Final = functools.lru_cache(maxsize=1024)(_normalise)


def normalise_key(key: str) -> str:
    """``OrderType``, ``orderType``, ``order_type`` and ``ORDER-TYPE`` all become ``ordertype``."""
    if len(key) > spec.PAYLOAD_MAX_CACHED_KEY_CHARS:
        return _normalise(key)
    return _normalise_cached(key)


# A payload's keys in order -> {normalised key: the first key spelled that way}.  One
# feed sends a handful of layouts, so a view costs a tuple and a lookup instead of a
# normalisation per key (about 0.4 us rather than 3 us for an OrderStatusDTO).
_layouts: dict[tuple[object, ...], dict[str, str]] = {}


def _index(layout: tuple[object, ...]) -> tuple[dict[str, str], bool]:
    """The layout's index, and whether it may be remembered: few keys, all short (a
    remembered layout keeps its keys alive)."""
    index: dict[str, str] = {}
    longest = 0
    for key in layout:
        # On a clash ("Side" and "side" both present) the first spelling wins.
        if isinstance(key, str):
            index.setdefault(normalise_key(key), key)
            longest = max(longest, len(key))
    keep = (
        len(layout) <= spec.PAYLOAD_LAYOUT_MAX_KEYS
        and longest <= spec.PAYLOAD_MAX_CACHED_KEY_CHARS
    )
    return index, keep


class PayloadView:
    """Case- and underscore-insensitive read access to one JSON object.

    Reads go to the object itself (the view copies nothing): do not change the object
    while a view of it is in use.
    """

    __slots__ = ("_keys", "_payload")

    def __init__(self, payload: Mapping[str, object]) -> None:
        layout = tuple(payload)
        keys = _layouts.get(layout)
        if keys is None:
            keys, keep = _index(layout)
            if keep:
                if len(_layouts) >= spec.PAYLOAD_LAYOUTS_KEPT:
                    _layouts.clear()  # a feed of ever new layouts: start over, stay bounded
                _layouts[layout] = keys
        self._payload = payload
        self._keys = keys

    def get(self, *names: str) -> object | None:
        """The first present, non-null value among ``names`` (already normalised)."""
        keys, payload = self._keys, self._payload
        for name in names:
            key = keys.get(name)
            if key is not None:
                value = payload[key]
                if value is not None:
                    return value
        return None

    def nested(self, name: str) -> PayloadView | None:
        """A view of the object at ``name`` (normalised); None when that is no object."""
        key = self._keys.get(name)
        value = self._payload[key] if key is not None else None
        return PayloadView(value) if isinstance(value, Mapping) else None


# --- where each field is looked for (normalised names, in order of preference) ---------

STRATEGY_ID_KEYS: Final = ("strategyid",)
STRATEGY_NAME_KEYS: Final = ("strategyname",)
SIGNAL_ID_KEYS: Final = ("signalid", "orderid")
SIDE_KEYS: Final = ("side",)
OPEN_CLOSE_KEYS: Final = ("openclose",)
ORDER_QUANTITY_KEYS: Final = ("orderquantity", "quantity", "qty")
POSITION_QUANTITY_KEYS: Final = ("quantity", "netquantity", "qty")
FILLED_QUANTITY_KEYS: Final = ("filledquantity",)
ORDER_TYPE_KEYS: Final = ("ordertype", "type")
LIMIT_KEYS: Final = ("limit", "limitprice")
STOP_KEYS: Final = ("stop", "stopprice")
TIF_KEYS: Final = ("tif", "timeinforce")
ORDER_STATUS_KEYS: Final = ("orderstatus", "status")
AVG_FILL_PRICE_KEYS: Final = ("avgfillprice",)
AVG_PRICE_KEYS: Final = ("avgpx", "avgprice", "averageprice", "avgfillprice")
CURRENCY_KEYS: Final = ("currency",)
SYMBOL_CONTAINERS: Final = ("c2symbol", "symbol", "exchangesymbol")
SYMBOL_INSIDE: Final = ("fullsymbol", "symbol")
# A positions message may carry a list of PositionDTOs (as the REST endpoint returns).
POSITION_LISTS: Final = ("positions", "results")


def symbol_candidates(view: PayloadView) -> Iterator[object]:
    """The values that may name the symbol, best first: ``C2Symbol.FullSymbol``, a plain
    ``symbol``, ``ExchangeSymbol.Symbol`` (an object's ``FullSymbol``, else its
    ``Symbol``).  Scalars only (a string, number or bool; never an object or a list)."""
    for container in SYMBOL_CONTAINERS:
        value = view.get(container)
        # type() first: an ABC isinstance costs more than the rest of a usual lookup.
        if type(value) is dict or (type(value) is not str and isinstance(value, Mapping)):
            value = PayloadView(value).get(*SYMBOL_INSIDE)
        if type(value) is str or (
            value is not None and not isinstance(value, (Mapping, list))
        ):
            yield value


# --- numbers --------------------------------------------------------------------------

NUMBER_TEXT: Final = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
# Longer digit strings are not ids or quantities, and int() refuses past 4300 digits.
MAX_NUMBER_TEXT: Final = 40

_DECIMAL_INT_CEILING: Final = 10**spec.DECIMAL_MAX_DIGITS_BEFORE_POINT
_DECIMAL_MAX_ADJUSTED: Final = spec.DECIMAL_MAX_DIGITS_BEFORE_POINT - 1
_DECIMAL_MIN_ADJUSTED: Final = -spec.DECIMAL_MAX_DIGITS_AFTER_POINT
_ZERO: Final = Decimal(0)


def decimal_of(value: object) -> Decimal | None:
    """A JSON number, or a string holding one, as an exact ``Decimal``; else None.

    A float reads as its shortest round-tripping text (``4312.25`` is ``Decimal("4312.25")``,
    never the binary ``4312.25000000000...``); an int or a numeric string exactly.  None:
    null, bools, NaN, infinities, text that is not a plain decimal number (``"1,000"``,
    ``"0x10"``, ``"NaN"``), text longer than ``MAX_NUMBER_TEXT``, and magnitudes no price or
    quantity has (``spec.DECIMAL_MAX_DIGITS_BEFORE_POINT``, ``..._AFTER_POINT``).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if -_DECIMAL_INT_CEILING < value < _DECIMAL_INT_CEILING:
            return Decimal(value)
        return None
    if isinstance(value, float):
        return _bounded(Decimal(repr(value))) if math.isfinite(value) else None
    if isinstance(value, str) and len(value) <= MAX_NUMBER_TEXT:
        text = value.strip()
        if NUMBER_TEXT.fullmatch(text) is None:
            return None
        try:
            return _bounded(Decimal(text))
        except decimal.InvalidOperation:  # an exponent beyond even Decimal's range
            return None
    return None


def _bounded(number: Decimal) -> Decimal | None:
    # adjusted() and the exponent need no arithmetic context: abs() or a comparison
    # could raise Overflow on an exponent like 1e999999999.
    if number.is_zero():
        exponent = number.as_tuple().exponent  # an int: the number is finite
        if isinstance(exponent, int) and exponent >= _DECIMAL_MIN_ADJUSTED:
            return number
        return _ZERO  # 0E-99999 is zero too, without an exponent to trip arithmetic
    if _DECIMAL_MIN_ADJUSTED <= number.adjusted() <= _DECIMAL_MAX_ADJUSTED:
        return number
    return None
