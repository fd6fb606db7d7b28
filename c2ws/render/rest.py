"""Output of ``c2ws positions`` and ``c2ws orders``: the REST objects as a table, NDJSON,
JSON, CSV or TSV, read the way the stream's are (:mod:`c2ws.render.fields`: codes
named, numbers as numbers, text terminal-safe).

NDJSON and JSON hold the lines of :mod:`c2ws.rest.results` (``positions.snapshot``: one
per strategy, its REST positions as ``payload``; ``order``: one per order); CSV and TSV
a header and one row per position or order; the table the same rows for a person.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Sequence
from typing import Any, BinaryIO, Final

import orjson
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from c2ws.protocol import JsonObject
from c2ws.render import fields
from c2ws.render.clock import DisplayZone
from c2ws.render.records import Record, cell_text
from c2ws.render.safe import terminal_safe
from c2ws.render.sink import ByteSink

POSITION_COLUMNS: Final = ("strategy_id", "strategy", "symbol", "qty", "avg_price",
                           "currency", "opened")
ORDER_COLUMNS: Final = ("posted", "strategy_id", "strategy", "signal_id", "side",
                        "open_close", "qty", "symbol", "type", "limit", "stop", "tif",
                        "status", "filled", "avg_fill_price")
# The table shows fewer columns (a person reads it at 80 columns): the same rows.
POSITION_TABLE_COLUMNS: Final = ("strategy", "symbol", "qty", "avg_price", "currency", "opened")
ORDER_TABLE_COLUMNS: Final = ("posted", "strategy", "side", "open_close", "qty", "symbol",
                              "type", "limit", "stop", "status", "signal_id")
_HEADERS: Final = {
    "strategy_id": "Strategy id", "strategy": "Strategy", "symbol": "Symbol", "qty": "Qty",
    "avg_price": "Avg price", "currency": "Currency", "opened": "Opened", "posted": "Posted",
    "signal_id": "Signal id", "side": "Side", "open_close": "O/C", "type": "Type",
    "limit": "Limit", "stop": "Stop", "tif": "TIF", "status": "Status", "filled": "Filled",
    "avg_fill_price": "Avg fill",
}
_TEXT_WIDTH: Final = 20
_TEXT_MIN: Final = 8
_GAP: Final = 3  # the table's padding between columns
# Abbreviated when the console is narrow; and which columns go first when even that is
# not enough (a person needs the time, side, quantity, symbol, price and status most).
_SHRINKS: Final = frozenset({"strategy"})
_DROP_FIRST: Final = ("signal_id", "open_close", "type", "currency", "strategy_id", "stop",
                      "strategy", "opened", "avg_price", "limit")
_NUMERIC: Final = frozenset({"strategy_id", "signal_id", "qty", "avg_price", "limit", "stop",
                             "filled", "avg_fill_price"})
_DATE_KEYS: Final = {"opened": "openeddate", "posted": "posteddate"}


def position_records(strategy_id: int, positions: Sequence[JsonObject]) -> list[Record]:
    """One record per position (``POSITION_COLUMNS``)."""
    from c2ws.payload import PayloadView

    records: list[Record] = []
    for position in positions:
        found = fields.position_fields(position)
        if not found:
            continue
        decoded = found[0]
        opened = PayloadView(position).get(_DATE_KEYS["opened"])
        records.append({
            "strategy_id": decoded.strategy_id if decoded.strategy_id is not None
            else strategy_id,
            "strategy": decoded.strategy_name or None,
            "symbol": decoded.symbol or None,
            "qty": decoded.quantity,
            "avg_price": decoded.avg_price_value,
            "currency": decoded.currency or None,
            "opened": terminal_safe(opened, 40) if isinstance(opened, str) else None,
        })
    return records


def order_record(strategy_id: int, order: JsonObject) -> Record:
    """One order's record (``ORDER_COLUMNS``)."""
    from c2ws.payload import AVG_FILL_PRICE_KEYS, FILLED_QUANTITY_KEYS, PayloadView

    decoded = fields.signal_fields(order)
    values = fields.signal_values(order)
    view = PayloadView(order)
    posted = view.get(_DATE_KEYS["posted"])
    avg_fill = fields.parse_number(view.get(*AVG_FILL_PRICE_KEYS))
    return {
        "posted": terminal_safe(posted, 40) if isinstance(posted, str) else None,
        "strategy_id": decoded.strategy_id if decoded.strategy_id is not None else strategy_id,
        "strategy": decoded.strategy_name or None,
        "signal_id": values.signal_id,
        "side": decoded.side or None,
        "open_close": decoded.open_close or None,
        "qty": values.quantity,
        "symbol": decoded.symbol or None,
        "type": decoded.order_type or None,
        "limit": values.limit,
        "stop": values.stop,
        "tif": decoded.tif or None,
        "status": decoded.status or None,
        "filled": fields.parse_number(view.get(*FILLED_QUANTITY_KEYS)),
        "avg_fill_price": None if avg_fill == 0 else avg_fill,
    }


class RestWriter:
    """Writes the objects of one REST command in one output mode: ``ndjson``, ``json``,
    ``csv``, ``tsv`` or ``table``.  ``add`` takes each line object (with its records);
    ``close`` ends the output (the JSON array's bracket, the table)."""

    def __init__(self, mode: str, out: BinaryIO, columns: Sequence[str], *,
                 console: Console | None = None, zone: DisplayZone | None = None,
                 title: str = "", table_columns: Sequence[str] | None = None) -> None:
        self._mode = mode
        self._out = ByteSink.of(out)
        self._columns = tuple(columns)
        self._table_columns = tuple(table_columns or columns)
        self._console = console
        self._zone = zone or DisplayZone.utc()
        self._title = title
        self._elements = 0
        self._today = self._zone.day(time.time())
        self._rows: list[Record] = []
        self._delimited: Any = None  # a csv writer (its type is private to csv)
        self._buffer = io.StringIO()
        if mode in ("csv", "tsv"):
            self._delimited = csv.writer(self._buffer, delimiter="," if mode == "csv" else "\t",
                                         lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
            self._delimited.writerow(self._columns)

    def add(self, obj: JsonObject, records: Sequence[Record]) -> None:
        if self._mode == "ndjson":
            self._out.write(orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE))
        elif self._mode == "json":
            self._out.write(b",\n" if self._elements else b"[\n")
            self._out.write(orjson.dumps(obj))
            self._elements += 1
        elif self._delimited is not None:
            for record in records:
                self._delimited.writerow([cell_text(record.get(name))
                                          for name in self._columns])
            self._out.write(self._buffer.getvalue().encode("utf-8"))
            self._buffer.seek(0)
            self._buffer.truncate()
        else:
            self._rows.extend(records)

    def close(self) -> None:
        if self._mode == "json":
            self._out.write(b"\n]\n" if self._elements else b"[]\n")
        elif self._delimited is not None:
            self._out.write(self._buffer.getvalue().encode("utf-8"))
        elif self._mode == "table" and self._console is not None:
            self._console.print(self._table())
        self._out.flush()

    def _table(self) -> Table:
        """The rows for a person: numbers and times are never cut short; when the
        console is too narrow, the least needed columns go first (``_DROP_FIRST``), and
        the strategy's name is abbreviated."""
        cells = [{name: self._cell(name, record.get(name)) for name in self._table_columns}
                 for record in self._rows]
        width = self._console.width if self._console is not None else 200
        columns = list(self._table_columns)

        def needed(name: str) -> int:
            shortest = _TEXT_MIN if name in _SHRINKS else max(
                [len(_HEADERS[name])] + [len(row[name]) for row in cells])
            return shortest + _GAP

        for name in _DROP_FIRST:
            if sum(map(needed, columns)) <= width:
                break
            if name in columns and len(columns) > 1:
                columns.remove(name)
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                      title=self._title or None, title_justify="left")
        for name in columns:
            shrinks = name in _SHRINKS
            table.add_column(_HEADERS[name], justify="right" if name in _NUMERIC else "left",
                             no_wrap=True, overflow="ellipsis" if shrinks else "fold",
                             min_width=None if shrinks else needed(name) - _GAP,
                             max_width=_TEXT_WIDTH if shrinks else None)
        for row in cells:
            table.add_row(*(Text(row[name]) for name in columns))
        if not self._rows:
            table.caption = "none"
        return table

    def _cell(self, name: str, value: object) -> str:
        if name in _DATE_KEYS and isinstance(value, str):
            from c2ws.rest.api import parse_date

            moment = parse_date(value)
            if moment is not None:
                epoch = moment.timestamp()
                return self._zone.moment(epoch, self._today)
        return cell_text(value)  # type: ignore[arg-type]
