"""A signal payload's fields, looked up the way :class:`c2ws.payload.PayloadView` looks
them up (case, underscores and hyphens ignored; the first non-null of a field's names),
with the lookups planned once per payload *layout* (its keys, in order) instead of per
message: a feed sends a handful of layouts, so a message costs one dict lookup and a
``map`` over its keys.  Used by ``-o csv|tsv`` (c2ws/render/cells.py) and ``--fields``
(c2ws/render/records.py); tests/test_cells.py holds both to the records made through
PayloadView.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from c2ws import spec
from c2ws.payload import (
    LIMIT_KEYS,
    OPEN_CLOSE_KEYS,
    ORDER_QUANTITY_KEYS,
    ORDER_STATUS_KEYS,
    ORDER_TYPE_KEYS,
    SIDE_KEYS,
    SIGNAL_ID_KEYS,
    STOP_KEYS,
    STRATEGY_ID_KEYS,
    STRATEGY_NAME_KEYS,
    SYMBOL_CONTAINERS,
    SYMBOL_INSIDE,
    TIF_KEYS,
    PayloadView,
    normalise_key,
)

__all__ = ["PLAIN", "signal_lookups", "symbol_values"]

# The payload fields a signal row or record reads (fields.signal_fields and
# fields.signal_values), in the order signal_lookups returns them.
_LOOKUPS: Final = (
    STRATEGY_ID_KEYS, STRATEGY_NAME_KEYS, SIDE_KEYS, OPEN_CLOSE_KEYS, ORDER_QUANTITY_KEYS,
    ORDER_TYPE_KEYS, LIMIT_KEYS, STOP_KEYS, TIF_KEYS, ORDER_STATUS_KEYS, SIGNAL_ID_KEYS,
)
# A layout's plan: the first key each lookup may find (_ABSENT, a key no payload has,
# when none); the lookups with more keys present, which take the first non-null value of
# them: (position, keys); the symbol's containers present, in order of preference.
_Plan = tuple[tuple[object, ...], tuple[tuple[int, tuple[str, ...]], ...], tuple[str, ...]]
_ABSENT: Final = object()
_plans: dict[tuple[object, ...], _Plan] = {}
# A symbol object's layout -> its keys that may name the symbol (SYMBOL_INSIDE), in order.
_inside_plans: dict[tuple[object, ...], tuple[str, ...]] = {}
# Types whose equal values are the same value to every conversion (a str and null; not
# 1, 1.0 and True, which a dict takes for one key): what a memo may be keyed by.
PLAIN: Final = frozenset({str, type(None)})


def _index(layout: tuple[object, ...]) -> dict[str, str]:
    index: dict[str, str] = {}
    for key in layout:
        if isinstance(key, str):
            index.setdefault(normalise_key(key), key)  # the first spelling wins, as a view
    return index


def _kept(layout: tuple[object, ...]) -> bool:
    """Remembered on the terms PayloadView remembers a layout on: few, short keys."""
    return len(layout) <= spec.PAYLOAD_LAYOUT_MAX_KEYS and all(
        isinstance(key, str) and len(key) <= spec.PAYLOAD_MAX_CACHED_KEY_CHARS
        for key in layout)


def _plan(layout: tuple[object, ...]) -> _Plan:
    plan = _plans.get(layout)
    if plan is None:
        index = _index(layout)
        first: list[object] = []
        more: list[tuple[int, tuple[str, ...]]] = []
        for position, names in enumerate(_LOOKUPS):
            present = tuple(index[name] for name in names if name in index)
            first.append(present[0] if present else _ABSENT)
            if len(present) > 1:
                more.append((position, present))
        containers = tuple(index[name] for name in SYMBOL_CONTAINERS if name in index)
        plan = (tuple(first), tuple(more), containers)
        if _kept(layout):
            if len(_plans) >= spec.PAYLOAD_LAYOUTS_KEPT:
                _plans.clear()  # a feed of ever new layouts: start over, stay bounded
            _plans[layout] = plan
    return plan


def signal_lookups(payload: Mapping[str, object]) -> tuple[list[object], tuple[str, ...]]:
    """The values of a signal payload's fields (strategy id, strategy name, side,
    open/close, quantity, order type, limit, stop, time in force, status, signal id:
    each what ``PayloadView(payload).get(*NAMES)`` gives), and the keys of its symbol's
    containers (for :func:`symbol_values`)."""
    firsts, more, containers = _plan(tuple(payload))
    values = list(map(payload.get, firsts))  # type: ignore[arg-type]  # _ABSENT: None
    for position, keys in more:
        if values[position] is None:
            values[position] = next(
                (value for value in map(payload.get, keys) if value is not None), None)
    return values, containers


def _inside(symbol: dict[str, object]) -> object:
    """``PayloadView(symbol).get(*SYMBOL_INSIDE)``, planned per layout."""
    layout = tuple(symbol)
    keys = _inside_plans.get(layout)
    if keys is None:
        index = _index(layout)
        keys = tuple(index[name] for name in SYMBOL_INSIDE if name in index)
        if _kept(layout):
            if len(_inside_plans) >= spec.PAYLOAD_LAYOUTS_KEPT:
                _inside_plans.clear()
            _inside_plans[layout] = keys
    for key in keys:
        value = symbol[key]
        if value is not None:
            return value
    return None


def symbol_values(payload: Mapping[str, object], containers: tuple[str, ...]) -> list[object]:
    """What :func:`c2ws.payload.symbol_candidates` yields, as a list."""
    found: list[object] = []
    for container in containers:
        value = payload[container]
        if type(value) is dict:
            value = _inside(value)
        elif type(value) is not str and isinstance(value, Mapping):
            value = PayloadView(value).get(*SYMBOL_INSIDE)
        if type(value) is str or (value is not None and not isinstance(value, (Mapping, list))):
            found.append(value)
    return found
