"""The human-facing renderer: signals scroll by, positions update in place.

c2ws runs for days, so nothing here grows with the number of messages:

* Each signal is one fixed-width line in the terminal's scrollback (the header once
  before the first, again when the layout changes; a date line before the first line of
  each day); no row is kept.
* Positions are a dict keyed by (strategy, symbol), bounded by the distinct keys.  On a
  terminal they are a ``rich.live.Live`` region (positions table and a status footer)
  redrawn at most ``REFRESH_INTERVAL_SECONDS`` apart by a background thread, so a burst
  of updates costs one redraw; the region takes at most half the terminal's height, so
  new signals stay visible above it (all of it but a line when no signal is expected or
  seen: positions only).  Off a terminal each update is printed as one line and the
  final table once, at :meth:`TableRenderer.close`.
* A terminal that is resized rewraps what it shows, the live region too: the region's
  old lines may take more rows than rich drew.  The next redraw (the width is checked
  every ``RESIZE_CHECK_SECONDS``) erases those rows as well, so no part of the old region
  stays behind in the scrollback (see :func:`c2ws.render.consoles.rewraps_on_resize`).
* While live, every line meant for the scrollback (signals, and messages handed to
  :meth:`TableRenderer.print_message`) waits for the next redraw and is printed above
  the region then, in order, so nothing is overwritten.  The newest signals first stay
  in the region for ``highlight_seconds``, highlighted, then move to the scrollback.
* Flat positions (quantity 0) are removed from the table: it shows what is open.  The
  update that closed one is still printed as a line ("flat") when not live.

Numbers are never cut: a number wider than its column widens the column (lower-priority
columns make room or are dropped).  Text (strategy names, symbols) is abbreviated.

Every server-supplied string goes through :mod:`c2ws.render.fields` (control sequences
removed, length capped) and into ``rich.text.Text``, never into console markup.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from types import TracebackType
from typing import Final

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.control import Control
from rich.live import Live
from rich.segment import ControlType, Segment, SegmentLines
from rich.table import Table
from rich.text import Text

from c2ws import spec
from c2ws.events import (
    Connected,
    ConnectionEnded,
    DuplicateDropped,
    Event,
    GapReported,
    HeartbeatAnswered,
    PositionsSnapshot,
    Reconnecting,
    SequenceJump,
    SequenceReset,
    StreamMessage,
    StreamRun,
    SubscriptionConfirmed,
    SubscriptionKey,
    SubscriptionRejected,
    SubscriptionsChanged,
    Unsubscribed,
)
from c2ws.protocol import Envelope, MalformedMessage, decode, parse_timestamp
from c2ws.render import fields
from c2ws.render.clock import DisplayZone, day_banner
from c2ws.render.consoles import rewrapped_rows, rewraps_on_resize, same_terminal
from c2ws.render.layout import (
    HEADER_STYLE,
    SIGNAL_COLUMNS,
    Cell,
    LineLayout,
    fit,
    fit_position_columns,
)
from c2ws.stream_head import read_stream_head

REFRESH_INTERVAL_SECONDS: Final = 0.1
# Lines held for the next live refresh before they are printed regardless.
MAX_PENDING_LINES: Final = 1000
# Signals formatted per redraw, at most: a terminal cannot show more to anyone.
MAX_SIGNALS_PER_REFRESH: Final = 200
# A hostile or buggy feed could name endless distinct symbols; the least recently
# updated position is forgotten beyond this many.
MAX_POSITION_ROWS: Final = 10_000
# How long a new signal stays highlighted in the live region, and how many may.
HIGHLIGHT_SECONDS: Final = 2.0
MAX_FRESH_LINES: Final = 3
# The live region takes at most this share of the terminal's height (the rest shows the
# latest signals), but always room for a few positions.
LIVE_HEIGHT_SHARE: Final = 0.5
MIN_POSITION_ROWS: Final = 3
# Positions only: the region takes the whole height but this many lines, which show the
# latest message printed above it.
POSITIONS_ONLY_FREE_LINES: Final = 1
# Lines of the positions table besides its rows: its header and the rule under it.
_TABLE_HEADER_LINES: Final = 2
# How often an idle live region checks whether the terminal was resized.
RESIZE_CHECK_SECONDS: Final = 0.25

SIDE_STYLES: Final = {"Buy": "bold green", "Sell": "bold red"}
SHORT_STYLE: Final = "red"
GAP_STYLE: Final = "bold red"
JUMP_STYLE: Final = "yellow"
DATE_STYLE: Final = "bold cyan"
STALE_STYLE: Final = "dim"
HIGHLIGHT_STYLE: Final = "reverse"
NOTE_STYLE: Final = "dim"
POSITION_MARK: Final = "Pos"
POSITION_STYLE: Final = "cyan"
ATTENTION_STATUSES: Final = frozenset({"Rejected"})
# Long status names, as a narrow Status column shows them.
SHORT_STATUSES: Final = {
    "Partially filled": "Part fill",
    "Pending Cancel": "Pend cncl",
    "Pending Replace": "Pend repl",
    "PendingNew": "Pend new",
}


class _RenderedOnce:
    """Renders its content once per width and replays the lines afterwards.

    Rich redraws the live region below every line printed above it; replaying cached
    lines keeps a burst of lines from re-rendering the positions table.  ``drawn``: the
    width last rendered at and the length of each line, in cells (what a resized terminal
    rewraps; a region taller than the terminal is cut to its height by rich).
    """

    def __init__(self, renderable: RenderableType) -> None:
        self._renderable = renderable
        self._width = -1
        self._lines: list[list[Segment]] = []
        self.drawn: tuple[int, list[int]] | None = None

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if options.max_width != self._width:
            self._lines = console.render_lines(self._renderable, options, pad=False)
            self._width = options.max_width
            lengths = [Segment.get_line_length(line) for line in self._lines]
            height = options.size.height
            if len(lengths) > height:  # rich shows the first lines and "..."
                lengths = [*lengths[: height - 1], 3]
            self.drawn = (self._width, lengths)
        yield SegmentLines(self._lines, new_lines=True)


# The Updated cell of a position from a REST snapshot (issue 24), before its time.
SNAPSHOT_MARK: Final = "snap "

# --- state ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PositionRow:
    strategy: str  # the strategy's name when the payload gives one, else its id
    symbol: str
    quantity: int | float | None
    quantity_text: str
    avg_price: str
    currency: str
    updated_at: float  # epoch seconds
    # From a REST snapshot (issue 24), shown as such until a live update replaces it.
    snapshot: bool = False

    @property
    def is_flat(self) -> bool:
        return self.quantity == 0


PositionKey = tuple[str, str]  # (strategy id, or name when the payload has no id; symbol)

_ACTIVE: Final = "active"
_PENDING: Final = "pending"
_REJECTED: Final = "rejected"
_UNSUBSCRIBED: Final = "unsubscribed"

@dataclass(slots=True)
class _Pending:
    """A line waiting for the next refresh to go above the live region; a new signal
    stays in the region, highlighted, until ``fresh_until`` (monotonic seconds)."""

    line: Text
    fresh_until: float = 0.0


class TableRenderer:
    """Renders session events as tables on a rich console.

    ``live=None`` uses a live region exactly when the console is a terminal.
    ``max_signal_rows``: when live, show only the latest that many signals inside the
    live region (a fixed-height dashboard) instead of printing them to the scrollback.
    Ignored when not live.  ``clock`` gives the arrival time shown for messages whose
    envelope has no usable timestamp.  ``zone``: where times are shown (UTC by default).
    ``highlight_seconds``: how long a new signal stays highlighted in the live region
    (0: not at all).  ``rewraps``: whether the terminal rewraps its lines when resized
    (None: guessed from the environment).
    """

    def __init__(
        self,
        console: Console,
        *,
        live: bool | None = None,
        max_signal_rows: int | None = None,
        clock: Callable[[], float] = time.time,
        zone: DisplayZone | None = None,
        highlight_seconds: float = HIGHLIGHT_SECONDS,
        rewraps: bool | None = None,
    ) -> None:
        self._console = console
        self._live_wanted = console.is_terminal if live is None else live
        self._clock = clock
        self._zone = zone or DisplayZone.utc()
        self._highlight_seconds = highlight_seconds if self._live_wanted else 0.0
        self._recent_signals: deque[Text] | None = None
        self._pending: deque[_Pending] = deque()
        if self._live_wanted and max_signal_rows is not None:
            self._recent_signals = deque(maxlen=max(max_signal_rows, 1))
        self._signal_layout: LineLayout | None = None
        self._signal_header_printed = False
        self._number_widths: dict[str, int] = {}
        # A terminal shows today's date elsewhere; a log gets the date before its first line.
        started = clock()
        self._day: dt.date | None = self._zone.day(started) if self._live_wanted else None
        self._positions: dict[PositionKey, PositionRow] = {}
        self._positions_seen = False
        self._snapshot_at: float | None = None  # the last REST snapshot (issue 24)
        # Status footer and what the positions can be trusted for.
        self._connections_up: set[int] = set()
        self._since: float | None = None  # first connection: positions are updates since
        self._down_since: float | None = None  # every connection down, after being up
        self._connections_total = 1
        self._outage: tuple[float, float] | None = None  # the last time all were down
        self._reconnecting = False
        self._ended_at: float | None = None
        # When the run ended, if not now (close()): with --record, the time of the last
        # line recorded, which is what a replay of the recording ends at.
        self.ended_clock: Callable[[], float] | None = None
        self._subscriptions: dict[SubscriptionKey, str] = {}
        # Signal and position messages handled (what --count counts): the footer's "msgs".
        self._messages = 0
        # Until signals are subscribed to or seen, the positions take the whole region.
        self._signals_expected = False
        self._duplicates = 0
        self._gaps = 0
        self._last_heartbeat: float | None = None
        # Live display: one lock serialises state changes, console output and redraws,
        # which happen on the caller's thread and on the refresh thread.
        self._lock = threading.Lock()
        self._live: Live | None = None
        self._refresher: threading.Thread | None = None
        self._dirty = threading.Event()
        self._stopping = threading.Event()
        self._last_refresh = 0.0
        self._closed = False
        # The live region as last drawn, and whether the terminal rewraps it on a resize.
        self._view: _RenderedOnce | None = None
        self._rewraps = rewraps_on_resize(os.environ) if rewraps is None else rewraps
        # Live: signals wait here, unformatted, for the next redraw (a burst costs no
        # formatting per message); past MAX_SIGNALS_PER_REFRESH only the newest are kept
        # and the rest counted.
        # A signal of a run is kept as its frame, decoded only if it is shown.
        self._unformatted: deque[tuple[SubscriptionKey | None, Envelope | bytes]] = deque(
            maxlen=MAX_SIGNALS_PER_REFRESH
        )
        self._not_shown = 0

    # --- public API ---------------------------------------------------------------------

    @property
    def is_live(self) -> bool:
        return self._live_wanted

    @property
    def zone(self) -> DisplayZone:
        return self._zone

    @property
    def positions(self) -> dict[PositionKey, PositionRow]:
        """A copy of the open positions, keyed by (strategy, symbol)."""
        with self._lock:
            return dict(self._positions)

    def expect_subscriptions(
        self, keys: Iterable[SubscriptionKey], *, connections: int = 1
    ) -> None:
        """Count ``keys`` in the footer's total before the server has answered for them;
        ``connections``: how many connections carry them (the footer says how many are up
        when that is more than one, so one that keeps failing is seen)."""
        with self._lock:
            self._connections_total = connections
            for key in keys:
                self._subscriptions.setdefault(key, _PENDING)
                if key.channel == spec.CHANNEL_SIGNAL:
                    self._signals_expected = True
        self._changed()

    def status_text(self) -> str:
        """The footer line: connection, subscriptions, message counts, last heartbeat."""
        with self._lock:
            return _STATUS_SEPARATOR.join(
                "".join(text for text, _ in item) for item in self._status_items()
            )

    def handle(self, event: Event) -> None:
        self._ensure_live()
        if (
            self._live is not None
            and type(event) is StreamMessage
            and event.message.msg_type == spec.CHANNEL_SIGNAL
        ):
            with self._lock:
                self._messages += 1
                self._signals_expected = True
                if len(self._unformatted) == MAX_SIGNALS_PER_REFRESH:
                    self._not_shown += 1
                self._unformatted.append((event.key, event.message))
            self._dirty.set()
            return
        with self._lock:
            self._format_waiting_signals()
            if type(event) is StreamMessage and event.message.msg_type in spec.STREAM_MSG_TYPES:
                self._messages += 1
            self._dispatch(event)
        self._changed()

    def handle_events(self, events: Sequence[Event]) -> None:
        """A batch of stream messages as the session handed it over, where a burst of one
        stream may be one :class:`~c2ws.events.StreamRun` of frames not decoded (the CLI
        passes frames through to the table).  Live, a run of signals is counted and only
        its newest frames are kept for the next redraw, which decodes the ones it shows
        (at most MAX_SIGNALS_PER_REFRESH): the same lines as :meth:`handle` of each
        message, without decoding or an event per message.  Anything else, message by
        message."""
        handle = self.handle
        for event in events:
            if type(event) is not StreamRun:
                handle(event)
                continue
            self._ensure_live()
            if self._live is None or event.key.channel != spec.CHANNEL_SIGNAL:
                for message in event.messages():
                    handle(message)
                continue
            frames = event.frames
            key = event.key
            with self._lock:
                self._messages += len(frames)
                self._signals_expected = True
                waiting = self._unformatted
                # handle() counts each message that pushes the oldest out of the deque.
                pushed_out = len(waiting) + len(frames) - MAX_SIGNALS_PER_REFRESH
                if pushed_out > 0:
                    self._not_shown += pushed_out
                waiting.extend([(key, frame) for frame in frames[-MAX_SIGNALS_PER_REFRESH:]])
            self._dirty.set()

    def print_message(self, line: Text) -> None:
        """A message for the person (a diagnostic): above the live region while there is
        one, in order with the signal lines, so a redraw never overwrites it."""
        self._ensure_live()
        with self._lock:
            self._format_waiting_signals()  # what came before the message shows before it
            self._emit_line(line, scroll_only=True)
        self._changed()

    def flush(self) -> None:
        """Lines are printed as they are handled; the live region refreshes on its own."""

    def close(self) -> None:
        """The run is over: the last frame says so (no connection, no subscription) and
        stays on screen; when not live, the final positions table is printed once.
        Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            self._ended_at = (self.ended_clock or self._clock)()
            if self._connections_up:
                self._connections_up.clear()
                self._disconnect()
            for key, state in self._subscriptions.items():
                if state == _PENDING:
                    self._subscriptions[key] = _UNSUBSCRIBED
            self._reconnecting = False
        if self._live is not None:
            self._stopping.set()
            self._dirty.set()
            if self._refresher is not None:
                self._refresher.join()
            with self._lock:
                self._erase_rewrapped_rows()
                self._format_waiting_signals()
                self._print_pending(everything=True)
                self._view = self._live_view()
                self._live.update(self._view)
                self._live.stop()
            self._live = None
        elif self._positions_seen:
            with self._lock:
                self._console.print(self._positions_view(room=None))

    def __enter__(self) -> TableRenderer:
        self._ensure_live()
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
                    self._signals_expected = True
                    self._on_signal(key, message)
                elif message.msg_type == spec.CHANNEL_POSITIONS:
                    self._on_positions(key, message)
            case Connected(shard=shard):
                now = self._clock()
                self._connections_up.add(shard)
                if self._since is None:
                    self._since = now
                if self._down_since is not None:
                    self._outage = (self._down_since, now)
                    self._down_since = None
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
                if key in self._subscriptions:  # not one taken out by a change
                    self._subscriptions[key] = _UNSUBSCRIBED
            case SubscriptionsChanged(added=added, removed=removed, plan=plan):
                # --strategies-file: the footer counts what the run follows now.
                self._connections_total = len(plan)
                for key in removed:
                    self._subscriptions.pop(key, None)
                for key in added:
                    self._subscriptions[key] = _PENDING
                    self._signals_expected |= key.channel == spec.CHANNEL_SIGNAL
            case DuplicateDropped():
                self._duplicates += 1
            case HeartbeatAnswered(message=message):
                self._last_heartbeat = self._epoch_of(message)
            case GapReported():
                self._gaps += 1
                self._on_gap(event)
            case SequenceJump():
                self._on_jump(event)
            case SequenceReset():
                self._on_reset(event)
            case PositionsSnapshot():
                self._on_snapshot(event)
            case _:
                pass  # errors and unknown messages are reported on stderr elsewhere

    def _disconnect(self) -> None:
        if self._since is not None and self._down_since is None:
            self._down_since = self._clock()
        # The server forgets a dead connection's subscriptions; they are renewed on reconnect.
        for key, state in self._subscriptions.items():
            if state == _ACTIVE:
                self._subscriptions[key] = _PENDING

    def _on_signal(self, key: SubscriptionKey | None, frame: Envelope | bytes) -> None:
        message = _decoded(frame)
        if message is None:
            return
        signal = fields.signal_fields(message.payload)
        epoch = self._epoch_of(message)
        cells: dict[str, Cell] = {
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
        layout = self._layout_for(cells)
        status_width = layout.width_of("status")
        if status_width is not None and len(signal.status) > status_width:
            cells["status"] = (SHORT_STATUSES.get(signal.status, signal.status), cells["status"][1])
        cells["time"] = (self._time_cell(epoch), None)
        self._emit_line(layout.line(cells), fresh=True)

    def _on_gap(self, gap: GapReported) -> None:
        after = "?" if gap.last_seq is None else str(gap.last_seq)
        hole = (f"signals after seq {after}" if gap.next_seq is None
                else f"signals between seq {after} and {gap.next_seq}")
        reason = fields.sanitize(gap.text, 200)
        message = f"GAP: {hole} are missing" + (f" ({reason})" if reason else "")
        strategy = "" if gap.strategy_id is None else str(gap.strategy_id)
        self._emit_banner(self._epoch_of(gap.message), strategy, message, GAP_STYLE)

    def _on_reset(self, reset: SequenceReset) -> None:
        message = (f"RESET: the server restarted its numbering: seq {reset.next_seq} came "
                   f"after {reset.last_seq}; following the new numbering")
        epoch = fields.epoch_of(reset.next_timestamp, self._clock())
        self._emit_banner(epoch, str(reset.key.strategy_id), message, GAP_STYLE)

    def _on_jump(self, jump: SequenceJump) -> None:
        message = (
            f"JUMP: seq {jump.expected} expected, {jump.received} received: signals may be missing"
        )
        self._emit_banner(self._clock(), str(jump.key.strategy_id), message, JUMP_STYLE)

    def _emit_banner(self, epoch: float, strategy: str, text: str, style: str) -> None:
        layout = self._signals()
        leading: dict[str, Cell] = {"strategy": (strategy, None)}
        leading["time"] = (self._time_cell(epoch), None)
        self._emit_line(layout.banner(leading, text, style))

    def _emit_line(self, line: Text, *, fresh: bool = False, scroll_only: bool = False) -> None:
        """Print ``line`` above the live region (or just print it when not live).
        ``scroll_only``: a message, never part of the header/date bookkeeping."""
        if self._recent_signals is not None and self._live is not None and not scroll_only:
            self._recent_signals.append(line)
            return
        if self._live is None:
            self._print_line(line)
            return
        until = time.monotonic() + self._highlight_seconds if fresh else 0.0
        self._pending.append(_Pending(line, until))
        if len(self._pending) >= MAX_PENDING_LINES:
            # A stalled refresh (slow terminal) is caught up here rather than letting the
            # backlog grow.
            self._print_pending(everything=True)

    def _print_line(self, line: Text) -> None:
        # soft_wrap: the line already fits the width, so rich's wrapping pass is skipped.
        self._console.print(line, soft_wrap=True)

    def _format_waiting_signals(self) -> None:
        """Turn the signals waiting since the last redraw into lines (lock held)."""
        if self._not_shown:
            skipped, self._not_shown = self._not_shown, 0
            self._emit_banner(
                self._clock(), "", f"{skipped} more signals came faster than a terminal can "
                "show them (-o ndjson writes every one)", JUMP_STYLE,
            )
        waiting = self._unformatted
        while waiting:
            key, message = waiting.popleft()
            self._on_signal(key, message)

    def _print_pending(self, *, everything: bool = False) -> None:
        """Print the waiting lines above the live region, in order, up to the first that
        is still fresh (unless ``everything``); at most MAX_FRESH_LINES stay."""
        now = time.monotonic()
        lines: list[Text] = []
        pending = self._pending
        while pending and (
            everything or pending[0].fresh_until <= now or len(pending) > MAX_FRESH_LINES
        ):
            lines.append(pending.popleft().line)
        if lines:
            self._print_line(Text("\n").join(lines))

    def _on_positions(self, key: SubscriptionKey | None, frame: Envelope) -> None:
        message = _decoded(frame)
        if message is None:
            return
        updated = self._epoch_of(message)
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
                updated_at=updated,
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

    def _on_snapshot(self, snapshot: PositionsSnapshot) -> None:
        """The REST snapshot of a strategy's open positions (issue 24): it replaces that
        strategy's rows, each marked as a snapshot with its time until a live update
        replaces it."""
        taken = parse_timestamp(snapshot.taken_at)
        epoch = taken if taken is not None else self._clock()
        strategy = str(snapshot.strategy_id)
        for row_key in [k for k in self._positions if k[0] == strategy]:
            del self._positions[row_key]
        self._positions_seen = True
        self._snapshot_at = epoch
        for payload in snapshot.positions:
            for position in fields.position_fields(payload):
                label = self._strategy_label(position.strategy_name, snapshot.strategy_id, None)
                row = PositionRow(
                    strategy=label, symbol=position.symbol, quantity=position.quantity,
                    quantity_text=position.quantity_text, avg_price=position.avg_price,
                    currency=position.currency, updated_at=epoch, snapshot=True,
                )
                if row.is_flat:
                    continue
                self._positions[(strategy, row.symbol)] = row
                if len(self._positions) > MAX_POSITION_ROWS:
                    del self._positions[next(iter(self._positions))]
                if self._live is None:
                    self._print_position_line(row)

    def _print_position_line(self, row: PositionRow) -> None:
        """One update, in the signal columns so a mixed log stays aligned: "Pos" in the
        Side column, the signed net quantity under Qty, the average price after Symbol."""
        leading: dict[str, Cell] = {
            "strategy": (row.strategy, None),
            "seq": ("", None),
            "side": (POSITION_MARK, POSITION_STYLE),
            "open_close": ("", None),
            "quantity": _quantity_cell(row),
            "symbol": (row.symbol, None),
        }
        layout = self._layout_for(leading)
        leading["time"] = (self._time_cell(row.updated_at), None)
        if row.is_flat:
            detail = "flat"
        else:
            detail = " ".join(part for part in ("avg", row.avg_price, row.currency) if part)
        self._emit_line(layout.banner(leading, detail, POSITION_STYLE))

    # --- helpers ------------------------------------------------------------------------------

    def _signals(self) -> LineLayout:
        """The signal layout for the console's current width (re-headed when it changes)."""
        width = self._console.width
        layout = self._signal_layout
        stale = layout is None or layout.console_width != width
        if stale or layout is None or layout.minimums != self._number_widths:
            zone = self._zone.abbreviation(self._clock())
            layout = LineLayout(SIGNAL_COLUMNS, width, minimums=self._number_widths,
                                headers={"time": f"Time {zone}"})
            self._signal_layout = layout
            self._signal_header_printed = False
        return layout

    def _layout_for(self, cells: Mapping[str, Cell]) -> LineLayout:
        """The layout, widened first when one of ``cells``' numbers needs more room."""
        layout = self._signals()
        needed = layout.needs_room(cells)
        if needed:
            for name, size in needed.items():
                self._number_widths[name] = min(size, self._console.width)
            layout = self._signals()
        return layout

    def _time_cell(self, epoch: float) -> str:
        """The time column's text; before it, the header and (on a new day) the date line
        are printed when due."""
        instant = self._zone.at(epoch)
        day = instant.date()
        if day != self._day:
            self._day = day
            self._emit_line(Text(f"── {day_banner(day)} ──", style=DATE_STYLE))
        if not self._signal_header_printed:
            layout = self._signals()
            self._signal_header_printed = True
            if self._recent_signals is None or self._live is None:  # the dashboard has its own
                self._emit_line(layout.header())
        return instant.strftime("%H:%M:%S")

    def _epoch_of(self, message: Envelope) -> float:
        return fields.epoch_of(message.timestamp, self._clock())

    def _moment(self, epoch: float) -> str:
        """A time in the footer or positions table (with the date when not today)."""
        return self._zone.moment(epoch, self._zone.day(self._clock()))

    @staticmethod
    def _strategy_label(name: str, strategy_id: int | None, key: SubscriptionKey | None) -> str:
        if name:
            return name
        if strategy_id is not None:
            return str(strategy_id)
        return str(key.strategy_id) if key is not None else ""

    def _status_items(self, compact: bool = False) -> list[list[Cell]]:
        """The footer's items (each one or more styled pieces), to be joined by " | "."""
        states = list(self._subscriptions.values())
        active = states.count(_ACTIVE)
        rejected = states.count(_REJECTED)
        heartbeat = "-" if self._last_heartbeat is None else self._moment(self._last_heartbeat)
        rejections: list[Cell] = [(f", {rejected} rejected", "red")] if rejected else []
        if compact:
            items: list[list[Cell]] = [
                [("conn ", None), self._connection_cell()],
                [(f"subs {active}/{len(states)}", None), *rejections],
                [(f"msgs {self._messages}", None)],
                [(f"hb {heartbeat}", None)],
                [(f"dups {self._duplicates}", None)],
            ]
            if self._gaps:
                items.append([(f"gaps {self._gaps}", GAP_STYLE)])
            return items
        items = [
            [("connected: ", None), self._connection_cell()],
            [(f"subscriptions: {active}/{len(states)} active", None), *rejections],
            [(f"messages: {self._messages}", None)],
            [(f"last heartbeat: {heartbeat}", None)],
            [(f"duplicates dropped: {self._duplicates}", None)],
        ]
        if self._gaps:
            items.append([(f"gaps: {self._gaps}", GAP_STYLE)])
        return items

    def _footer(self, width: int) -> list[Text]:
        """The footer in one line, compact when the full one is too wide, and over several
        lines (never inside an item) when even that is too wide."""
        items = self._status_items()
        if _items_width(items) > width:
            items = self._status_items(compact=True)
        lines: list[list[list[Cell]]] = [[]]
        for item in items:
            if lines[-1] and _items_width([*lines[-1], item]) > width:
                lines.append([])
            lines[-1].append(item)
        footer: list[Text] = []
        for line_items in lines:
            line = Text(no_wrap=True, overflow="ellipsis")
            for index, item in enumerate(line_items):
                if index:
                    line.append(_STATUS_SEPARATOR)
                for text, style in item:
                    line.append(text, style)
            footer.append(line)
        return footer

    def _connection_cell(self) -> Cell:
        if self._ended_at is not None:
            return ("no (run ended)", "bold")
        up, total = len(self._connections_up), self._connections_total
        if up and total > 1:
            return (f"{up}/{total} up", "green" if up >= total else "bold yellow")
        if up:
            return ("yes", "green")
        return ("reconnecting", "bold yellow") if self._reconnecting else ("no", "bold red")

    def _positions_heading(self) -> tuple[str, str]:
        """The table's title: what its rows can be trusted for."""
        since = "" if self._since is None else f"updates since {self._moment(self._since)}"
        if self._snapshot_at is not None:  # issue 24: the panel started from a snapshot
            since = f"snapshot at {self._moment(self._snapshot_at)}" + (
                f", {since}" if since else "")
        if self._ended_at is not None:
            ended = f"Positions at {self._moment(self._ended_at)} (run ended"
            return (f"{ended}; {since})" if since else f"{ended})"), HEADER_STYLE
        if self._down_since is not None:
            return (f"Positions (stale: disconnected since {self._moment(self._down_since)}; "
                    "changes are not replayed)"), f"{HEADER_STYLE} yellow"
        if not since:
            return "Positions", HEADER_STYLE
        if self._outage is not None:
            start, end = self._outage
            return (f"Positions ({since}; changes between {self._moment(start)} and "
                    f"{self._moment(end)} may be missing)"), HEADER_STYLE
        return f"Positions ({since})", HEADER_STYLE

    def _positions_view(self, room: int | None) -> RenderableType:
        """The positions table in at most ``room`` lines (None: every row) with its title,
        showing the most recently updated rows, and a note saying what is not shown and
        what the table cannot know."""
        width = self._console.width
        title, title_style = self._positions_heading()
        heading = Text(title, style=title_style, overflow="fold")
        limit: int | None = None
        if room is not None:
            limit = room - self._height_of(heading, width) - _TABLE_HEADER_LINES
            if len(self._positions) > limit:  # the note about the rest takes room too
                limit -= self._height_of(self._more_note(len(self._positions), limit - 1),
                                         width)
            limit = max(limit, MIN_POSITION_ROWS)
        rows = list(self._positions.values() if limit is None
                    # the dict is ordered by last update: the newest are at its end
                    else islice(reversed(self._positions.values()), limit))
        hidden = len(self._positions) - len(rows)
        rows.sort(key=_position_order)
        stale = self._down_since is not None and self._ended_at is None
        today = self._zone.day(self._clock())
        cells = [
            (row.strategy, row.symbol, row.quantity_text, row.avg_price, row.currency,
             (SNAPSHOT_MARK if row.snapshot else "") + self._zone.moment(row.updated_at, today))
            for row in rows
        ]
        fitted = fit_position_columns(cells, width)
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for _, column, column_width in fitted:
            table.add_column(
                column.header, justify="right" if column.right else "left", no_wrap=True,
                overflow="ellipsis", width=column_width, min_width=column_width,
            )
        for row, row_cells in zip(rows, cells, strict=True):
            rendered: list[Text] = []
            for index, column, column_width in fitted:
                text = row_cells[index]
                style = ""
                if column.numeric:
                    text = fit(text, column_width, right=True, numeric=True).strip()
                    if index == 2:
                        style = _quantity_cell(row)[1] or ""
                rendered.append(Text(text, style=style))
            table.add_row(*rendered, style=STALE_STYLE if stale else None)
        parts: list[RenderableType] = [heading, table]
        if hidden:
            parts.append(self._more_note(len(self._positions), len(rows)))
        if not self._positions and self._snapshot_at is not None:
            parts.append(Text(f"no open positions (REST snapshot at "
                              f"{self._moment(self._snapshot_at)}, then live updates)",
                              style=NOTE_STYLE))
        elif not self._positions:
            since = f" since {self._moment(self._since)}" if self._since is not None else ""
            parts.append(Text(
                f"no open positions seen{since}: only changes are streamed, so a position "
                "opened earlier shows once it changes", style=NOTE_STYLE
            ))
        return Group(*parts)

    @staticmethod
    def _more_note(total: int, shown: int) -> Text:
        """Says how many positions are not shown, and which are."""
        which = ("the most recently updated is shown" if shown == 1
                 else f"the {shown} most recently updated are shown")
        return Text(f"+{_plural(total - shown, 'more position')} ({which})", style=NOTE_STYLE)

    def _height_of(self, renderable: RenderableType, width: int) -> int:
        """Lines ``renderable`` takes at ``width``."""
        options = self._console.options.update_width(width)
        return len(self._console.render_lines(renderable, options, pad=False))

    # --- live display ---------------------------------------------------------------------------

    def _live_height(self) -> int:
        """Lines the live region may take: half the terminal, so that the latest signals
        show above it, or all of it but a line when there are only positions."""
        height = self._console.height
        if self._signals_expected:
            return int(height * LIVE_HEIGHT_SHARE)
        return height - POSITIONS_ONLY_FREE_LINES

    def _live_view(self) -> _RenderedOnce:
        width = self._console.width
        parts: list[RenderableType] = []
        if self._recent_signals is not None:
            layout = self._signals()
            parts.append(layout.header())
            parts.extend(self._recent_signals)
            parts.append(Text())
        now = time.monotonic()
        for pending in self._pending:
            line = pending.line
            if pending.fresh_until > now:
                line = line.copy()
                line.stylize(HIGHLIGHT_STYLE)
            parts.append(line)
        used = sum(self._height_of(part, width) for part in parts)
        footer = self._footer(width)
        room = self._live_height() - used - len(footer)
        parts.append(self._positions_view(room))
        parts.extend(footer)
        return _RenderedOnce(Group(*parts))

    def _ensure_live(self) -> None:
        if self._live_wanted and self._live is None and not self._closed:
            self._start_live()

    def _start_live(self) -> None:
        console_is_stdout = self._console.file is sys.stdout
        live = Live(
            console=self._console,
            auto_refresh=False,
            transient=False,
            # Other modules' prints then land above the region instead of tearing it;
            # only when the region is on stdout, and stderr is that same terminal.
            redirect_stdout=console_is_stdout,
            redirect_stderr=console_is_stdout and same_terminal(sys.stdout, sys.stderr),
        )
        with self._lock:
            self._view = self._live_view()
            live.update(self._view)
            live.start(refresh=True)
            self._live = live
            self._last_refresh = time.monotonic()
        self._refresher = threading.Thread(
            target=self._refresh_when_due, name="c2ws-table-refresh", daemon=True
        )
        self._refresher.start()

    def _changed(self) -> None:
        if self._live is not None:
            self._dirty.set()

    def _next_expiry(self) -> float | None:
        """Seconds until the oldest highlighted line is due in the scrollback."""
        with self._lock:
            if not self._pending:
                return None
            return max(self._pending[0].fresh_until - time.monotonic(), 0.0)

    def _resized(self) -> bool:
        """The terminal's width is not the one the region was last drawn at."""
        view = self._view
        drawn = None if view is None else view.drawn
        return drawn is not None and drawn[0] != self._console.width

    def _refresh_when_due(self) -> None:
        """Redraw the live region after changes, when a highlight ends and when the
        terminal was resized; at most every REFRESH_INTERVAL_SECONDS."""
        while True:
            expiry = self._next_expiry()
            woken = self._dirty.wait(RESIZE_CHECK_SECONDS if expiry is None
                                     else min(expiry, RESIZE_CHECK_SECONDS))
            if self._stopping.is_set():
                return
            if not woken and not self._resized() and self._next_expiry() != 0.0:
                continue
            wait = self._last_refresh + REFRESH_INTERVAL_SECONDS - time.monotonic()
            if wait > 0 and self._stopping.wait(wait):
                return
            self._dirty.clear()
            with self._lock:
                live = self._live
                if live is None:
                    return
                self._erase_rewrapped_rows()
                self._format_waiting_signals()
                self._print_pending()
                self._redraw(live)
                self._last_refresh = time.monotonic()

    def _redraw(self, live: Live) -> None:
        """Draw the region anew (lock held)."""
        self._view = self._live_view()
        live.update(self._view, refresh=True)

    def _erase_rewrapped_rows(self) -> None:
        """After a resize, erase the rows a rewrapping terminal added to the region (lock
        held): rich moves up only as many rows as it drew, and the rows above would stay
        in the scrollback, a second copy of lines printed again after the redraw."""
        view, live = self._view, self._live
        if not self._rewraps or view is None or view.drawn is None or live is None:
            return
        drawn_width, lengths = view.drawn
        width = self._console.width
        if width == drawn_width:
            return
        extra = rewrapped_rows(lengths, width) - len(lengths)
        if extra > 0:
            # Printed while live: rich first moves to the top of the rows it drew, this
            # goes up the extra rows, then the region is drawn at the new width.
            up_and_erase = ((ControlType.CURSOR_UP, 1), (ControlType.ERASE_IN_LINE, 2))
            self._console.print(Control(*(up_and_erase * extra)))


_STATUS_SEPARATOR: Final = " | "


def _items_width(items: list[list[Cell]]) -> int:
    """Cells taken by the footer ``items`` in one line."""
    pieces = sum(cell_len(text) for item in items for text, _ in item)
    return pieces + cell_len(_STATUS_SEPARATOR) * max(len(items) - 1, 0)


def _decoded(frame: Envelope | bytes) -> Envelope | None:
    """The message with its payload: ``frame`` itself when it was decoded, else decoded
    now from its frame (a message passed through, or a frame of a run) as a session
    decoding payloads decodes it.  A frame orjson refuses (valid JSON with a number
    beyond a double's range), which such a session reported as malformed and skipped, is
    delivered by one passing frames through: its header fields alone are shown, as
    ``-o csv`` does (None: a frame no reader takes, which no session delivers)."""
    if isinstance(frame, bytes):
        data: bytes | str = frame
    elif frame.raw or frame.payload or frame.data is None:
        # Decoded (its raw holds at least its msg_type), or made by hand.
        return frame
    else:  # passed through: the session left payload and raw empty
        data = frame.data
    try:
        return decode(data)
    except MalformedMessage:
        if not isinstance(frame, bytes):
            return frame
        head = read_stream_head(frame)
        return None if head is None else head[0]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _quantity_cell(row: PositionRow) -> Cell:
    short = row.quantity is not None and row.quantity < 0
    return row.quantity_text, SHORT_STYLE if short else None


def _position_order(row: PositionRow) -> tuple[str, str]:
    return row.strategy.casefold(), row.symbol.casefold()
