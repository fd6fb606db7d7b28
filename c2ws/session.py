"""The sans-I/O C2 client session: one connection's protocol state, no sockets, no threads.

Feed it frames with :meth:`ClientSession.receive` and the clocks with
:meth:`ClientSession.handle_timeout`; ask for subscriptions at any time; collect the
frames it wants sent with :meth:`ClientSession.data_to_send` and what happened with
:meth:`ClientSession.events_received`.  Both clocks are passed in by the shell
(``now``: monotonic seconds for deadlines, ``wall``: epoch seconds for timestamps);
nothing here reads a clock.  Every way a connection can end goes through
:meth:`ClientSession.fail`, which records one :class:`~c2ws.events.ConnectionEnd`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar, Final

from c2ws import events as ev
from c2ws import protocol, spec
from c2ws.delivery.dedupe import StreamCursor, StreamFilter
from c2ws.events import ConnectionEnd, EndReason, SubscriptionKey
from c2ws.protocol import Envelope, MalformedMessage
from c2ws.speedups import RunSummary, run_summary
from c2ws.stream_head import (
    StreamHead,
    read_burst_heads,
    read_stream_head,
    read_stream_heads,
    run_of_heads,
)

# A close reason is at most 123 bytes on the wire; this bounds what we quote of it.
_MAX_CLOSE_REASON: Final = 123


def _gap_stream(payload: Mapping[str, object]) -> tuple[int | None, str]:
    """The stream a ``gap`` names: ``channel`` is ``strategy.signal:12345678``."""
    channel = payload.get("channel")
    strategy_id = protocol.parse_int(payload.get("strategy_id"))
    if isinstance(channel, str) and ":" in channel:
        name, _, suffix = channel.rpartition(":")
        parsed = protocol.parse_int(suffix)
        return (parsed if parsed is not None else strategy_id), name
    return strategy_id, channel if isinstance(channel, str) else spec.CHANNEL_SIGNAL


_MAX_INT: Final = spec.MAX_WIRE_INT
_STREAM_TYPES: Final = frozenset(spec.STREAM_MSG_TYPES)


class ConnectionState(Enum):
    AWAITING_CONNECTED = "awaiting-connected"  # upgraded; connection.connected not yet in
    READY = "ready"  # subscriptions flow
    CLOSING = "closing"  # we are leaving: no new subscriptions, stream messages ignored
    ENDED = "ended"  # see ``ClientSession.ended``


# Every allowed transition, in one place (h11-style); anything else is a bug.
_TRANSITIONS: Final[dict[ConnectionState, frozenset[ConnectionState]]] = {
    ConnectionState.AWAITING_CONNECTED: frozenset(
        {ConnectionState.READY, ConnectionState.CLOSING, ConnectionState.ENDED}
    ),
    ConnectionState.READY: frozenset({ConnectionState.CLOSING, ConnectionState.ENDED}),
    ConnectionState.CLOSING: frozenset({ConnectionState.ENDED}),
    ConnectionState.ENDED: frozenset(),
}


class SubscriptionState(Enum):
    QUEUED = "queued"  # wanted; sent once the connection is ready
    SUBSCRIBING = "subscribing"  # subscribe sent, no answer yet
    ACTIVE = "active"
    UNSUBSCRIBING = "unsubscribing"  # unsubscribe sent, no answer yet
    REJECTED = "rejected"


# Module-level names for the per-message checks (an identity test, no attribute lookup).
_READY: Final = ConnectionState.READY
_ENDED: Final = ConnectionState.ENDED
_ACTIVE: Final = SubscriptionState.ACTIVE
_SUBSCRIBING: Final = SubscriptionState.SUBSCRIBING
_STREAM_RUN: Final = ev.StreamRun
# In every heartbeat's frame as the server writes it (a test for "heartbeat" spelt with
# escapes is left to the general path, which answers it all the same).
_HEARTBEAT_TAG: Final = b'"heartbeat"'


@dataclass(slots=True)
class Subscription:
    key: SubscriptionKey
    state: SubscriptionState
    cursor: StreamCursor
    request_id: str | None = None  # the newest request for this key; older answers are stale
    # The replay phase: subscribed with resume_from, and neither a message above the
    # cursor nor the end of the replay window (``replay_until``, set at the ack) since.
    replaying: bool = False
    replay_until: float | None = None


@dataclass(frozen=True, slots=True)
class PendingRequest:
    key: SubscriptionKey
    action: str
    sent_at: float


@dataclass(frozen=True, slots=True)
class SessionTimeouts:
    """Deadlines, in seconds (documented in spec)."""

    connected: float = spec.CONNECTED_TIMEOUT_SECONDS
    ack: float = spec.SUBSCRIPTION_ACK_TIMEOUT_SECONDS
    silence: float = spec.CLIENT_STALE_AFTER_SECONDS
    replay_window: float = spec.REPLAY_WINDOW_SECONDS


def _verdict_due(sub: Subscription) -> float | None:
    """When the replay phase of ``sub`` ends or what it holds aside is decided, if timed."""
    replay_until = sub.replay_until if sub.replaying else None
    aside_until = sub.cursor.aside_until if sub.cursor.aside is not None else None
    if replay_until is None or aside_until is None:
        return replay_until if aside_until is None else aside_until
    return min(replay_until, aside_until)


def _replay_over(sub: Subscription, now: float) -> bool:
    """``sub`` is replaying and its replay window has passed at ``now``: the phase ends
    (:meth:`ClientSession._decide_streams`), and a message of it takes the general path,
    which applies every verdict then due first (another stream's sequence reset among
    them)."""
    return sub.replaying and sub.replay_until is not None and now >= sub.replay_until


class SubscriptionLimitError(ValueError):
    """More subscriptions than one connection may carry."""


class ClientSession:
    """Protocol state of one client connection."""

    def __init__(
        self,
        *,
        request_id_prefix: str,
        stream_filter: StreamFilter,
        now: float,
        timeouts: SessionTimeouts = SessionTimeouts(),
        shard: int = 0,
        max_subscriptions: int = spec.MAX_SUBSCRIPTIONS_PER_CONNECTION,
        report_heartbeats: bool = True,
        decoded_payloads: bool = True,
        message_runs: bool = False,
    ) -> None:
        if len(request_id_prefix) > spec.MAX_REQUEST_ID_LENGTH - 8:
            raise ValueError("request_id prefix too long")
        self.state = ConnectionState.AWAITING_CONNECTED
        self.ended: ConnectionEnd | None = None
        self.subscriptions: dict[SubscriptionKey, Subscription] = {}
        # Insertion order is sending order: the first entry is the oldest request.
        self.pending: dict[str, PendingRequest] = {}
        self.timeouts = timeouts
        self.shard = shard
        self.max_subscriptions = max_subscriptions
        # False: heartbeats are answered without an event (nobody shows them; an idle
        # connection then wakes no other thread).
        self.report_heartbeats = report_heartbeats
        # False: a stream message keeps its frame bytes and header fields, and its
        # decoded payload is freed here, by the thread that decoded it (see EngineConfig).
        self.decoded_payloads = decoded_payloads
        # True (with decoded_payloads False): a burst of the next messages of one stream
        # is one StreamRun event, checked and admitted as a whole (see _take_run).
        self.message_runs = message_runs and not decoded_payloads
        self.opened_at = now
        self.last_received = now
        self.last_heartbeat: float | None = None
        self.connected_at: float | None = None  # when connection.connected arrived
        self.dropped_while_leaving = 0  # stream messages ignored while closing/unsubscribing
        self._filter = stream_filter
        self._prefix = request_id_prefix
        self._request_counter = 0
        self._only_key_by_channel: dict[str, SubscriptionKey] | None = None
        # channel -> strategy id -> subscription: the per-message lookup, without hashing
        # a SubscriptionKey.
        self._by_channel: dict[str, dict[int, Subscription]] = {}
        self._outgoing: list[bytes] = []
        self._events: list[ev.Event] = []
        # Subscriptions with a verdict on a timer: in their replay phase, or with messages
        # held aside (see c2ws.delivery.dedupe).  Usually empty.
        self._deciding: dict[SubscriptionKey, Subscription] = {}

    # --- commands: allowed at any time -------------------------------------------------

    def subscribe(self, key: SubscriptionKey, *, now: float, wall: float) -> None:
        """Want ``key``: sent now if the connection is ready, else once it is."""
        if self.state in (ConnectionState.CLOSING, ConnectionState.ENDED):
            return
        sub = self.subscriptions.get(key)
        if sub is not None and sub.state in (
            SubscriptionState.QUEUED, SubscriptionState.SUBSCRIBING, SubscriptionState.ACTIVE
        ):
            return
        if sub is None:
            if self._live_count() >= self.max_subscriptions:
                raise SubscriptionLimitError(
                    f"one connection carries at most {self.max_subscriptions} subscriptions"
                )
            sub = Subscription(key, SubscriptionState.QUEUED, self._filter.track(key))
            self.subscriptions[key] = sub
            self._by_channel.setdefault(key.channel, {})[key.strategy_id] = sub
            self._only_key_by_channel = None
        if self.state is ConnectionState.READY:
            self._request(sub, spec.ACTION_SUBSCRIBE, now, wall)
        else:
            sub.state = SubscriptionState.QUEUED

    def unsubscribe(self, key: SubscriptionKey, *, now: float, wall: float) -> None:
        """Stop wanting ``key``, whatever its state (an unanswered subscribe included)."""
        sub = self.subscriptions.get(key)
        if sub is None or self.state is ConnectionState.ENDED:
            return
        if sub.state in (SubscriptionState.QUEUED, SubscriptionState.REJECTED):
            self._forget(sub)
        elif sub.state in (SubscriptionState.SUBSCRIBING, SubscriptionState.ACTIVE):
            # The server answers in order: this unsubscribe lands after the subscribe.
            self._request(sub, spec.ACTION_UNSUBSCRIBE, now, wall)

    def close(self, *, now: float, wall: float) -> int:
        """Start leaving: unsubscribe everything live; returns how many unsubscribes went
        out.  The shell then waits (briefly) for ``awaiting_unsubscribe`` and closes."""
        if self.state in (ConnectionState.CLOSING, ConnectionState.ENDED):
            return 0
        live = [
            sub for sub in self.subscriptions.values()
            if sub.state in (SubscriptionState.SUBSCRIBING, SubscriptionState.ACTIVE)
        ]
        for sub in live:
            self._request(sub, spec.ACTION_UNSUBSCRIBE, now, wall)
        self._move_to(ConnectionState.CLOSING)
        return len(live)

    def fail(self, reason: EndReason, detail: str = "", close_code: int | None = None) -> None:
        """The one way a session ends; the first ending wins."""
        if self.state is ConnectionState.ENDED:
            return
        self.ended = ConnectionEnd(reason, detail, close_code)
        self._move_to(ConnectionState.ENDED)

    def close_received(self, code: int | None, reason: str) -> None:
        """The server's close frame arrived (``code`` None: it carried no code)."""
        if self.state is ConnectionState.CLOSING:
            self.fail(EndReason.STOPPED, "closed by c2ws", code)
            return
        text = reason.strip()[:_MAX_CLOSE_REASON]
        said = f": {text}" if text else ""
        if code is None:
            self.fail(EndReason.SERVER_CLOSED, "the server closed the connection without a code")
        elif code == spec.CLOSE_POLICY_VIOLATION:
            # The documented 1008 (with no reason) is the per-key connection-limit race;
            # any policy close is treated as "busy": wait longer before trying again.
            hint = said or " (too many connections for this key?)"
            self.fail(
                EndReason.BUSY, f"the server closed the connection (code 1008{hint})", code
            )
        else:
            self.fail(
                EndReason.SERVER_CLOSED, f"the server closed the connection (code {code}{said})",
                code,
            )

    # --- input -------------------------------------------------------------------------

    def receive(self, data: bytes | str, *, now: float, wall: float) -> None:
        """Process one text frame."""
        self.receive_frames((data,), now=now, wall=wall)

    def receive_frames(self, frames: Sequence[bytes | str], *, now: float, wall: float) -> None:
        """Process text frames in order, as :meth:`receive` would one by one.

        The usual stream message (the next of its stream, for a live subscription) takes
        a short path: decoded once, routed and admitted inline.  Any other frame takes
        the general one.  Without ``decoded_payloads`` a frame's payload is not decoded
        at all (:mod:`c2ws.stream_head`).  A test holds the two paths together.
        """
        if self.state is _ENDED or not frames:
            return
        self.last_received = now
        if len(frames) == 1:
            # A lone frame (a heartbeat; a quiet stream) takes the general path: the short
            # one pays off in bursts, but for one frame after a sleep, bringing its code
            # back into the CPU's caches costs more than it saves (measured on idle
            # heartbeats: about 9 us each).
            self._receive_one(frames[0], now, wall)
            return
        if self.message_runs and self.state is _READY and self._take_run(frames, now):
            return
        self._each_frame(frames, now, wall)

    def heartbeat(self, data: bytes, *, now: float, wall: float) -> bytes | None:
        """One text frame that may be a heartbeat (an idle connection's every read):
        when :meth:`receive` would only answer it (a heartbeat, no event to report, no
        frame queued before its ack), that is done here and the ack's bytes returned,
        for the shell to send at once, instead of queued.  None: it is not one (or not
        only that), nothing was done; pass it to :meth:`receive`.  A test holds the two
        together."""
        if (
            self.report_heartbeats or self.state is _ENDED or self._outgoing
            or _HEARTBEAT_TAG not in data
        ):
            return None
        if not protocol.is_heartbeat(data):
            return None
        self.last_received = self.last_heartbeat = now
        return protocol.heartbeat_ack_bytes(wall)

    def receive_burst(self, ndjson: bytes, count: int, *, now: float, wall: float) -> None:
        """Process ``count`` text frames given as the lines of ``ndjson``, as
        :func:`c2ws.speedups.ndjson_burst` cuts a burst of them out of the bytes read
        (each line a frame, none holding a line break), as :meth:`receive_frames` would
        the frames: with message runs, read and admitted in one call if they are a run,
        else frame by frame."""
        if self.state is _ENDED or count < 1:
            return
        if self.message_runs and self.state is _READY:
            self.last_received = now
            run = run_summary(ndjson, count)  # the compiled scanner; None: it gave up
            heads = None
            if run is None and count > 1:  # (a lone frame: the general path, as ever)
                heads = read_burst_heads(ndjson, count)
                run = None if heads is None else run_of_heads(heads)
            if run and self._admit_run(run, ndjson, count, heads, now):  # type: ignore[arg-type]
                return
        frames = ndjson.split(b"\n")
        frames.pop()  # after the last newline
        self.last_received = now
        if len(frames) == 1:
            self._receive_one(frames[0], now, wall)
        else:
            self._each_frame(frames, now, wall)

    def _each_frame(self, frames: Sequence[bytes | str], now: float, wall: float) -> None:
        """receive_frames frame by frame (the short path for each usual one)."""
        by_channel, events = self._by_channel, self._events
        keep_payloads = self.decoded_payloads
        for data in frames:
            if self.state is not _READY:
                self._receive_one(data, now, wall)
                continue
            strategy_id: object
            if keep_payloads:
                decoded = self._decode(data)
                if decoded is None:
                    continue
                message, strategy_id = decoded, decoded.payload.get("StrategyId")
            else:
                head = read_stream_head(data)
                if head is None:
                    self._receive_one(data, now, wall)
                    continue
                message, strategy_id = head
            channel = by_channel.get(message.msg_type)
            sub = channel.get(strategy_id) if channel and type(strategy_id) is int else None
            if sub is not None:
                state, cursor, seq_id = sub.state, sub.cursor, message.seq_id
                held = cursor.held
                if (state is _ACTIVE or state is _SUBSCRIBING) and seq_id is not None and (
                    held is None or (seq_id == held + 1 and cursor.settled)
                ) and not (sub.replaying and _replay_over(sub, now)):  # no call per message
                    # StreamFilter.admit's usual case, inline: it runs per message.
                    cursor.held = seq_id
                    cursor.held_timestamp = message.timestamp
                    sub.replaying = False
                    events.append(ev.StreamMessage(cursor.key, message, seq_id))
                    continue
            if keep_payloads:
                self._dispatch(message, now, wall)
            else:
                self._receive_one(data, now, wall)  # decoded in full this time

    def _take_run(self, frames: Sequence[bytes | str], now: float) -> bool:
        """The whole burst as one :class:`~c2ws.events.StreamRun` (see _admit_run); False
        (nothing done) when it is not one, or a frame holds a line break."""
        heads = read_stream_heads(frames)
        run = None if heads is None else run_of_heads(heads)
        return run is not None and self._admit_run(
            run, b"\n".join([*frames, b""]), len(frames), heads, now)  # type: ignore[list-item]

    def _admit_run(
        self, run: RunSummary, ndjson: bytes, count: int, heads: list[StreamHead] | None,
        now: float,
    ) -> bool:
        """The burst of ``count`` frames (``ndjson``) whose headers make ``run`` (each
        the next message of the same stream: c2ws.speedups.run_summary) as one
        :class:`~c2ws.events.StreamRun`, when each frame is what the short path of
        :meth:`receive_frames` would admit: a live subscription, the cursor settled, the
        first just after it.  False (nothing done) otherwise: the caller goes frame by
        frame, with the same outcome as ever."""
        msg_type, strategy_id, first, last_timestamp = run
        channel = self._by_channel.get(msg_type)
        sub = channel.get(strategy_id) if channel else None
        if sub is None or (sub.state is not _ACTIVE and sub.state is not _SUBSCRIBING):
            return False
        cursor = sub.cursor
        held = cursor.held
        if not cursor.settled or (held is not None and first != held + 1):
            return False
        if _replay_over(sub, now):
            return False
        last = first + count - 1
        cursor.held = last
        cursor.held_timestamp = last_timestamp
        sub.replaying = False
        self._events.append(_STREAM_RUN(cursor.key, ndjson, count, last, heads))
        return True

    def _receive_one(self, data: bytes | str, now: float, wall: float) -> None:
        """The general path of one frame: every message type, every odd case."""
        if self.state is _ENDED:
            return
        try:
            message = protocol.decode(data)
        except MalformedMessage as exc:
            head = None if self.decoded_payloads else read_stream_head(data)
            if head is None or head[0].msg_type not in _STREAM_TYPES:
                self._events.append(ev.MalformedFrame(reason=str(exc), size=len(data)))
                return
            # Valid JSON that orjson cannot hold (a number beyond a double's range), in a
            # frame passed through as it is: delivered, as the short path does.
            self._on_stream(head[0], now, head[1])
            return
        self._dispatch(message, now, wall)

    def _decode(self, data: bytes | str) -> Envelope | None:
        """The frame's envelope; None when it is malformed (and reported as such)."""
        try:
            return protocol.decode(data)
        except MalformedMessage as exc:
            self._events.append(ev.MalformedFrame(reason=str(exc), size=len(data)))
            return None

    def _dispatch(self, message: Envelope, now: float, wall: float) -> None:
        msg_type = message.msg_type
        if msg_type in _STREAM_TYPES:
            self._on_stream(message, now)
            return
        handler = self._handlers.get(msg_type)
        if handler is None:
            self._events.append(ev.UnknownMessage(message))
        else:
            handler(self, message, now, wall)

    def handle_timeout(self, *, now: float, wall: float) -> None:
        """Apply every deadline that has passed at ``now``."""
        if self.state is ConnectionState.ENDED:
            return
        if self._deciding:
            self._decide_streams(now)
        if (
            self.state is ConnectionState.AWAITING_CONNECTED
            and now >= self.opened_at + self.timeouts.connected
        ):
            self.fail(
                EndReason.NO_CONNECTED,
                f"no connection.connected within {self.timeouts.connected:g} s of the upgrade",
            )
            return
        oldest = self._oldest_request()
        if (
            oldest is not None
            and self.state is not ConnectionState.CLOSING
            and now >= oldest.sent_at + self.timeouts.ack
        ):
            self.fail(
                EndReason.NO_ACK,
                f"no answer to {oldest.action} {oldest.key} within {self.timeouts.ack:g} s",
            )
            return
        if now >= self.last_received + self.timeouts.silence:
            self.fail(
                EndReason.SILENT,
                f"nothing (not even a heartbeat) arrived for {now - self.last_received:.0f} s",
            )

    def next_deadline(self) -> float | None:
        """Monotonic time of the next deadline, or None once the session has ended."""
        if self.state is ConnectionState.ENDED:
            return None
        deadline = self.last_received + self.timeouts.silence
        if self.state is ConnectionState.AWAITING_CONNECTED:
            deadline = min(deadline, self.opened_at + self.timeouts.connected)
        if self.pending and self.state is not ConnectionState.CLOSING:  # (every idle turn)
            oldest = next(iter(self.pending.values()))
            deadline = min(deadline, oldest.sent_at + self.timeouts.ack)
        for sub in self._deciding.values():
            due = _verdict_due(sub)
            if due is not None:
                deadline = min(deadline, due)
        return deadline

    def _decide_streams(self, now: float) -> None:
        """End replay phases whose window has passed; apply the verdicts due on what is
        held aside (a sequence reset)."""
        for key, sub in list(self._deciding.items()):
            replay_over = _replay_over(sub, now)
            if replay_over:
                sub.replaying = False
            StreamFilter.decide(sub.cursor, now, replay_over=replay_over, out=self._events)
            if not sub.replaying and sub.cursor.aside is None:
                del self._deciding[key]

    # --- output ------------------------------------------------------------------------

    def data_to_send(self) -> list[bytes]:
        frames, self._outgoing = self._outgoing, []
        return frames

    def events_received(self) -> list[ev.Event]:
        found, self._events = self._events, []
        return found

    # --- queries -----------------------------------------------------------------------

    @property
    def awaiting_unsubscribe(self) -> int:
        return self.count(SubscriptionState.UNSUBSCRIBING)

    @property
    def all_answered(self) -> bool:
        """Ready, and every subscription confirmed or rejected."""
        return self.state is ConnectionState.READY and all(
            sub.state in (SubscriptionState.ACTIVE, SubscriptionState.REJECTED)
            for sub in self.subscriptions.values()
        )

    def count(self, state: SubscriptionState) -> int:
        return sum(1 for sub in self.subscriptions.values() if sub.state is state)

    # --- message handlers --------------------------------------------------------------

    def _on_connected(self, message: Envelope, now: float, wall: float) -> None:
        if self.state is not ConnectionState.AWAITING_CONNECTED:
            self._events.append(ev.OtherControl(message))
            return
        self._move_to(ConnectionState.READY)
        self.connected_at = now
        self._events.append(ev.Connected(message, self.shard))
        for sub in list(self.subscriptions.values()):
            if sub.state is SubscriptionState.QUEUED:
                self._request(sub, spec.ACTION_SUBSCRIBE, now, wall)

    def _on_heartbeat(self, message: Envelope, now: float, wall: float) -> None:
        self.last_heartbeat = now
        self._outgoing.append(protocol.heartbeat_ack_bytes(wall))
        if self.report_heartbeats:
            self._events.append(ev.HeartbeatAnswered(message, self.shard))

    def _answered(self, message: Envelope) -> tuple[PendingRequest, Subscription] | None:
        """The request this answers and its subscription, if it is the newest for it."""
        pending = self.pending.pop(message.request_id or "", None)
        if pending is None:
            return None
        sub = self.subscriptions.get(pending.key)
        if sub is None or sub.request_id != message.request_id:
            return None  # superseded by a later request for the same key
        return pending, sub

    def _on_subscription_ack(self, message: Envelope, now: float, wall: float) -> None:
        answered = self._answered(message)
        if answered is None:
            self._events.append(ev.OtherControl(message))
            return
        pending, sub = answered
        if pending.action == spec.ACTION_UNSUBSCRIBE:
            self._forget(sub)
            self._events.append(ev.Unsubscribed(sub.key, message))
        else:
            sub.state = SubscriptionState.ACTIVE
            self._events.append(
                ev.SubscriptionConfirmed(sub.key, message.request_id or "", message)
            )
            if sub.replaying:  # the server replays right after the ack
                sub.replay_until = now + self.timeouts.replay_window
                self._deciding[sub.key] = sub

    def _on_error(self, message: Envelope, now: float, wall: float) -> None:
        details = tuple(protocol.error_details(message.payload))
        answered = self._answered(message)
        if answered is None:
            self._events.append(ev.ServerError(details, message))
            if any(detail.code == spec.ERROR_UNAUTHORIZED for detail in details):
                self.fail(EndReason.AUTH_FAILED, "the server withdrew the authorization")
            return
        pending, sub = answered
        if pending.action == spec.ACTION_UNSUBSCRIBE:
            # Refused to unsubscribe: nothing more is wanted from it either way.
            self._forget(sub)
            self._events.append(ev.ServerError(details, message))
        else:
            sub.state = SubscriptionState.REJECTED
            self._events.append(
                ev.SubscriptionRejected(sub.key, message.request_id or "", details, message)
            )

    def _on_stream(self, message: Envelope, now: float, strategy_id: int | None = None) -> None:
        """``strategy_id``: already read from the frame (its payload is then empty)."""
        # Runs for every signal and position: lookups by strategy id, state by identity.
        payload = message.payload
        if strategy_id is None:
            strategy_id = payload.get("StrategyId")
        if type(strategy_id) is not int or not 0 < strategy_id <= _MAX_INT:
            strategy_id = protocol.strategy_id_of(payload)
        channel = self._by_channel.get(message.msg_type)
        sub = channel.get(strategy_id) if channel is not None and strategy_id else None
        if sub is None:
            sub = self._place_unmatched(message, strategy_id)
            if sub is None:
                return
        state = sub.state
        if self.state is not _READY or (state is not _ACTIVE and state is not _SUBSCRIBING):
            self.dropped_while_leaving += 1
            return
        if not self.decoded_payloads and type(message.data) is bytes:
            message.payload, message.raw = {}, {}
        seq_id = message.seq_id
        if seq_id is None:
            self._events.append(ev.StreamMessage(sub.key, message))
            return
        if _replay_over(sub, now):
            # The window passed while frames kept the socket busy: the timer's work, now.
            self._decide_streams(now)
        if StreamFilter.admit(
            sub.cursor, message, seq_id, replaying=sub.replaying, now=now, out=self._events,
            window=self.timeouts.replay_window,
        ):
            sub.replaying = False
        if sub.cursor.aside is not None:
            self._deciding[sub.key] = sub

    def _place_unmatched(
        self, message: Envelope, strategy_id: int | None
    ) -> Subscription | None:
        """The subscription of a message that names no subscribed strategy: the channel's
        only one when the payload names none; else it is reported and None returned."""
        if strategy_id is None:
            key = self._only_key(message.msg_type)
            if key is not None:
                return self.subscriptions[key]
            if self._placeable_channel(message.msg_type):
                # Several subscriptions on this channel and the payload names none of them.
                self._events.append(ev.StreamMessage(None, message))
                return None
        self._events.append(ev.UnexpectedStream(strategy_id, message.msg_type))
        return None

    def _on_gap(self, message: Envelope, now: float, wall: float) -> None:
        strategy_id, channel = _gap_stream(message.payload)
        key = SubscriptionKey(strategy_id, channel) if strategy_id is not None else None
        if key is None or key not in self.subscriptions:
            self._events.append(ev.UnexpectedStream(strategy_id, channel))
            return
        text = message.payload.get("message")
        self._filter.announce_gap(
            key, protocol.parse_int(message.payload.get("from")),
            text if isinstance(text, str) else "", message, self._events,
        )

    def _on_other_control(self, message: Envelope, now: float, wall: float) -> None:
        self._events.append(ev.OtherControl(message))

    _handlers: ClassVar[Mapping[str, Callable[[ClientSession, Envelope, float, float], None]]] = {
        spec.MSG_CONNECTED: _on_connected,
        spec.MSG_HEARTBEAT: _on_heartbeat,
        spec.MSG_SUBSCRIPTION_ACK: _on_subscription_ack,
        spec.MSG_ERROR: _on_error,
        spec.MSG_GAP: _on_gap,
        spec.MSG_DISCONNECTED: _on_other_control,
    }

    # --- helpers -----------------------------------------------------------------------

    def _move_to(self, state: ConnectionState) -> None:
        if state not in _TRANSITIONS[self.state]:
            raise RuntimeError(f"session cannot go from {self.state.value} to {state.value}")
        self.state = state

    def _live_count(self) -> int:
        # An unsubscribe on its way does not count: the server takes requests in order,
        # so it has left by the time a subscribe sent after it arrives (a live change
        # may swap strategies on a full connection).
        return sum(
            1 for sub in self.subscriptions.values()
            if sub.state is not SubscriptionState.REJECTED
            and sub.state is not SubscriptionState.UNSUBSCRIBING
        )

    def _oldest_request(self) -> PendingRequest | None:
        return next(iter(self.pending.values()), None)

    def _forget(self, sub: Subscription) -> None:
        self._deciding.pop(sub.key, None)
        del self.subscriptions[sub.key]
        del self._by_channel[sub.key.channel][sub.key.strategy_id]
        self._only_key_by_channel = None

    def _placeable_channel(self, channel: str) -> bool:
        return any(key.channel == channel for key in self.subscriptions)

    def _only_key(self, channel: str) -> SubscriptionKey | None:
        """The channel's only subscription, if it has exactly one."""
        if self._only_key_by_channel is None:
            by_channel: dict[str, list[SubscriptionKey]] = {}
            for key in self.subscriptions:
                by_channel.setdefault(key.channel, []).append(key)
            self._only_key_by_channel = {
                name: keys[0] for name, keys in by_channel.items() if len(keys) == 1
            }
        return self._only_key_by_channel.get(channel)

    def _request(self, sub: Subscription, action: str, now: float, wall: float) -> None:
        self._request_counter += 1
        request_id = f"{self._prefix}-{self._request_counter}"
        sub.request_id = request_id
        self.pending[request_id] = PendingRequest(sub.key, action, now)
        resume_from = None
        if action == spec.ACTION_SUBSCRIBE:
            sub.state = SubscriptionState.SUBSCRIBING
            resume_from = self._filter.resume_from(sub.key)
            sub.replaying = bool(resume_from)
            sub.replay_until = None
            cursor = sub.cursor
            if cursor.aside is not None:
                # Held aside on an earlier connection: this replay phase decides, or, with
                # none, a window from now.
                cursor.aside_until = None if sub.replaying else now + self.timeouts.replay_window
                self._deciding[sub.key] = sub
        else:
            sub.state = SubscriptionState.UNSUBSCRIBING
        request = protocol.subscription_request(
            action=action,
            channel=sub.key.channel,
            strategy_id=sub.key.strategy_id,
            request_id=request_id,
            timestamp=protocol.format_timestamp(wall),
            resume_from=resume_from,
        )
        self._outgoing.append(protocol.encode(request))
