"""Fixed-width columns for the table: which columns a terminal's width keeps, and how a
cell is fitted into its column.

Text is abbreviated with an ellipsis; a number is never cut short (it would read as a
different number): its column widens, less needed columns make room or are dropped, and
a number too wide for the terminal shows as ``###``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from rich.cells import cell_len, set_cell_size
from rich.text import Span, Text

from c2ws.render.safe import ELLIPSIS

COLUMN_GAP: Final = 1
_GAP: Final = " " * COLUMN_GAP
# A number too wide for any column it could have is shown as this, never cut short.
NUMBER_OVERFLOW: Final = "#"
HEADER_STYLE: Final = "bold"

# --- fixed-width lines --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Column:
    """One column of the signal lines.

    ``width`` is what it gets when there is room; a text column with a ``minimum`` can be
    abbreviated down to it; a ``numeric`` column is never cut (it widens instead).
    ``drop_rank``: when the columns do not fit even abbreviated, rank 1 is dropped first,
    then 2...; None: always kept.  ``grow``: extra cells it takes when the console has
    room to spare."""

    name: str
    header: str
    width: int
    right: bool = False
    numeric: bool = False
    minimum: int | None = None
    grow: int = 0
    drop_rank: int | None = None


# What a trader needs most when space is short: the time, side, quantity, symbol, price and
# status of an order, kept in that priority (the last of them goes first on a very narrow
# terminal).  The strategy name comes next: it is abbreviated down to its minimum before
# any of those six is dropped, and dropped before them.  Then the order type, open/close,
# TIF, seq and the signal id, which a narrow terminal leaves out first.  Spare room goes
# to the abbreviated columns left to right (strategy names are the longest texts).
SIGNAL_COLUMNS: Final = (
    Column("time", "Time", 8),
    Column("strategy", "Strategy", 14, minimum=8, grow=10, drop_rank=6),
    Column("seq", "Seq", 8, right=True, numeric=True, drop_rank=2),
    Column("side", "Side", 4, drop_rank=11),
    Column("open_close", "O/C", 5, drop_rank=4),
    Column("quantity", "Qty", 7, right=True, numeric=True, drop_rank=10),
    Column("symbol", "Symbol", 12, minimum=7, grow=8, drop_rank=9),
    Column("order_type", "Type", 6, drop_rank=5),
    Column("price", "Limit/Stop", 10, right=True, numeric=True, drop_rank=8),
    Column("tif", "TIF", 3, drop_rank=3),
    Column("status", "Status", 16, minimum=9, drop_rank=7),
    Column("signal_id", "Signal id", 10, numeric=True, drop_rank=1),
)
NUMERIC_SIGNAL_COLUMNS: Final = tuple(c.name for c in SIGNAL_COLUMNS if c.numeric)

Cell = tuple[str, str | None]  # text, style


def full_width(columns: Sequence[Column] = SIGNAL_COLUMNS) -> int:
    """The width at which no column is dropped or abbreviated (a sensible width for
    table output that goes to a file or a pipe)."""
    return _total_width([(c, c.width) for c in columns])


def fit(text: str, width: int, right: bool, numeric: bool = False) -> str:
    """``text`` padded or cut to exactly ``width`` terminal cells.  Text is cut with an
    ellipsis; a number that does not fit is shown as ``###``, never as a wrong number."""
    size = cell_len(text)
    if size > width:
        if numeric:
            text, size = NUMBER_OVERFLOW * width, width
        else:
            # "Index Mean…", not "Index Mean …"
            text = set_cell_size(text, max(width - 1, 0)).rstrip() + ELLIPSIS
            size = cell_len(text)
    padding = " " * (width - size)
    return padding + text if right else text + padding


class LineLayout:
    """Columns fitted to one console width; every line it makes has the same widths.

    ``minimums`` raise columns' widths (numbers seen so far that needed more room);
    ``headers`` rename columns (the time column names its zone)."""

    def __init__(
        self,
        columns: Iterable[Column],
        width: int,
        *,
        minimums: Mapping[str, int] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        minimums = minimums or {}
        self.headers = dict(headers or {})
        kept = list(columns)
        least = {c.name: self._least_width(c, minimums) for c in kept}
        for column in kept:
            # A number too wide to show even if every less needed column went shows as ###
            # in its usual width: the other columns are not dropped for it in vain.
            if column.numeric and least[column.name] > column.width:
                needed = [(c, least[c.name]) for c in kept
                          if _drop_rank(c) == 0 or _drop_rank(c) >= _drop_rank(column)]
                if _total_width(needed) > width:
                    least[column.name] = self._least_width(column, {})
        for column in sorted((c for c in kept if c.drop_rank is not None), key=_drop_rank):
            if _total_width([(c, least[c.name]) for c in kept]) <= width:
                break
            kept.remove(column)
        widths = {c.name: least[c.name] for c in kept}
        excess = _total_width([(c, widths[c.name]) for c in kept]) - width
        for column in kept:  # numbers wider than the terminal allows: they show as ###
            if excess > 0 and column.numeric and widths[column.name] > column.width:
                cut = min(excess, widths[column.name] - column.width)
                widths[column.name] -= cut
                excess -= cut
        spare = max(width - _total_width([(c, widths[c.name]) for c in kept]), 0)
        for column in kept:  # abbreviated columns back to their full width first
            extra = min(max(column.width - widths[column.name], 0), spare)
            widths[column.name] += extra
            spare -= extra
        for column in kept:
            extra = min(column.grow, spare)
            widths[column.name] += extra
            spare -= extra
        self.columns: tuple[tuple[Column, int], ...] = tuple((c, widths[c.name]) for c in kept)
        self.console_width = width
        self._widths = widths
        self.minimums = dict(minimums)

    def _least_width(self, column: Column, minimums: Mapping[str, int]) -> int:
        header = cell_len(self.headers.get(column.name, column.header))
        if column.numeric:
            return max(column.width, header, minimums.get(column.name, 0))
        if column.minimum is not None:
            return max(column.minimum, min(header, column.minimum))
        return max(column.width, header)

    def width_of(self, name: str) -> int | None:
        """The column's width, or None when it was dropped."""
        return self._widths.get(name)

    def needs_room(self, cells: Mapping[str, Cell]) -> dict[str, int]:
        """The numeric cells wider than their columns: name -> width they need."""
        needed: dict[str, int] = {}
        for name in NUMERIC_SIGNAL_COLUMNS:
            cell = cells.get(name)
            width = self._widths.get(name)
            if cell is not None and width is not None and len(cell[0]) > width:
                needed[name] = cell_len(cell[0])
        return needed

    def header(self) -> Text:
        return self.line(
            {c.name: (self.headers.get(c.name, c.header), HEADER_STYLE) for c, _ in self.columns}
        )

    def line(self, cells: Mapping[str, Cell]) -> Text:
        return _compose(
            (cells.get(column.name, _BLANK), width, column.right, column.numeric)
            for column, width in self.columns
        )

    def banner(self, leading: Mapping[str, Cell], message: str, style: str) -> Text:
        """The leading columns as usual, then ``message`` across the remaining width."""
        pieces: list[tuple[Cell, int, bool, bool]] = []
        used = 0
        for column, width in self.columns:
            if column.name not in leading:
                break
            pieces.append((leading[column.name], width, column.right, column.numeric))
            used += width + COLUMN_GAP
        pieces.append(((message, style), max(self.console_width - used, 1), False, False))
        return _compose(pieces)


_BLANK: Final[Cell] = ("", None)


def _compose(pieces: Iterable[tuple[Cell, int, bool, bool]]) -> Text:
    """One line of fitted cells.  Built as a string plus spans, not by Text.append, since
    this runs once per signal; the cells are already free of control characters."""
    parts: list[str] = []
    spans: list[Span] = []
    offset = 0
    for (text, style), width, right, numeric in pieces:
        if parts:
            parts.append(_GAP)
            offset += COLUMN_GAP
        fitted = fit(text, width, right, numeric)
        if style:
            spans.append(Span(offset, offset + len(fitted), style))
        parts.append(fitted)
        offset += len(fitted)
    plain = "".join(parts).rstrip()
    end = len(plain)
    spans = [Span(span.start, min(span.end, end), span.style) for span in spans if span.start < end]
    return Text(plain, spans=spans, no_wrap=True, overflow="crop")


def _drop_rank(column: Column) -> int:
    """0 for a column that is always kept."""
    return column.drop_rank or 0


def _total_width(columns: Sequence[tuple[Column, int]]) -> int:
    return sum(width for _, width in columns) + COLUMN_GAP * max(len(columns) - 1, 0)



# --- the positions table ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PositionColumn:
    header: str
    right: bool = False
    numeric: bool = False
    minimum: int = 0  # text: abbreviated down to this
    maximum: int = 0  # text: never wider than this (0: no bound)
    drop_rank: int | None = None


# As for signals, a long strategy name is abbreviated before a number goes: at 40 columns
# a row keeps its strategy, symbol, quantity and average price.
POSITION_COLUMNS: Final = (
    _PositionColumn("Strategy", minimum=8, maximum=32),
    _PositionColumn("Symbol", minimum=6, maximum=24),
    _PositionColumn("Qty", right=True, numeric=True),
    _PositionColumn("Avg price", right=True, numeric=True, drop_rank=3),
    _PositionColumn("Currency", minimum=8, maximum=10, drop_rank=1),
    _PositionColumn("Updated", drop_rank=2),
)
# Between two columns of a SIMPLE_HEAD table without edges: padding, rule, padding.
_POSITION_COLUMN_GAP: Final = 3


def fit_position_columns(
    rows: Sequence[Sequence[str]], width: int
) -> list[tuple[int, _PositionColumn, int]]:
    """(index, column, width) of the columns shown at ``width``: text columns are narrowed
    first, then the least needed columns dropped; numbers keep their full width."""
    natural: list[int] = []
    for index, column in enumerate(POSITION_COLUMNS):
        size = max([cell_len(column.header), *(cell_len(row[index]) for row in rows)])
        if column.maximum:
            size = min(size, column.maximum)
        natural.append(size)
    kept = list(range(len(POSITION_COLUMNS)))
    widths = list(natural)

    def total() -> int:
        return sum(widths[i] for i in kept) + _POSITION_COLUMN_GAP * max(len(kept) - 1, 0)

    def narrow() -> None:
        for index in kept:
            column = POSITION_COLUMNS[index]
            if column.numeric or not column.minimum:
                continue
            excess = total() - width
            if excess <= 0:
                return
            floor = max(column.minimum, 1)
            widths[index] -= min(excess, max(widths[index] - floor, 0))

    narrow()
    droppable = sorted(
        (i for i in kept if POSITION_COLUMNS[i].drop_rank is not None),
        key=lambda i: POSITION_COLUMNS[i].drop_rank or 0,
    )
    for index in droppable:
        if total() <= width:
            break
        kept.remove(index)
        widths = list(natural)  # a dropped column may leave room to abbreviate less
        narrow()
    excess = total() - width
    if excess > 0:  # absurdly wide numbers: they get what is left, and show as ###
        for index in (i for i in kept if POSITION_COLUMNS[i].numeric):
            cut = min(excess, widths[index] - 1)
            widths[index] -= cut
            excess -= cut
    return [(i, POSITION_COLUMNS[i], widths[i]) for i in kept]
