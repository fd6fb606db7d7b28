"""The cells of ``-o csv|tsv``: each record's fields as text, fast.

By definition a cell is ``cell_text(record[name])`` of a record of
:mod:`c2ws.render.records`.  Building those records for a signal (two field objects of
display strings, most of them unused, then a dict of 17 values) and making every string
safe twice cost ~50 us per message: CSV ran at 0.1x NDJSON.  Here a signal's decoded
cells are computed straight from its payload, a whole row at once (its field lookups
planned per payload layout: :mod:`c2ws.render.planned`), and the conversions of values
that repeat (codes, names, symbols, quantities, timestamps) are remembered (bounded:
``spec.CELL_MEMO_ENTRIES`` each); a projection mixing decoded fields and envelope paths
takes each column on its own.  Positions (one record per position a message carries) and
projections of envelope paths only go through the records, unchanged.  A signal in a
run of frames passed through (``-o csv|tsv`` sessions do not decode payloads) has its
line written by the compiled :func:`run_lines` straight from the run's bytes, nearly
always (every cell an int, a usual float, a plain timestamp or a cell these memos hold),
else its row made from the values that function reads from its frame, when it reads them
(:meth:`RowCells.values_row`): the same row as from the decoded message.

tests/test_cells.py checks, on generated payloads, that these cells are exactly the
records' cells.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Final

from c2ws import spec
from c2ws.events import SubscriptionKey
from c2ws.payload import (
    LIMIT_KEYS,
    OPEN_CLOSE_KEYS,
    ORDER_QUANTITY_KEYS,
    ORDER_STATUS_KEYS,
    ORDER_TYPE_KEYS,
    SIDE_KEYS,
    SIGNAL_ID_KEYS,
    STOP_KEYS,
    STRATEGY_NAME_KEYS,
    TIF_KEYS,
    PayloadView,
    symbol_candidates,
)
from c2ws.protocol import Envelope, parse_int
from c2ws.render import fields
from c2ws.render.fields import format_number
from c2ws.render.planned import PLAIN, signal_lookups, symbol_values
from c2ws.render.records import (
    COMBINED_COLUMNS,
    DECODED_FIELDS,
    KIND_SIGNAL,
    TIME_LIMIT,
    Projection,
    cell_text,
    raw_value,
)
from c2ws.render.safe import terminal_safe
from c2ws.speedups import SignalValues, signal_csv

__all__ = ["RowCells", "run_lines"]

_SIGNAL: Final = spec.CHANNEL_SIGNAL
_MEMO_ENTRIES: Final = spec.CELL_MEMO_ENTRIES
_MEMO_MAX_CHARS: Final = spec.CELL_MEMO_MAX_CHARS
_INT_MIN: Final = spec.MIN_WIRE_INT
_INT_MAX: Final = spec.MAX_WIRE_INT


def _memoized(convert: Callable[[object], str]) -> Callable[[object], str]:
    """``convert`` remembering its cell for short strings, 64-bit ints and bools (keyed
    by type too: ``1``, ``1.0`` and ``True`` are equal keys to a dict, not to a cell).
    Floats are never remembered (prices rarely repeat; ``-0.0 == 0.0``)."""
    memo: dict[tuple[type, object], str] = {}

    def cell(value: object) -> str:
        if type(value) is str:
            remembered = len(value) <= _MEMO_MAX_CHARS
        elif type(value) is int:
            remembered = _INT_MIN <= value <= _INT_MAX
        else:
            remembered = type(value) is bool
        if not remembered:
            return convert(value)
        key = (type(value), value)
        found = memo.get(key)
        if found is None:
            if len(memo) >= _MEMO_ENTRIES:
                memo.clear()  # a feed of ever new values: start over, stay bounded
            found = memo[key] = convert(value)
        return found

    return cell


# What a signal record holds in each decoded field, as a cell (records.signal_record,
# fields.signal_fields and fields.signal_values, then records.cell_text).
def _text(value: object) -> str:
    return cell_text(fields.display_text(value) or None)


def _code(table: fields.CodeTable) -> Callable[[object], str]:
    return lambda value: cell_text(table.name_of(value) or None)


def _number(value: object) -> str:
    return cell_text(fields.parse_number(value))


def _signal_id(value: object) -> str:
    number = parse_int(value)
    return cell_text(number if number is not None else (fields.display_text(value) or None))


_times: dict[str, str] = {}  # the cells of the timestamps seen (a timestamp is a str)


def _time(timestamp: object) -> str:
    assert isinstance(timestamp, str)
    cell = cell_text(terminal_safe(timestamp, TIME_LIMIT) if timestamp else None)
    if len(timestamp) <= _MEMO_MAX_CHARS:
        if len(_times) >= _MEMO_ENTRIES:
            _times.clear()
        _times[timestamp] = cell
    return cell


_text_cell: Final = _memoized(_text)
_number_cell: Final = _memoized(_number)
_signal_id_cell: Final = _memoized(_signal_id)
_side_cell: Final = _memoized(_code(fields.SIDES))
_open_close_cell: Final = _memoized(_code(fields.OPEN_CLOSE))
_type_cell: Final = _memoized(_code(fields.ORDER_TYPES))
_tif_cell: Final = _memoized(_code(fields.TIME_IN_FORCE))
_status_cell: Final = _memoized(_code(fields.ORDER_STATUSES))


def _price_cell(value: object) -> str:
    number = fields.parse_number(value)
    if number == 0 and spec.ZERO_PRICE_IS_UNSET:
        return ""
    return cell_text(number)


def _symbol_cell(view: PayloadView) -> str:
    for value in symbol_candidates(view):
        cell = _text_cell(value)
        if cell:
            return cell
    return ""


def _strategy_id_cell(view: PayloadView, key: SubscriptionKey | None) -> str:
    strategy_id = fields.strategy_id_of(view)
    if strategy_id is None and key is not None:
        strategy_id = key.strategy_id
    return cell_text(strategy_id)


_Cell = Callable[[Envelope, SubscriptionKey | None, PayloadView], str]

_SIGNAL_CELLS: Final[dict[str, _Cell]] = {
    "time": lambda m, k, v: (_times.get(m.timestamp) or _time(m.timestamp)) if m.timestamp
    else "",
    "kind": lambda m, k, v: KIND_SIGNAL,
    "strategy_id": lambda m, k, v: _strategy_id_cell(v, k),
    "strategy": lambda m, k, v: _text_cell(v.get(*STRATEGY_NAME_KEYS)),
    "seq": lambda m, k, v: cell_text(m.seq_id),
    "side": lambda m, k, v: _side_cell(v.get(*SIDE_KEYS)),
    "open_close": lambda m, k, v: _open_close_cell(v.get(*OPEN_CLOSE_KEYS)),
    "qty": lambda m, k, v: _number_cell(v.get(*ORDER_QUANTITY_KEYS)),
    "symbol": lambda m, k, v: _symbol_cell(v),
    "type": lambda m, k, v: _type_cell(v.get(*ORDER_TYPE_KEYS)),
    "limit": lambda m, k, v: _price_cell(v.get(*LIMIT_KEYS)),
    "stop": lambda m, k, v: _price_cell(v.get(*STOP_KEYS)),
    "tif": lambda m, k, v: _tif_cell(v.get(*TIF_KEYS)),
    "status": lambda m, k, v: _status_cell(v.get(*ORDER_STATUS_KEYS)),
    "signal_id": lambda m, k, v: _signal_id_cell(v.get(*SIGNAL_ID_KEYS)),
    "avg_price": lambda m, k, v: "",
    "currency": lambda m, k, v: "",
}
assert set(_SIGNAL_CELLS) == DECODED_FIELDS


def _raw_cell(name: str) -> _Cell:
    return lambda m, k, v: cell_text(raw_value(m.raw, name))


# --- a whole signal row at once ------------------------------------------------------------
# The six code and name cells of a row, by their raw values when all are strings or null.
_codes: dict[tuple[object, ...], tuple[str, ...]] = {}


# The symbol cells of the symbols seen as strings (the usual case), keyed by the string.
_symbols: dict[str, str] = {}


def _symbol_text(value: str) -> str:
    cell = _text_cell(value)
    if len(value) <= _MEMO_MAX_CHARS:
        if len(_symbols) >= _MEMO_ENTRIES:
            _symbols.clear()
        _symbols[value] = cell
    return cell


def _code_cells(values: tuple[object, ...]) -> tuple[str, ...]:
    name, side, open_close, order_type, tif, status = values
    return (_text_cell(name), _side_cell(side), _open_close_cell(open_close),
            _type_cell(order_type), _tif_cell(tif), _status_cell(status))


def _signal_row(message: Envelope, key: SubscriptionKey | None) -> list[str]:
    """The cells of a signal in ``COMBINED_COLUMNS`` order, each what its column's entry
    in ``_SIGNAL_CELLS`` gives."""
    payload = message.payload
    values, containers = signal_lookups(payload)
    return _row(key, (message.seq_id, message.timestamp, *values,
                      symbol_values(payload, containers) if containers else ()))


def _values_row(key: SubscriptionKey | None, values: SignalValues) -> list[str]:
    """:func:`_signal_row` of the values c2ws.speedups.signal_csv read from a frame
    (its seq_id, timestamp, the 11 lookups and the symbol's candidates)."""
    return _row(key, values)


def _row(key: SubscriptionKey | None, values: SignalValues) -> list[str]:
    (seq_id, timestamp, strategy_id, name, side, open_close, quantity, order_type, limit,
     stop, tif, status, signal_id, symbols) = values
    codes = (name, side, open_close, order_type, tif, status)
    plain = PLAIN
    if (type(name) in plain and type(side) in plain and type(open_close) in plain
            and type(order_type) in plain and type(tif) in plain and type(status) in plain):
        code_cells = _codes.get(codes)
        if code_cells is None:
            if len(_codes) >= _MEMO_ENTRIES:
                _codes.clear()
            code_cells = _codes[codes] = _code_cells(codes)
    else:
        code_cells = _code_cells(codes)
    if type(strategy_id) is int and 0 < strategy_id <= _INT_MAX:
        strategy_cell = str(strategy_id)
    else:
        number = parse_int(strategy_id)
        if number is None or number <= 0:
            number = key.strategy_id if key is not None else None
        strategy_cell = cell_text(number)
    symbol = ""
    for value in symbols:  # type: ignore[attr-defined]  # a sequence
        symbol = (_symbols.get(value) or _symbol_text(value)) if type(value) is str else (
            _text_cell(value))
        if symbol:
            break
    return [
        (_times.get(timestamp) or _time(timestamp)) if timestamp else "",  # type: ignore[call-overload]
        KIND_SIGNAL,
        strategy_cell,
        code_cells[0],
        str(seq_id) if type(seq_id) is int and _INT_MIN <= seq_id <= _INT_MAX
        else cell_text(seq_id),  # type: ignore[arg-type]  # a JSON value
        code_cells[1],
        code_cells[2],
        # (format_number of an int within 64 bits, and of a float in this range, inline)
        str(quantity) if type(quantity) is int and _INT_MIN <= quantity <= _INT_MAX
        else _number_cell(quantity) if quantity is not None else "",
        symbol,
        code_cells[3],
        "" if limit is None else
        f"{limit:.8f}".rstrip("0").rstrip(".") if type(limit) is float and (
            1e-4 <= limit < 1e15 or -1e15 < limit <= -1e-4)
        else ("" if limit == 0 else format_number(limit)) if type(limit) is float
        else _price_cell(limit),
        "" if stop is None else
        f"{stop:.8f}".rstrip("0").rstrip(".") if type(stop) is float and (
            1e-4 <= stop < 1e15 or -1e15 < stop <= -1e-4)
        else ("" if stop == 0 else format_number(stop)) if type(stop) is float
        else _price_cell(stop),
        code_cells[4],
        code_cells[5],
        str(signal_id) if type(signal_id) is int and _INT_MIN <= signal_id <= _INT_MAX
        else _signal_id(signal_id),
        "",
        "",
    ]


def run_lines(ndjson: bytes, columns: tuple[int, ...],
              delimiter: str) -> list[str | SignalValues | int]:
    """The parts of a run of signal lines (``ndjson``) as c2ws.speedups.signal_csv gives
    them: str, lines written (compiled: from the memos above, ints, usual floats and
    plain timestamps; a row needing quotes never), the cells picked by their index in
    COMBINED_COLUMNS joined by ``delimiter``; a tuple, a line's values whose row is
    :func:`_row`'s (which fills the memos for the next); an int, the index of a line to
    decode in full (every line without the compiled core)."""
    return signal_csv(ndjson, columns, delimiter, KIND_SIGNAL, _times, _codes, _symbols)


class RowCells:
    """The rows (lists of cells) of each stream message for ``projection``; for a
    projection of decoded fields only, ``signal_row`` gives a signal's one row."""

    def __init__(self, projection: Projection) -> None:
        self.projection = projection
        names: Sequence[str] = projection.names
        # A projection with decoded fields makes a signal's record from its payload;
        # without, a record is the raw values (and ``kind``): the records' own path.
        self._signal_cells: tuple[_Cell, ...] | None = tuple(
            _SIGNAL_CELLS[name] if name in DECODED_FIELDS else _raw_cell(name)
            for name in names
        ) if projection.decoded else None
        # Decoded fields only: a signal's whole row at once, its columns picked from it.
        self.signal_row: Callable[[Envelope, SubscriptionKey | None], list[str]] | None = None
        # ... and the same row of the values c2ws.speedups.signal_csv read.
        self.values_row: Callable[[SubscriptionKey | None, SignalValues], Sequence[str]] | None = (
            None)
        # ... and the indexes of its columns in that row, for run_lines.
        self.columns: tuple[int, ...] | None = None
        if projection.decoded and set(names) <= DECODED_FIELDS:
            self.columns = tuple(COMBINED_COLUMNS.index(name) for name in names)
            if tuple(names) == COMBINED_COLUMNS:
                self.signal_row = _signal_row
                self.values_row = _values_row
            else:
                pick = itemgetter(*(COMBINED_COLUMNS.index(name) for name in names), -1)
                # (-1, an empty cell, makes every pick a tuple; dropped again.)
                self.signal_row = lambda message, key: list(pick(_signal_row(message, key))[:-1])
                if len(names) > 1:  # a tuple of the cells picked: a row as it is
                    picked = itemgetter(*(COMBINED_COLUMNS.index(name) for name in names))
                    self.values_row = lambda key, values: picked(_row(key, values))
                else:
                    self.values_row = lambda key, values: list(pick(_row(key, values))[:-1])

    def rows(self, message: Envelope, key: SubscriptionKey | None) -> list[list[str]]:
        cells = self._signal_cells
        if cells is not None and message.msg_type == _SIGNAL:
            if self.signal_row is not None:
                return [self.signal_row(message, key)]
            view = PayloadView(message.payload)
            return [[cell(message, key, view) for cell in cells]]
        names = self.projection.names
        return [[cell_text(record[name]) for name in names]
                for record in self.projection.records(message, key)]

