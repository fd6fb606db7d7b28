"""Where the reference server's stream messages come from: a seeded synthetic market or a file.

Synthetic feed schema
---------------------
C2 does not publish the WebSocket payload fields, so the synthetic feed mirrors the
C2 API v4 REST objects (see ``shared/reference/c2-ws-protocol.md``), PascalCase keys.

``strategy.signal`` payload (``OrderStatusDTO``)::

    StrategyId int, StrategyName str, SignalId int, OrderId int,
    OrderType "1" Market | "2" Limit | "3" Stop,  Side "1" Buy | "2" Sell,
    OpenClose "O" | "C",  OrderQuantity int,  Limit float|null,  Stop float|null,
    TIF "0" Day | "1" GTC,  ProfitTarget null,  StopLoss null,  ParentSignalId null,
    CancelReplaceSignalId null,
    OrderStatus "0" Working | "2" Filled | "4" Canceled,
    FilledQuantity int,  AvgFillPrice float|null,  PostedDate "YYYY-MM-DDTHH:MM:SSZ",
    SignalType int (1 StrategySignal, 4 Manual),
    C2Symbol {FullSymbol, SymbolType "future"|"stock"|"forex", Underlying, Expiry
              "YYYYMM"|null, PutOrCall null, StrikePrice null, Description},
    ExchangeSymbol {Symbol, Currency, SecurityExchange, SecurityType "FUT"|"STK"|"CASH",
                    MaturityMonthYear, PutOrCall null, StrikePrice null, PriceMultiplier},
    RejectMessage null, Info null

``strategy.positions`` payload (``PositionDTO``)::

    StrategyId int, StrategyName str, Quantity int (net, signed: short < 0),
    AvgPx float (0.0 when flat), C2Symbol {...}, ExchangeSymbol {...}, Currency str,
    OpenedDate str|null (null when flat)

Order life cycle: a Market order is published once, already Filled.  A Limit or Stop
order is published Working and later once more with the same SignalId, Filled or
Canceled.  Every fill is followed, as the very next message of the feed, by the
position of that strategy and symbol after the fill.  A strategy has at most one
working order per symbol, and a closing order never exceeds the open quantity, so the
net positions always equal the sum of the fills and never flip sign on a close.

Everything is drawn from one ``random.Random(seed)``: the same seed and the same
sequence of ``now`` values give the same payloads.

Recorded feed
-------------
``FileFeed`` reads NDJSON, one recorded envelope per line (``msg_type``
``strategy.signal`` or ``strategy.positions``, a ``payload`` naming its strategy as
``StrategyId``, ``strategy_id`` or ``strategyId``), and yields the payloads for the
server to publish afresh (new ``id`` and ``seq_id``).  A recording made with
``c2ws subscribe --record`` (see ``c2ws.recording``) works too: its stream frames are
published, each message once (the duplicates a reconnect replayed are left out), and its
headers, control frames and connection ends are passed over.  Lines that are neither
are skipped and counted, never fatal.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from c2ws import dto, protocol, recording, spec
from c2ws.protocol import JsonObject

DEFAULT_STRATEGIES: Final = (12345678, 23456789, 34567890)
_STRATEGY_NAMES: Final = (
    "Alpha Momentum",
    "Index Mean Reversion",
    "Global Macro FX",
    "Tech Swing",
    "Commodity Trend",
    "Volatility Harvest",
)


@dataclass(frozen=True, slots=True)
class FeedEvent:
    channel: str
    strategy_id: int
    payload: JsonObject


@dataclass(frozen=True, slots=True)
class Instrument:
    symbol: str
    symbol_type: str
    underlying: str
    description: str
    expiry: str | None
    exchange: str
    security_type: str
    currency: str
    multiplier: int
    price: float
    tick: float
    decimals: int
    lot: int
    lots: tuple[int, ...]
    volatility: float

    def c2_symbol(self) -> JsonObject:
        return {
            "FullSymbol": self.symbol,
            "SymbolType": self.symbol_type,
            "Underlying": self.underlying,
            "Expiry": self.expiry,
            "PutOrCall": None,
            "StrikePrice": None,
            "Description": self.description,
        }

    def exchange_symbol(self) -> JsonObject:
        return {
            "Symbol": self.underlying,
            "Currency": self.currency,
            "SecurityExchange": self.exchange,
            "SecurityType": self.security_type,
            "MaturityMonthYear": self.expiry,
            "PutOrCall": None,
            "StrikePrice": None,
            "PriceMultiplier": self.multiplier,
        }

    def round_price(self, price: float) -> float:
        return round(round(price / self.tick) * self.tick, self.decimals)


def _future(
    symbol: str, underlying: str, description: str, expiry: str, exchange: str,
    multiplier: int, price: float, tick: float, decimals: int,
) -> Instrument:  # fmt: skip
    return Instrument(
        symbol, "future", underlying, description, expiry, exchange, "FUT", "USD",
        multiplier, price, tick, decimals, 1, (1, 1, 2, 3, 5), 0.0006,
    )  # fmt: skip


def _stock(symbol: str, description: str, exchange: str, price: float) -> Instrument:
    return Instrument(
        symbol, "stock", symbol, description, None, exchange, "STK", "USD",
        1, price, 0.01, 2, 10, (50, 100, 100, 200, 500), 0.0008,
    )  # fmt: skip


def _forex(symbol: str, description: str, currency: str, price: float, tick: float,
           decimals: int) -> Instrument:  # fmt: skip
    return Instrument(
        symbol, "forex", symbol[:3], description, None, "IDEALPRO", "CASH", currency,
        1, price, tick, decimals, 1_000, (10_000, 25_000, 50_000, 100_000), 0.0003,
    )  # fmt: skip


INSTRUMENTS: Final = (
    _future("@ESZ6", "ES", "E-mini S&P 500 Dec 2026", "202612", "CME", 50, 6850.0, 0.25, 2),
    _future("@NQZ6", "NQ", "E-mini Nasdaq-100 Dec 2026", "202612", "CME", 20, 24800.0, 0.25, 2),
    _future("@CLF7", "CL", "Crude Oil WTI Jan 2027", "202701", "NYMEX", 1000, 68.5, 0.01, 2),
    _future("@GCG7", "GC", "Gold Feb 2027", "202702", "COMEX", 100, 3450.0, 0.1, 1),
    _stock("AAPL", "Apple Inc.", "NASDAQ", 228.5),
    _stock("MSFT", "Microsoft Corporation", "NASDAQ", 505.0),
    _stock("NVDA", "NVIDIA Corporation", "NASDAQ", 176.0),
    _stock("SPY", "SPDR S&P 500 ETF Trust", "ARCA", 640.0),
    _forex("EURUSD", "Euro / US Dollar", "USD", 1.085, 0.00001, 5),
    _forex("USDJPY", "US Dollar / Japanese Yen", "JPY", 148.5, 0.001, 3),
    _forex("GBPUSD", "British Pound / US Dollar", "USD", 1.27, 0.00001, 5),
)


@dataclass(slots=True)
class _Order:
    signal_id: int
    order_id: int
    instrument: Instrument
    side: str
    open_close: str
    quantity: int
    order_type: str
    limit: float | None
    stop: float | None
    tif: str
    posted: str
    signal_type: int


@dataclass(slots=True)
class _Position:
    quantity: int = 0
    avg_px: float = 0.0
    opened: str | None = None


@dataclass(slots=True)
class _Strategy:
    strategy_id: int
    name: str
    instruments: tuple[Instrument, ...]
    positions: dict[str, _Position] = field(default_factory=dict)
    working: dict[str, _Order] = field(default_factory=dict)


class SyntheticFeed:
    """A deterministic stream of plausible signals and the positions they produce."""

    def __init__(self, seed: int = 0, strategies: Sequence[int] = DEFAULT_STRATEGIES) -> None:
        self._rng = random.Random(seed)
        self._prices = {instrument.symbol: instrument.price for instrument in INSTRUMENTS}
        self._next_signal_id = 150_000_000 + self._rng.randrange(1_000_000)
        self._next_order_id = 7_000_000_000 + self._rng.randrange(1_000_000)
        self._strategy_ids = tuple(strategies)
        self._strategies: dict[int, _Strategy] = {}
        self._pending: deque[FeedEvent] = deque()
        for strategy_id in self._strategy_ids:
            self._strategy(strategy_id)

    @property
    def strategies(self) -> tuple[int, ...]:
        return self._strategy_ids

    def next_event(self, now: float) -> FeedEvent:
        """The next message of the feed; a fill's position update comes right after it."""
        if not self._pending:
            if not self._strategy_ids:
                raise ValueError("a synthetic feed needs at least one strategy")
            self._pending.extend(self.events_for(self._rng.choice(self._strategy_ids), now))
        return self._pending.popleft()

    def events_for(self, strategy_id: int, now: float) -> list[FeedEvent]:
        """One new signal of ``strategy_id``, followed by its position update if it filled."""
        strategy = self._strategy(strategy_id)
        if strategy.working and (
            self._rng.random() < 0.45 or len(strategy.working) == len(strategy.instruments)
        ):
            order = strategy.working.pop(self._rng.choice(sorted(strategy.working)))
            if self._rng.random() < 0.8:
                return self._fill(strategy, order)
            return [self._signal_event(strategy, order, dto.STATUS_CANCELED)]
        order = self._new_order(strategy, now)
        if order.order_type == dto.ORDER_MARKET:
            return self._fill(strategy, order)
        strategy.working[order.instrument.symbol] = order
        return [self._signal_event(strategy, order, dto.STATUS_WORKING)]

    def position_of(self, strategy_id: int, symbol: str) -> int:
        """The net position the feed has published for a strategy and symbol."""
        strategy = self._strategies.get(strategy_id)
        position = strategy.positions.get(symbol) if strategy else None
        return position.quantity if position else 0

    # -- internals --

    def _strategy(self, strategy_id: int) -> _Strategy:
        strategy = self._strategies.get(strategy_id)
        if strategy is None:
            index = len(self._strategies)
            name = (
                _STRATEGY_NAMES[index]
                if index < len(_STRATEGY_NAMES)
                else f"Strategy {strategy_id}"
            )
            traded = self._rng.sample(range(len(INSTRUMENTS)), self._rng.randint(3, 6))
            strategy = _Strategy(strategy_id, name, tuple(INSTRUMENTS[i] for i in sorted(traded)))
            self._strategies[strategy_id] = strategy
        return strategy

    def _walk(self, instrument: Instrument) -> float:
        moved = self._prices[instrument.symbol] * (
            1.0 + self._rng.gauss(0.0, instrument.volatility)
        )
        price = max(instrument.round_price(moved), instrument.tick)
        self._prices[instrument.symbol] = price
        return price

    def _new_order(self, strategy: _Strategy, now: float) -> _Order:
        rng = self._rng
        free = [i for i in strategy.instruments if i.symbol not in strategy.working]
        instrument = rng.choice(free)
        price = self._walk(instrument)
        net = strategy.positions.get(instrument.symbol, _Position()).quantity
        too_big = abs(net) >= 4 * max(instrument.lots)
        if net != 0 and (too_big or rng.random() < 0.45):
            side = dto.SIDE_SELL if net > 0 else dto.SIDE_BUY
            open_close = "C"
            half = abs(net) // 2 // instrument.lot * instrument.lot
            quantity = abs(net) if half == 0 or rng.random() < 0.6 else half
        else:
            side = (
                (dto.SIDE_BUY if net > 0 else dto.SIDE_SELL)
                if net
                else rng.choice((dto.SIDE_BUY, dto.SIDE_SELL))
            )
            open_close = "O"
            quantity = rng.choice(instrument.lots)
        order_type = rng.choices(
            (dto.ORDER_MARKET, dto.ORDER_LIMIT, dto.ORDER_STOP), weights=(5, 3, 2)
        )[0]
        offset = max(instrument.round_price(price * rng.uniform(0.0005, 0.004)), instrument.tick)
        limit = stop = None
        if order_type == dto.ORDER_LIMIT:
            limit = instrument.round_price(
                price - offset if side == dto.SIDE_BUY else price + offset
            )
        elif order_type == dto.ORDER_STOP:
            stop = instrument.round_price(
                price + offset if side == dto.SIDE_BUY else price - offset
            )
        self._next_signal_id += rng.randint(1, 40)
        self._next_order_id += rng.randint(1, 40)
        return _Order(
            signal_id=self._next_signal_id,
            order_id=self._next_order_id,
            instrument=instrument,
            side=side,
            open_close=open_close,
            quantity=quantity,
            order_type=order_type,
            limit=limit,
            stop=stop,
            tif=dto.TIF_DAY
            if order_type == dto.ORDER_MARKET
            else rng.choice((dto.TIF_DAY, dto.TIF_GTC)),
            posted=protocol.format_timestamp(now),
            signal_type=dto.SIGNAL_TYPE_MANUAL if rng.random() < 0.05 else dto.SIGNAL_TYPE_STRATEGY,
        )

    def _fill(self, strategy: _Strategy, order: _Order) -> list[FeedEvent]:
        instrument = order.instrument
        slippage = instrument.tick if order.side == dto.SIDE_BUY else -instrument.tick
        if order.order_type == dto.ORDER_LIMIT and order.limit is not None:
            fill_price = order.limit
        elif order.order_type == dto.ORDER_STOP and order.stop is not None:
            fill_price = instrument.round_price(order.stop + slippage)
        else:
            fill_price = instrument.round_price(self._walk(instrument) + slippage)
        self._prices[instrument.symbol] = fill_price
        position = strategy.positions.setdefault(instrument.symbol, _Position())
        signed = order.quantity if order.side == dto.SIDE_BUY else -order.quantity
        if position.quantity == 0 or (position.quantity > 0) == (signed > 0):
            held = abs(position.quantity)
            position.avg_px = round(
                (held * position.avg_px + order.quantity * fill_price) / (held + order.quantity),
                instrument.decimals + 2,
            )
            position.opened = position.opened or order.posted
            position.quantity += signed
        else:
            position.quantity += signed
            if position.quantity == 0:
                position.avg_px = 0.0
                position.opened = None
        return [
            self._signal_event(strategy, order, dto.STATUS_FILLED, fill_price),
            FeedEvent(
                spec.CHANNEL_POSITIONS,
                strategy.strategy_id,
                {
                    "StrategyId": strategy.strategy_id,
                    "StrategyName": strategy.name,
                    "Quantity": position.quantity,
                    "AvgPx": position.avg_px,
                    "C2Symbol": instrument.c2_symbol(),
                    "ExchangeSymbol": instrument.exchange_symbol(),
                    "Currency": instrument.currency,
                    "OpenedDate": position.opened,
                },
            ),
        ]

    def _signal_event(
        self, strategy: _Strategy, order: _Order, status: str, fill_price: float | None = None
    ) -> FeedEvent:
        payload: JsonObject = {
            "StrategyId": strategy.strategy_id,
            "StrategyName": strategy.name,
            "SignalId": order.signal_id,
            "OrderId": order.order_id,
            "OrderType": order.order_type,
            "Side": order.side,
            "OpenClose": order.open_close,
            "OrderQuantity": order.quantity,
            "Limit": order.limit,
            "Stop": order.stop,
            "TIF": order.tif,
            "ProfitTarget": None,
            "StopLoss": None,
            "ParentSignalId": None,
            "CancelReplaceSignalId": None,
            "OrderStatus": status,
            "FilledQuantity": order.quantity if status == dto.STATUS_FILLED else 0,
            "AvgFillPrice": fill_price,
            "PostedDate": order.posted,
            "SignalType": order.signal_type,
            "C2Symbol": order.instrument.c2_symbol(),
            "ExchangeSymbol": order.instrument.exchange_symbol(),
            "RejectMessage": None,
            "Info": None,
        }
        return FeedEvent(spec.CHANNEL_SIGNAL, strategy.strategy_id, payload)


# --- recorded feed ----------------------------------------------------------------------


def parse_recorded_line(line: bytes | str) -> FeedEvent | None:
    """A recorded stream envelope as a feed event; None for anything else."""
    event, _ = _parse_line(line)
    return event


def _stream_event(data: bytes | str) -> tuple[FeedEvent | None, int | None]:
    try:
        message = protocol.decode(data)
    except protocol.MalformedMessage:
        return None, None
    if message.msg_type not in spec.STREAM_MSG_TYPES:
        return None, None
    strategy_id = protocol.strategy_id_of(message.payload)
    if strategy_id is None:
        return None, None
    return FeedEvent(message.msg_type, strategy_id, message.payload), message.seq_id


def _parse_line(line: bytes | str) -> tuple[FeedEvent | None, int | None]:
    """The feed event of a line (an envelope, or a recording's frame) and, for a
    recording's frame, its seq_id (to leave out replayed duplicates)."""
    data = line.encode("utf-8") if isinstance(line, str) else line
    entry = recording.parse_line(data)
    if isinstance(entry, recording.RecordedFrame):
        return _stream_event(entry.data)
    if isinstance(entry, recording.BareMessage):
        event, _ = _stream_event(entry.data)
        return event, None
    return None, None


class _SeenStreams:
    """The last seq_id published per recorded stream, for a bounded number of streams."""

    def __init__(self, limit: int) -> None:
        self._last: dict[tuple[int, str], int] = {}
        self._limit = limit

    def is_new(self, event: FeedEvent, seq_id: int) -> bool:
        key = (event.strategy_id, event.channel)
        last = self._last.pop(key, None)
        if last is not None and seq_id <= last:
            self._last[key] = last
            return False
        self._last[key] = seq_id
        if len(self._last) > self._limit:
            del self._last[next(iter(self._last))]  # the stream quiet the longest
        return True


class FeedError(Exception):
    """A recorded feed that cannot be played: unreadable, or no stream message in it."""


# A line holds one frame (a recording's line adds its time and connection around it);
# longer lines are skipped, so a feed never holds more than about this much.
_MAX_LINE_BYTES: Final = spec.MAX_FRAME_BYTES + 4096


class FileFeed:
    """The stream messages of an NDJSON recording, in file order, read lazily.

    ``skipped`` counts the non-blank lines that were not usable stream envelopes (lines
    longer than ``spec.MAX_FRAME_BYTES`` among them).  Reading errors surface as
    ``FeedError``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.skipped = 0
        self.published = 0

    def check(self) -> None:
        """Raise FeedError unless the file can be read and holds at least one stream
        message; reads up to the first one."""
        skipped = self.skipped
        try:
            usable = next(self._events(), None)
        finally:
            self.skipped = skipped
        if usable is None:
            raise FeedError(
                f"{self.path} holds no {spec.CHANNEL_SIGNAL} or {spec.CHANNEL_POSITIONS} "
                "envelope naming its strategy (one JSON envelope per line expected)"
            )

    def __iter__(self) -> Iterator[FeedEvent]:
        for event in self._events():
            self.published += 1
            yield event

    def _events(self) -> Iterator[FeedEvent]:
        seen = _SeenStreams(spec.FEED_MAX_TRACKED_STREAMS)
        try:
            with self.path.open("rb") as stream:
                for line in recording.bounded_lines(stream, _MAX_LINE_BYTES):
                    if line is not None and not line.strip():
                        continue
                    event, seq_id = _parse_line(line) if line is not None else (None, None)
                    if event is None:
                        self.skipped += 1
                        continue
                    if seq_id is not None and not seen.is_new(event, seq_id):
                        continue
                    yield event
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise FeedError(f"cannot read {self.path}: {reason}") from exc
