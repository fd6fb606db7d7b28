"""``--symbol`` (and, for replay, strategy and channel) filters, in front of any renderer.

A message the filter does not select is not shown, in any output mode; it still counts
as handled for ``--state`` (the stream has moved past it).  ``--count`` counts selected
messages only (``c2ws subscribe`` hands :meth:`MessageFilter.selects_message` to the
stream as its ``select``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from c2ws import events as ev
from c2ws import spec
from c2ws.payload import PayloadView
from c2ws.render import Renderer, fields

if TYPE_CHECKING:
    from c2ws.messages import Position, Signal


@dataclass(frozen=True)
class MessageFilter:
    """Empty sets select everything.  Symbols match the symbol column (C2Symbol.FullSymbol,
    else symbol, else ExchangeSymbol.Symbol), ignoring case; a positions message carrying
    several positions is selected when one of them matches."""

    strategies: frozenset[int] = frozenset()
    channels: frozenset[str] = frozenset()
    symbols: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls, *, strategies: Iterable[int] = (), channels: Iterable[str] = (),
        symbols: Iterable[str] = (),
    ) -> MessageFilter:
        return cls(frozenset(strategies), frozenset(channels),
                   frozenset(symbol.strip().casefold() for symbol in symbols if symbol.strip()))

    @property
    def active(self) -> bool:
        return bool(self.strategies or self.channels or self.symbols)

    def selects(self, event: ev.StreamMessage) -> bool:
        message = event.message
        if self.channels and message.msg_type not in self.channels:
            return False
        if self.strategies and (event.key is None or event.key.strategy_id not in self.strategies):
            return False
        if self.symbols:
            return any(symbol.casefold() in self.symbols for symbol in _symbols(message.msg_type,
                                                                               message.payload))
        return True

    def selects_message(self, message: Signal | Position) -> bool:
        """:meth:`selects` for a typed message of the library (``c2ws.stream(select=)``)."""
        if self.channels and message.channel not in self.channels:
            return False
        if self.strategies and message.strategy_id not in self.strategies:
            return False
        if self.symbols:
            payload = message.raw.get("payload")
            return any(symbol.casefold() in self.symbols for symbol in _symbols(
                message.channel, payload if isinstance(payload, dict) else {}))
        return True

    def selects_key(self, key: ev.SubscriptionKey) -> bool:
        return (not self.channels or key.channel in self.channels) and (
            not self.strategies or key.strategy_id in self.strategies
        )


def _symbols(msg_type: str, payload: dict[str, object]) -> list[str]:
    if msg_type == spec.CHANNEL_POSITIONS:
        return [position.symbol for position in fields.position_fields(payload)]
    return [fields.symbol_of(PayloadView(payload))]


class FilteredRenderer:
    """Passes every event on except stream messages (and gaps and resets of streams) not
    selected."""

    def __init__(self, renderer: Renderer, message_filter: MessageFilter) -> None:
        self.renderer = renderer
        self.filter = message_filter

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.StreamMessage) and not self.filter.selects(event):
            return
        if isinstance(event, (ev.GapReported, ev.SequenceReset)) and not (
            self.filter.selects_key(event.key)
        ):
            return
        self.renderer.handle(event)

    def flush(self) -> None:
        self.renderer.flush()

    def close(self) -> None:
        self.renderer.close()
