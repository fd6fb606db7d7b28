"""The sans-I/O C2 client session: one connection's protocol state, no sockets, no threads.

Feed it frames with :meth:`ClientSession.receive` and the clock with
:meth:`ClientSession.handle_timeout`; collect the frames it wants sent with
:meth:`ClientSession.data_to_send` and what happened with
:meth:`ClientSession.events_received`.  The socket loop, tests and (later) replay
are shells around it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

from c2ws import events as ev
from c2ws import protocol, spec
from c2ws.events import SubscriptionKey
from c2ws.protocol import Envelope, MalformedMessage


class SubscriptionState(Enum):
    UNSENT = "unsent"
    PENDING = "pending"
    ACTIVE = "active"
    REJECTED = "rejected"
    UNSUBSCRIBING = "unsubscribing"
    UNSUBSCRIBED = "unsubscribed"


@dataclass(slots=True)
class Subscription:
    key: SubscriptionKey
    state: SubscriptionState = SubscriptionState.UNSENT
    request_id: str | None = None


def _gap_key(payload: Mapping[str, object]) -> tuple[int | None, str]:
    """Split the gap's ``channel`` (``strategy.signal:12345678``) into strategy and channel."""
    channel = payload.get("channel")
    strategy_id = protocol.parse_int(payload.get("strategy_id"))
    if isinstance(channel, str) and ":" in channel:
        name, _, suffix = channel.rpartition(":")
        parsed = protocol.parse_int(suffix)
        return (parsed if parsed is not None else strategy_id), name
    return strategy_id, channel if isinstance(channel, str) else spec.CHANNEL_SIGNAL


class ClientSession:
    """Protocol state of one client connection."""

    def __init__(
        self,
        keys: Iterable[SubscriptionKey],
        *,
        request_id_prefix: str,
        cursors: Mapping[SubscriptionKey, int] | None = None,
        stale_after: float = spec.CLIENT_STALE_AFTER_SECONDS,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.subscriptions: dict[SubscriptionKey, Subscription] = {
            key: Subscription(key) for key in keys
        }
        if len(self.subscriptions) > spec.MAX_SUBSCRIPTIONS_PER_CONNECTION:
            raise ValueError(
                f"{len(self.subscriptions)} subscriptions exceed the limit of "
                f"{spec.MAX_SUBSCRIPTIONS_PER_CONNECTION} per connection"
            )
        if len(request_id_prefix) > spec.MAX_REQUEST_ID_LENGTH - 8:
            raise ValueError("request_id prefix too long")
        self.cursors: dict[SubscriptionKey, int] = dict(cursors or {})
        self.connected = False
        self.stale_after = stale_after
        self.last_received: float | None = None
        self.last_heartbeat: float | None = None
        self.stale = False  # nothing arrived within stale_after: presumed dead
        self._prefix = request_id_prefix
        self._request_counter = 0
        self._by_request_id: dict[str, Subscription] = {}
        self._gap_announced: set[SubscriptionKey] = set()
        self._only_key_by_channel = self._single_keys()
        self._wall_clock = wall_clock
        self._outgoing: list[bytes] = []
        self._events: list[ev.Event] = []

    # --- shell-facing API ------------------------------------------------------------

    def connection_opened(self, now: float) -> None:
        """The WebSocket upgrade succeeded; ``connection.connected`` is awaited next."""
        self.last_received = now

    def receive(self, data: bytes | str, now: float) -> None:
        """Process one text frame."""
        self.last_received = now
        try:
            message = protocol.decode(data)
        except MalformedMessage as exc:
            self._events.append(ev.MalformedFrame(reason=str(exc), size=len(data)))
            return
        handler = self._handlers.get(message.msg_type)
        if handler is None:
            self._events.append(ev.UnknownMessage(message))
        else:
            handler(self, message, now)

    def data_to_send(self) -> list[bytes]:
        frames, self._outgoing = self._outgoing, []
        return frames

    def events_received(self) -> list[ev.Event]:
        found, self._events = self._events, []
        return found

    def next_deadline(self) -> float | None:
        """Monotonic time after which the connection counts as dead, if nothing arrives."""
        if self.last_received is None:
            return None
        return self.last_received + self.stale_after

    def handle_timeout(self, now: float) -> None:
        deadline = self.next_deadline()
        if deadline is not None and now >= deadline and self.last_received is not None:
            self.stale = True
            self._events.append(ev.ConnectionStale(silent_for=now - self.last_received))

    def unsubscribe_all(self) -> int:
        """Queue an unsubscribe for every live subscription; returns how many were sent."""
        count = 0
        for sub in self.subscriptions.values():
            if sub.state in (SubscriptionState.ACTIVE, SubscriptionState.PENDING):
                self._send_request(sub, spec.ACTION_UNSUBSCRIBE)
                sub.state = SubscriptionState.UNSUBSCRIBING
                count += 1
        return count

    @property
    def awaiting_unsubscribe(self) -> int:
        return sum(
            1 for s in self.subscriptions.values() if s.state is SubscriptionState.UNSUBSCRIBING
        )

    def count(self, state: SubscriptionState) -> int:
        return sum(1 for s in self.subscriptions.values() if s.state is state)

    # --- message handlers ------------------------------------------------------------

    def _on_connected(self, message: Envelope, now: float) -> None:
        first = not self.connected
        self.connected = True
        self._events.append(ev.Connected(message))
        if first:
            for sub in self.subscriptions.values():
                if sub.state is SubscriptionState.UNSENT:
                    self._send_request(sub, spec.ACTION_SUBSCRIBE)
                    sub.state = SubscriptionState.PENDING

    def _on_heartbeat(self, message: Envelope, now: float) -> None:
        self.last_heartbeat = now
        ack = protocol.heartbeat_ack(timestamp=protocol.format_timestamp(self._wall_clock()))
        self._outgoing.append(protocol.encode(ack))
        self._events.append(ev.HeartbeatAnswered(message))

    def _on_subscription_ack(self, message: Envelope, now: float) -> None:
        sub = self._by_request_id.pop(message.request_id or "", None)
        if sub is None:
            self._events.append(ev.OtherControl(message))
        elif sub.state is SubscriptionState.UNSUBSCRIBING:
            sub.state = SubscriptionState.UNSUBSCRIBED
            self._events.append(ev.Unsubscribed(sub.key, message))
        else:
            sub.state = SubscriptionState.ACTIVE
            self._events.append(
                ev.SubscriptionConfirmed(sub.key, message.request_id or "", message)
            )

    def _on_error(self, message: Envelope, now: float) -> None:
        details = tuple(protocol.error_details(message.payload))
        sub = self._by_request_id.pop(message.request_id or "", None)
        if sub is None:
            self._events.append(ev.ServerError(details, message))
        elif sub.state is SubscriptionState.UNSUBSCRIBING:
            # The server refused to unsubscribe; nothing more will come for it either way.
            sub.state = SubscriptionState.UNSUBSCRIBED
            self._events.append(ev.ServerError(details, message))
        else:
            sub.state = SubscriptionState.REJECTED
            self._events.append(
                ev.SubscriptionRejected(sub.key, message.request_id or "", details, message)
            )

    def _on_stream(self, message: Envelope, now: float) -> None:
        key = self._key_of(message)
        seq_id = message.seq_id
        if key is not None and seq_id is not None:
            last = self.cursors.get(key)
            if last is not None:
                if seq_id <= last:
                    self._events.append(ev.DuplicateDropped(key, seq_id))
                    return
                if (
                    seq_id > last + 1
                    and spec.SEQ_IDS_CONTIGUOUS
                    and key.channel == spec.CHANNEL_SIGNAL
                    and key not in self._gap_announced
                ):
                    self._events.append(ev.SequenceJump(key, expected=last + 1, received=seq_id))
            self._gap_announced.discard(key)
            self.cursors[key] = seq_id
        self._events.append(ev.StreamMessage(key, message))

    def _on_gap(self, message: Envelope, now: float) -> None:
        strategy_id, channel = _gap_key(message.payload)
        last_replayed = protocol.parse_int(message.payload.get("from"))
        if strategy_id is not None:
            key = SubscriptionKey(strategy_id, channel)
            # The live stream jumps past the hole next: that jump is this gap, not a new one.
            self._gap_announced.add(key)
        text = message.payload.get("message")
        self._events.append(
            ev.GapReported(
                strategy_id=strategy_id,
                channel=channel,
                last_replayed=last_replayed,
                text=text if isinstance(text, str) else "",
                message=message,
            )
        )

    def _on_other_control(self, message: Envelope, now: float) -> None:
        self._events.append(ev.OtherControl(message))

    _handlers: ClassVar[dict[str, Callable[[ClientSession, Envelope, float], None]]] = {
        spec.MSG_CONNECTED: _on_connected,
        spec.MSG_HEARTBEAT: _on_heartbeat,
        spec.MSG_SUBSCRIPTION_ACK: _on_subscription_ack,
        spec.MSG_ERROR: _on_error,
        spec.CHANNEL_SIGNAL: _on_stream,
        spec.CHANNEL_POSITIONS: _on_stream,
        spec.MSG_GAP: _on_gap,
        spec.MSG_DISCONNECTED: _on_other_control,
    }

    # --- helpers ---------------------------------------------------------------------

    def _single_keys(self) -> dict[str, SubscriptionKey]:
        """Per channel, the one key subscribed, so payloads without a strategy still place."""
        by_channel: dict[str, list[SubscriptionKey]] = {}
        for key in self.subscriptions:
            by_channel.setdefault(key.channel, []).append(key)
        return {channel: keys[0] for channel, keys in by_channel.items() if len(keys) == 1}

    def _key_of(self, message: Envelope) -> SubscriptionKey | None:
        strategy_id = protocol.strategy_id_of(message.payload)
        if strategy_id is None:
            return self._only_key_by_channel.get(message.msg_type)
        return SubscriptionKey(strategy_id, message.msg_type)

    def _send_request(self, sub: Subscription, action: str) -> None:
        self._request_counter += 1
        request_id = f"{self._prefix}-{self._request_counter}"
        sub.request_id = request_id
        self._by_request_id[request_id] = sub
        resume_from = None
        if action == spec.ACTION_SUBSCRIBE and sub.key.channel == spec.CHANNEL_SIGNAL:
            resume_from = self.cursors.get(sub.key)
        request = protocol.subscription_request(
            action=action,
            channel=sub.key.channel,
            strategy_id=sub.key.strategy_id,
            request_id=request_id,
            timestamp=protocol.format_timestamp(self._wall_clock()),
            resume_from=resume_from,
        )
        self._outgoing.append(protocol.encode(request))
