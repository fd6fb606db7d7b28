"""The human-facing renderer: signals scroll by, positions update in place.

c2ws runs for days, so nothing here grows with the number of messages:

* Each signal is printed into the terminal's scrollback as one fixed-width line as it
  arrives (the header once, before the first); no row is kept.
* Positions are a dict keyed by (strategy, symbol), bounded by the distinct keys.  On a
  terminal they are a ``rich.live.Live`` region (positions table and a status footer)
  redrawn at most ``REFRESH_INTERVAL_SECONDS`` apart by a background thread, so a burst
  of updates costs one redraw, and a signal never re-renders the table: the region is
  rendered once per refresh and replayed from cache when a signal line is printed above
  it.  Off a terminal each update is printed as one line and the final table once, at
  :meth:`TableRenderer.close`.
* Flat positions (quantity 0) are removed from the table: it shows what is open.  The
  update that closed one is still printed as a line ("flat") when not live.

Every server-supplied string goes through :mod:`c2ws.render.fields` (control sequences
removed, length capped) and into ``rich.text.Text``, never into console markup.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Final

from rich import box
from rich.cells import cell_len, set_cell_size
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.segment import Segment, SegmentLines
from rich.table import Table
from rich.text import Span, Text

from c2ws import spec
from c2ws.events import (
    Connected,
    ConnectionEnded,
    DuplicateDropped,
    Event,
    GapReported,
    HeartbeatAnswered,
    MalformedFrame,
    OtherControl,
    Reconnecting,
    SequenceJump,
    ServerError,
    StreamMessage,
    SubscriptionConfirmed,
    SubscriptionKey,
    SubscriptionRejected,
    UnknownMessage,
    Unsubscribed,
)
from c2ws.protocol import Envelope
from c2ws.render import fields
from c2ws.render.safe import ELLIPSIS

REFRESH_INTERVAL_SECONDS: Final = 0.1
# Signal lines held for the next live refresh before they are printed regardless.
MAX_PENDING_LINES: Final = 1000
# A hostile or buggy feed could name endless distinct symbols; the least recently
# updated position is forgotten beyond this many.
MAX_POSITION_ROWS: Final = 10_000
COLUMN_GAP: Final = 1
_GAP: Final = " " * COLUMN_GAP

SIDE_STYLES: Final = {"Buy": "bold green", "Sell": "bold red"}
SHORT_STYLE: Final = "red"
HEADER_STYLE: Final = "bold"
GAP_STYLE: Final = "bold red"
JUMP_STYLE: Final = "yellow"
POSITION_MARK: Final = "Pos"
POSITION_STYLE: Final = "cyan"
ATTENTION_STATUSES: Final = frozenset({"Rejected"})


# --- fixed-width lines --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    header: str
    width: int
    right: bool = False
    grow: int = 0  # extra cells it takes when the console has room
    drop_rank: int | None = None  # narrow consoles drop rank 1 first; None: always kept


SIGNAL_COLUMNS: Final = (
    Column("time", "Time UTC", 8),
    Column("strategy", "Strategy", 14, grow=10, drop_rank=5),
    Column("seq", "Seq", 8, right=True, drop_rank=3),
    Column("side", "Side", 4),
    Column("open_close", "O/C", 5, drop_rank=4),
    Column("quantity", "Qty", 7, right=True),
    Column("symbol", "Symbol", 12, grow=8),
    Column("order_type", "Type", 6),
    Column("price", "Limit/Stop", 10, right=True),
    Column("tif", "TIF", 3, drop_rank=2),
    Column("status", "Status", 16, drop_rank=6),
    Column("signal_id", "Signal id", 10, drop_rank=1),
)

Cell = tuple[str, str | None]  # text, style


def _fit(text: str, width: int, right: bool) -> str:
    """``text`` padded or cut (with an ellipsis) to exactly ``width`` terminal cells."""
    size = cell_len(text)
    if size > width:
        text = set_cell_size(text, width - 1) + ELLIPSIS
        size = width
    padding = " " * (width - size)
    return padding + text if right else text + padding


class LineLayout:
    """Columns fitted to one console width; every line it makes has the same widths."""

    def __init__(self, columns: Iterable[Column], width: int) -> None:
        kept = list(columns)
        droppable = sorted((c for c in kept if c.drop_rank is not None), key=_drop_rank)
        for column in droppable:
            if _total_width(kept) <= width:
                break
            kept.remove(column)
        spare = max(width - _total_width(kept), 0)
        fitted: list[tuple[Column, int]] = []
        for column in kept:
            extra = min(column.grow, spare)
            spare -= extra
            fitted.append((column, column.width + extra))
        self.columns: tuple[tuple[Column, int], ...] = tuple(fitted)
        self.console_width = width

    def header(self) -> Text:
        return self.line({c.name: (c.header, HEADER_STYLE) for c, _ in self.columns})

    def line(self, cells: Mapping[str, Cell]) -> Text:
        return _compose(
            (cells.get(column.name, _BLANK), width, column.right) for column, width in self.columns
        )

    def banner(self, leading: Mapping[str, Cell], message: str, style: str) -> Text:
        """The leading columns as usual, then ``message`` across the remaining width."""
        pieces: list[tuple[Cell, int, bool]] = []
        used = 0
        for column, width in self.columns:
            if column.name not in leading:
                break
            pieces.append((leading[column.name], width, column.right))
            used += width + COLUMN_GAP
        pieces.append(((message, style), max(self.console_width - used, 1), False))
        return _compose(pieces)


_BLANK: Final[Cell] = ("", None)


def _compose(pieces: Iterable[tuple[Cell, int, bool]]) -> Text:
    """One line of fitted cells.  Built as a string plus spans, not by Text.append, since
    this runs once per signal; the cells are already free of control characters."""
    parts: list[str] = []
    spans: list[Span] = []
    offset = 0
    for (text, style), width, right in pieces:
        if parts:
            parts.append(_GAP)
            offset += COLUMN_GAP
        fitted = _fit(text, width, right)
        if style:
            spans.append(Span(offset, offset + len(fitted), style))
        parts.append(fitted)
        offset += len(fitted)
    plain = "".join(parts).rstrip()
    end = len(plain)
    spans = [Span(span.start, min(span.end, end), span.style) for span in spans if span.start < end]
    return Text(plain, spans=spans, no_wrap=True, overflow="crop")


def _drop_rank(column: Column) -> int:
    return column.drop_rank or 0


def _total_width(columns: list[Column]) -> int:
    return sum(c.width for c in columns) + COLUMN_GAP * max(len(columns) - 1, 0)


class _RenderedOnce:
    """Renders its content once per width and replays the lines afterwards.

    Rich redraws the live region below every line printed above it; replaying cached
    lines keeps a signal from re-rendering the positions table.
    """

    def __init__(self, renderable: RenderableType) -> None:
        self._renderable = renderable
        self._width = -1
        self._lines: list[list[Segment]] = []

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if options.max_width != self._width:
            self._lines = console.render_lines(self._renderable, options, pad=False)
            self._width = options.max_width
        yield SegmentLines(self._lines, new_lines=True)


# --- state ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PositionRow:
    strategy: str  # the strategy's name when the payload gives one, else its id
    symbol: str
    quantity: int | float | None
    quantity_text: str
    avg_price: str
    currency: str
    updated: str  # HH:MM:SS UTC

    @property
    def is_flat(self) -> bool:
        return self.quantity == 0


PositionKey = tuple[str, str]  # (strategy id, or name when the payload has no id; symbol)

_ACTIVE: Final = "active"
_PENDING: Final = "pending"
_REJECTED: Final = "rejected"
_UNSUBSCRIBED: Final = "unsubscribed"

# Events that stand for one frame received from the server.
_FRAME_EVENTS: Final = (
    Connected,
    SubscriptionConfirmed,
    SubscriptionRejected,
    Unsubscribed,
    StreamMessage,
    DuplicateDropped,
    GapReported,
    HeartbeatAnswered,
    ServerError,
    OtherControl,
    Reconnecting,
    UnknownMessage,
    MalformedFrame,
)


class TableRenderer:
    """Renders session events as tables on a rich console.

    ``live=None`` uses a live region exactly when the console is a terminal.
    ``max_signal_rows``: when live, show only the latest that many signals inside the
    live region (a fixed-height dashboard) instead of printing them to the scrollback.
    Ignored when not live.  ``clock`` gives the arrival time shown for messages whose
    envelope has no usable timestamp.
    """

    def __init__(
        self,
        console: Console,
        *,
        live: bool | None = None,
        max_signal_rows: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._console = console
        self._live_wanted = console.is_terminal if live is None else live
        self._clock = clock
        self._recent_signals: deque[Text] | None = None
        self._pending_lines: list[Text] = []
        if self._live_wanted and max_signal_rows is not None:
            self._recent_signals = deque(maxlen=max(max_signal_rows, 1))
        self._signal_layout: LineLayout | None = None
        self._signal_header_printed = False
        self._positions: dict[PositionKey, PositionRow] = {}
        self._positions_seen = False
        # Status footer.
        self._connections_up: set[int] = set()
        self._ever_connected = False
        self._reconnecting = False
        self._subscriptions: dict[SubscriptionKey, str] = {}
        self._frames = 0
        self._duplicates = 0
        self._gaps = 0
        self._last_heartbeat = ""
        # Live display: one lock serialises state changes, console output and redraws,
        # which happen on the caller's thread and on the refresh thread.
        self._lock = threading.Lock()
        self._live: Live | None = None
        self._refresher: threading.Thread | None = None
        self._dirty = threading.Event()
        self._stopping = threading.Event()
        self._last_refresh = 0.0
        self._closed = False

    # --- public API ---------------------------------------------------------------------

    @property
    def is_live(self) -> bool:
        return self._live_wanted

    @property
    def positions(self) -> dict[PositionKey, PositionRow]:
        """A copy of the open positions, keyed by (strategy, symbol)."""
        with self._lock:
            return dict(self._positions)

    def expect_subscriptions(self, keys: Iterable[SubscriptionKey]) -> None:
        """Count ``keys`` in the footer's total before the server has answered for them."""
        with self._lock:
            for key in keys:
                self._subscriptions.setdefault(key, _PENDING)
        self._changed()

    def status_text(self) -> str:
        """The footer line: connection, subscriptions, message counts, last heartbeat."""
        with self._lock:
            return "".join(text for text, _ in self._status_parts())

    def handle(self, event: Event) -> None:
        if self._live_wanted and self._live is None and not self._closed:
            self._start_live()
        with self._lock:
            if isinstance(event, _FRAME_EVENTS):
                self._frames += 1
            self._dispatch(event)
        self._changed()

    def flush(self) -> None:
        """Lines are printed as they are handled; the live region refreshes on its own."""

    def close(self) -> None:
        """Stop the live display (its last frame stays on screen), or, when not live,
        print the final positions table once.  Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._live is not None:
            self._stopping.set()
            self._dirty.set()
            if self._refresher is not None:
                self._refresher.join()
            with self._lock:
                self._print_pending_lines()
                self._live.update(self._live_view())
                self._live.stop()
            self._live = None
        elif self._positions_seen:
            with self._lock:
                self._console.print(self._positions_table())

    def __enter__(self) -> TableRenderer:
        if self._live_wanted and self._live is None and not self._closed:
            self._start_live()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- events (called with the lock held) ------------------------------------------------

    def _dispatch(self, event: Event) -> None:
        match event:
            case StreamMessage(key=key, message=message):
                if message.msg_type == spec.CHANNEL_SIGNAL:
                    self._on_signal(key, message)
                elif message.msg_type == spec.CHANNEL_POSITIONS:
                    self._on_positions(key, message)
            case Connected(shard=shard):
                self._connections_up.add(shard)
                self._ever_connected = True
                self._reconnecting = False
            case ConnectionEnded(shard=shard):
                self._connections_up.discard(shard)
                if not self._connections_up:
                    self._disconnect()
            case Reconnecting():
                self._reconnecting = True
            case SubscriptionConfirmed(key=key):
                self._subscriptions[key] = _ACTIVE
            case SubscriptionRejected(key=key):
                self._subscriptions[key] = _REJECTED
            case Unsubscribed(key=key):
                self._subscriptions[key] = _UNSUBSCRIBED
            case DuplicateDropped():
                self._duplicates += 1
            case HeartbeatAnswered(message=message):
                self._last_heartbeat = self._time_of(message)
            case GapReported():
                self._gaps += 1
                self._on_gap(event)
            case SequenceJump():
                self._on_jump(event)
            case _:
                pass  # errors and unknown messages are reported on stderr elsewhere

    def _disconnect(self) -> None:
        # The server forgets a dead connection's subscriptions; they are renewed on reconnect.
        for key, state in self._subscriptions.items():
            if state == _ACTIVE:
                self._subscriptions[key] = _PENDING

    def _on_signal(self, key: SubscriptionKey | None, message: Envelope) -> None:
        signal = fields.signal_fields(message.payload)
        cells: dict[str, Cell] = {
            "time": (self._time_of(message), None),
            "strategy": (self._strategy_label(signal.strategy_name, signal.strategy_id, key), None),
            "seq": ("" if message.seq_id is None else str(message.seq_id), None),
            "side": (signal.side, SIDE_STYLES.get(signal.side)),
            "open_close": (signal.open_close, None),
            "quantity": (signal.quantity, None),
            "symbol": (signal.symbol, None),
            "order_type": (signal.order_type, None),
            "price": (signal.price, None),
            "tif": (signal.tif, None),
            "status": (signal.status, "red" if signal.status in ATTENTION_STATUSES else None),
            "signal_id": (signal.signal_id, None),
        }
        layout = self._signals()
        self._emit_signal_line(layout.line(cells))

    def _on_gap(self, gap: GapReported) -> None:
        after = "?" if gap.last_seq is None else str(gap.last_seq)
        hole = (f"signals after seq {after}" if gap.next_seq is None
                else f"signals between seq {after} and {gap.next_seq}")
        reason = fields.sanitize(gap.text, 200)
        message = f"GAP: {hole} are missing" + (f" ({reason})" if reason else "")
        strategy = "" if gap.strategy_id is None else str(gap.strategy_id)
        self._emit_banner(gap.message, strategy, message, GAP_STYLE)

    def _on_jump(self, jump: SequenceJump) -> None:
        message = (
            f"JUMP: seq {jump.expected} expected, {jump.received} received: signals may be missing"
        )
        self._emit_banner(None, str(jump.key.strategy_id), message, JUMP_STYLE)

    def _emit_banner(self, message: Envelope | None, strategy: str, text: str, style: str) -> None:
        time_text = self._time_of(message) if message is not None else self._arrival_time()
        leading: dict[str, Cell] = {"time": (time_text, None), "strategy": (strategy, None)}
        self._emit_signal_line(self._signals().banner(leading, text, style))

    def _emit_signal_line(self, line: Text) -> None:
        if self._recent_signals is not None and self._live is not None:
            self._recent_signals.append(line)
            return
        lines = [line]
        if not self._signal_header_printed:
            lines.insert(0, self._signals().header())
            self._signal_header_printed = True
        if self._live is None:
            for each in lines:
                self._print_line(each)
            return
        # Every line printed above a live region redraws the region, so lines wait for
        # the next refresh and a burst is printed at once; a stalled refresh (slow
        # terminal) is caught up here rather than letting the backlog grow.
        self._pending_lines.extend(lines)
        if len(self._pending_lines) >= MAX_PENDING_LINES:
            self._print_pending_lines()

    def _print_line(self, line: Text) -> None:
        # soft_wrap: the line already fits the width, so rich's wrapping pass is skipped.
        self._console.print(line, soft_wrap=True)

    def _print_pending_lines(self) -> None:
        lines, self._pending_lines = self._pending_lines, []
        if lines:
            self._print_line(Text("\n").join(lines))

    def _on_positions(self, key: SubscriptionKey | None, message: Envelope) -> None:
        updated = self._time_of(message)
        for position in fields.position_fields(message.payload):
            self._positions_seen = True
            strategy_id = position.strategy_id
            if strategy_id is None and key is not None:
                strategy_id = key.strategy_id
            label = self._strategy_label(position.strategy_name, strategy_id, None)
            row = PositionRow(
                strategy=label,
                symbol=position.symbol,
                quantity=position.quantity,
                quantity_text=position.quantity_text,
                avg_price=position.avg_price,
                currency=position.currency,
                updated=updated,
            )
            row_key = (str(strategy_id) if strategy_id is not None else label, row.symbol)
            # Re-inserting keeps the dict ordered by last update, oldest first, for eviction.
            self._positions.pop(row_key, None)
            if not row.is_flat:
                self._positions[row_key] = row
                if len(self._positions) > MAX_POSITION_ROWS:
                    del self._positions[next(iter(self._positions))]
            if self._live is None:
                self._print_position_line(row)

    def _print_position_line(self, row: PositionRow) -> None:
        """One update, in the signal columns so a mixed log stays aligned: "Pos" in the
        Side column, the signed net quantity under Qty, the average price after Symbol."""
        leading: dict[str, Cell] = {
            "time": (row.updated, None),
            "strategy": (row.strategy, None),
            "seq": ("", None),
            "side": (POSITION_MARK, POSITION_STYLE),
            "open_close": ("", None),
            "quantity": _quantity_cell(row),
            "symbol": (row.symbol, None),
        }
        if row.is_flat:
            detail = "flat"
        else:
            detail = " ".join(part for part in ("avg", row.avg_price, row.currency) if part)
        self._emit_signal_line(self._signals().banner(leading, detail, POSITION_STYLE))

    # --- helpers ------------------------------------------------------------------------------

    def _signals(self) -> LineLayout:
        """The signal layout for the console's current width (re-headed when it changes)."""
        width = self._console.width
        if self._signal_layout is None or self._signal_layout.console_width != width:
            self._signal_layout = LineLayout(SIGNAL_COLUMNS, width)
            self._signal_header_printed = False
        return self._signal_layout

    def _time_of(self, message: Envelope) -> str:
        return fields.clock_time(message.timestamp, self._clock())

    def _arrival_time(self) -> str:
        return fields.clock_time(None, self._clock())

    @staticmethod
    def _strategy_label(name: str, strategy_id: int | None, key: SubscriptionKey | None) -> str:
        if name:
            return name
        if strategy_id is not None:
            return str(strategy_id)
        return str(key.strategy_id) if key is not None else ""

    def _status_parts(self) -> list[Cell]:
        states = list(self._subscriptions.values())
        active = states.count(_ACTIVE)
        rejected = states.count(_REJECTED)
        parts: list[Cell] = [
            ("connected: ", None),
            self._connection_cell(),
            (f" | subscriptions: {active}/{len(states)} active", None),
        ]
        if rejected:
            parts.append((f", {rejected} rejected", "red"))
        parts.append((f" | messages: {self._frames}", None))
        parts.append((f" | last heartbeat: {self._last_heartbeat or '-'}", None))
        parts.append((f" | duplicates dropped: {self._duplicates}", None))
        if self._gaps:
            parts.append((f" | gaps: {self._gaps}", GAP_STYLE))
        return parts

    def _connection_cell(self) -> Cell:
        if self._connections_up:
            return ("yes", "green")
        return ("reconnecting", "bold yellow") if self._reconnecting else ("no", "bold red")

    def _positions_table(self) -> Table:
        stale = self._positions_seen and self._ever_connected and not self._connections_up
        table = Table(
            # Positions are not replayed: while disconnected, updates may be missed.
            title="Positions (stale: disconnected)" if stale else "Positions",
            title_justify="left",
            title_style=HEADER_STYLE,
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            caption=None if self._positions else "no open positions",
            caption_justify="left",
        )
        table.add_column("Strategy", no_wrap=True, overflow="ellipsis", max_width=32)
        table.add_column("Symbol", no_wrap=True, overflow="ellipsis", max_width=24)
        table.add_column("Qty", justify="right", no_wrap=True)
        table.add_column("Avg price", justify="right", no_wrap=True)
        table.add_column("Currency", no_wrap=True, max_width=10)
        table.add_column("Updated", no_wrap=True)
        for row in sorted(self._positions.values(), key=_position_order):
            quantity_text, quantity_style = _quantity_cell(row)
            table.add_row(
                Text(row.strategy),
                Text(row.symbol),
                Text(quantity_text, quantity_style or ""),
                Text(row.avg_price),
                Text(row.currency),
                Text(row.updated),
            )
        return table

    # --- live display ---------------------------------------------------------------------------

    def _live_view(self) -> RenderableType:
        parts: list[RenderableType] = []
        if self._recent_signals is not None:
            layout = self._signals()
            parts.append(layout.header())
            parts.extend(self._recent_signals)
            parts.append(Text())
        parts.append(self._positions_table())
        footer = Text(no_wrap=True, overflow="ellipsis")
        for text, style in self._status_parts():
            footer.append(text, style)
        parts.append(footer)
        return _RenderedOnce(Group(*parts))

    def _start_live(self) -> None:
        console_is_stdout = self._console.file is sys.stdout
        live = Live(
            console=self._console,
            auto_refresh=False,
            transient=False,
            # Other modules' prints then land above the region instead of tearing it;
            # only when the region is on stdout, and stderr on the same kind of device.
            redirect_stdout=console_is_stdout,
            redirect_stderr=console_is_stdout and sys.stderr.isatty(),
        )
        with self._lock:
            live.update(self._live_view())
            live.start(refresh=True)
            self._live = live
            self._last_refresh = time.monotonic()
        self._refresher = threading.Thread(
            target=self._refresh_when_dirty, name="c2ws-table-refresh", daemon=True
        )
        self._refresher.start()

    def _changed(self) -> None:
        if self._live is not None:
            self._dirty.set()

    def _refresh_when_dirty(self) -> None:
        """Redraw the live region after changes, at most every REFRESH_INTERVAL_SECONDS."""
        while True:
            self._dirty.wait()
            if self._stopping.is_set():
                return
            wait = self._last_refresh + REFRESH_INTERVAL_SECONDS - time.monotonic()
            if wait > 0 and self._stopping.wait(wait):
                return
            self._dirty.clear()
            with self._lock:
                live = self._live
                if live is None:
                    return
                self._print_pending_lines()
                live.update(self._live_view(), refresh=True)
                self._last_refresh = time.monotonic()


def _quantity_cell(row: PositionRow) -> Cell:
    short = row.quantity is not None and row.quantity < 0
    return row.quantity_text, SHORT_STYLE if short else None


def _position_order(row: PositionRow) -> tuple[str, str]:
    return row.strategy.casefold(), row.symbol.casefold()
