"""Stream messages as flat records of named fields: the rows of ``-o csv|tsv`` and the
objects of ``--fields``.

A field is either a *decoded* field (the table's columns, C2 codes named: ``side`` is
``Buy``, not ``"1"``), or a *raw* one: a top-level envelope key (``msg_type``,
``seq_id``...) or a dotted path into the envelope (``payload.C2Symbol.FullSymbol``).
A ``strategy.positions`` message carrying a list of positions is one record per position
when decoded fields are asked for.  Every function is total: any payload gives records,
missing values are None.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Final

import orjson

from c2ws import protocol, spec
from c2ws.events import SubscriptionKey
from c2ws.protocol import Envelope
from c2ws.render import fields
from c2ws.render.planned import PLAIN, signal_lookups, symbol_values
from c2ws.render.safe import terminal_safe

Value = str | int | float | bool | None | list[object] | dict[str, object]
Record = dict[str, Value]

SIGNAL_COLUMNS: Final = (
    "time", "strategy_id", "strategy", "seq", "side", "open_close", "qty", "symbol", "type",
    "limit", "stop", "tif", "status", "signal_id",
)
POSITION_COLUMNS: Final = (
    "time", "strategy_id", "strategy", "seq", "symbol", "qty", "avg_price", "currency",
)
# Both channels in one table: ``kind`` tells a signal row from a position row.
COMBINED_COLUMNS: Final = (
    "time", "kind", "strategy_id", "strategy", "seq", "side", "open_close", "qty", "symbol",
    "type", "limit", "stop", "tif", "status", "signal_id", "avg_price", "currency",
)
DECODED_FIELDS: Final = frozenset(COMBINED_COLUMNS)
ENVELOPE_KEYS: Final = ("msg_type", "id", "seq_id", "timestamp", "request_id", "v", "payload")
KIND_SIGNAL: Final = "signal"
KIND_POSITION: Final = "position"
# Raw strings in text output: control sequences removed, capped generously.
_RAW_TEXT_LIMIT: Final = 4096
TIME_LIMIT: Final = 40


def columns_for(channels: Iterable[str]) -> tuple[str, ...]:
    """The default columns of a table of these channels."""
    wanted = set(channels)
    if wanted == {spec.CHANNEL_SIGNAL}:
        return SIGNAL_COLUMNS
    if wanted == {spec.CHANNEL_POSITIONS}:
        return POSITION_COLUMNS
    return COMBINED_COLUMNS


def check_field_names(names: Sequence[str]) -> list[str]:
    """The names, if each is a decoded field, an envelope key or a dotted path; else
    ValueError naming the first bad one."""
    checked: list[str] = []
    for name in names:
        if not (name in DECODED_FIELDS or name in ENVELOPE_KEYS or _is_path(name)):
            raise ValueError(
                f"unknown field {name!r}: use {', '.join(COMBINED_COLUMNS)}, an envelope key "
                f"({', '.join(ENVELOPE_KEYS)}) or a path such as payload.C2Symbol.FullSymbol"
            )
        if name not in checked:
            checked.append(name)
    if not checked:
        raise ValueError("no field names given")
    return checked


def _is_path(name: str) -> bool:
    parts = name.split(".")
    return len(parts) > 1 and parts[0] in ENVELOPE_KEYS and all(parts)


def _time(message: Envelope) -> str | None:
    return terminal_safe(message.timestamp, TIME_LIMIT) if message.timestamp else None


def _text(value: str) -> str | None:
    return value or None


def signal_record(message: Envelope, key: SubscriptionKey | None) -> Record:
    decoded = fields.signal_fields(message.payload)
    values = fields.signal_values(message.payload)
    strategy_id = decoded.strategy_id if decoded.strategy_id is not None else (
        key.strategy_id if key is not None else None
    )
    return {
        "time": _time(message),
        "kind": KIND_SIGNAL,
        "strategy_id": strategy_id,
        "strategy": _text(decoded.strategy_name),
        "seq": message.seq_id,
        "side": _text(decoded.side),
        "open_close": _text(decoded.open_close),
        "qty": values.quantity,
        "symbol": _text(decoded.symbol),
        "type": _text(decoded.order_type),
        "limit": values.limit,
        "stop": values.stop,
        "tif": _text(decoded.tif),
        "status": _text(decoded.status),
        "signal_id": values.signal_id,
        "avg_price": None,
        "currency": None,
    }


# The six code and name values of a signal record, by their raw values when all are
# strings or null (see planned.PLAIN); and the time values of the timestamps seen.
_codes: dict[tuple[object, ...], tuple[str | None, ...]] = {}
_times: dict[str, str | None] = {}


def _code_values(values: tuple[object, ...]) -> tuple[str | None, ...]:
    name, side, open_close, order_type, tif, status = values
    return (_text(fields.display_text(name)), _text(fields.SIDES.name_of(side)),
            _text(fields.OPEN_CLOSE.name_of(open_close)),
            _text(fields.ORDER_TYPES.name_of(order_type)),
            _text(fields.TIME_IN_FORCE.name_of(tif)),
            _text(fields.ORDER_STATUSES.name_of(status)))


def planned_signal_record(message: Envelope, key: SubscriptionKey | None) -> Record:
    """:func:`signal_record`, its payload lookups planned per layout and the values that
    repeat (codes, names, times) remembered (tests/test_cells.py holds the two equal)."""
    payload = message.payload
    values, containers = signal_lookups(payload)
    (raw_strategy_id, name, side, open_close, quantity, order_type, limit, stop, tif, status,
     raw_signal_id) = values
    codes = (name, side, open_close, order_type, tif, status)
    plain = PLAIN
    if (type(name) in plain and type(side) in plain and type(open_close) in plain
            and type(order_type) in plain and type(tif) in plain and type(status) in plain):
        code_values = _codes.get(codes)
        if code_values is None:
            if len(_codes) >= spec.CELL_MEMO_ENTRIES:
                _codes.clear()
            code_values = _codes[codes] = _code_values(codes)
    else:
        code_values = _code_values(codes)
    strategy_id = protocol.parse_int(raw_strategy_id)
    if strategy_id is None or strategy_id <= 0:
        strategy_id = key.strategy_id if key is not None else None
    symbol = ""
    for value in symbol_values(payload, containers) if containers else ():
        symbol = fields.display_text(value)
        if symbol:
            break
    signal_id = protocol.parse_int(raw_signal_id)
    timestamp = message.timestamp
    if not timestamp:
        time = None
    elif timestamp in _times:
        time = _times[timestamp]
    else:
        time = _time(message)
        if len(timestamp) <= spec.CELL_MEMO_MAX_CHARS:
            if len(_times) >= spec.CELL_MEMO_ENTRIES:
                _times.clear()
            _times[timestamp] = time
    return {
        "time": time,
        "kind": KIND_SIGNAL,
        "strategy_id": strategy_id,
        "strategy": code_values[0],
        "seq": message.seq_id,
        "side": code_values[1],
        "open_close": code_values[2],
        "qty": fields.parse_number(quantity),
        "symbol": symbol or None,
        "type": code_values[3],
        "limit": fields.price_value(limit),
        "stop": fields.price_value(stop),
        "tif": code_values[4],
        "status": code_values[5],
        "signal_id": signal_id if signal_id is not None else (
            fields.display_text(raw_signal_id) or None),
        "avg_price": None,
        "currency": None,
    }


def position_records(message: Envelope, key: SubscriptionKey | None) -> list[Record]:
    records: list[Record] = []
    for position in fields.position_fields(message.payload):
        strategy_id = position.strategy_id if position.strategy_id is not None else (
            key.strategy_id if key is not None else None
        )
        records.append({
            "time": _time(message),
            "kind": KIND_POSITION,
            "strategy_id": strategy_id,
            "strategy": _text(position.strategy_name),
            "seq": message.seq_id,
            "side": None,
            "open_close": None,
            "qty": position.quantity,
            "symbol": _text(position.symbol),
            "type": None,
            "limit": None,
            "stop": None,
            "tif": None,
            "status": None,
            "signal_id": None,
            "avg_price": position.avg_price_value,
            "currency": _text(position.currency),
        })
    return records


def decoded_records(message: Envelope, key: SubscriptionKey | None) -> list[Record]:
    if message.msg_type == spec.CHANNEL_SIGNAL:
        return [signal_record(message, key)]
    if message.msg_type == spec.CHANNEL_POSITIONS:
        return position_records(message, key)
    return []


def _kind_of(message: Envelope) -> str | None:
    if message.msg_type == spec.CHANNEL_SIGNAL:
        return KIND_SIGNAL
    if message.msg_type == spec.CHANNEL_POSITIONS:
        return KIND_POSITION
    return None


def raw_value(raw: Mapping[str, object], name: str) -> Value:
    """The envelope's value at a key or dotted path; None where the path leads nowhere."""
    value: object = raw
    for part in name.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value  # type: ignore[return-value]  # a JSON value


class Projection:
    """The chosen fields of each stream message, in the order given.

    ``channels``: the channels streamed (None: both).  With both, every record says which
    one it is from: ``kind`` comes first unless ``kind`` or ``msg_type`` is among the
    names (a ``seq`` of 24 is another message on each channel)."""

    def __init__(self, names: Sequence[str], *, channels: Iterable[str] | None = None) -> None:
        chosen = tuple(check_field_names(names))
        self._chosen = chosen
        # Records are made from the decoded payload (else: raw values only).
        self.decoded = any(name in DECODED_FIELDS for name in chosen)
        streamed = spec.STREAM_MSG_TYPES if channels is None else frozenset(channels)
        self._add_kind = (len(streamed & spec.STREAM_MSG_TYPES) != 1
                          and not {"kind", "msg_type"} & set(chosen))
        self.names = ("kind", *chosen) if self._add_kind else chosen
        # Decoded fields only, two or more: a signal's record picked in one call.
        self._pick = itemgetter(*self.names) if (
            len(self.names) > 1 and set(self.names) <= DECODED_FIELDS) else None

    def records(self, message: Envelope, key: SubscriptionKey | None) -> list[Record]:
        raw = message.raw
        if not self.decoded:
            record: Record = {"kind": _kind_of(message)} if self._add_kind else {}
            for name in self._chosen:
                record[name] = raw_value(raw, name)
            return [record]
        if message.msg_type == spec.CHANNEL_SIGNAL:
            record = planned_signal_record(message, key)
            if self._pick is not None:
                return [dict(zip(self.names, self._pick(record), strict=True))]
            return [{name: record[name] if name in DECODED_FIELDS else raw_value(raw, name)
                     for name in self.names}]
        projected: list[Record] = []
        for decoded in decoded_records(message, key):
            projected.append({
                name: decoded[name] if name in DECODED_FIELDS else raw_value(raw, name)
                for name in self.names
            })
        return projected


def cell_text(value: Value) -> str:
    """A value as one cell of text output: numbers as a person writes them, nothing
    for None, objects and lists as compact JSON; no control characters or line breaks."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return fields.format_number(value)
    if isinstance(value, str):
        return terminal_safe(value, _RAW_TEXT_LIMIT)
    return terminal_safe(orjson.dumps(value).decode(), _RAW_TEXT_LIMIT)
