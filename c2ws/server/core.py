"""The reference server's protocol logic, with no sockets, tasks or threads.

Everything here is fed decoded bytes and the clock (epoch seconds as floats) and answers
with encoded messages to send or an action to take, so the whole C2 server behaviour can
be tested without a network.  ``c2ws.server.app`` is the asyncio shell around it.

- ``StreamStore``: every published stream message, numbered per (strategy, channel).
- ``ServerSession``: one connection: validation, subscriptions, replay, heartbeats.
- ``Admission``: the HTTP-upgrade checks (API key, per-key and global connection caps).

Every envelope is built through ``c2ws.protocol``.
"""

from __future__ import annotations

import http
import itertools
import secrets
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

import orjson

from c2ws import protocol, spec
from c2ws.protocol import ErrorDetail, JsonObject

IdFactory = Callable[[], str]
Authorizer = Callable[[int], bool]
Subscription = tuple[int, str]
"""(strategy_id, channel)"""

DEFAULT_HISTORY: Final = 10_000
FORBIDDEN_MESSAGE: Final = "Not authorized to subscribe to Strategy"


def random_message_id() -> str:
    """``msg_`` and 32 random hex digits, like the ids in the docs."""
    return "msg_" + secrets.token_hex(16)


def sequential_message_ids(start: int = 1) -> IdFactory:
    """A deterministic id factory (``msg_000…001``, ``msg_000…002``, …) for tests and replays."""
    counter = itertools.count(start)
    return lambda: f"msg_{next(counter):032x}"


# --- stream store -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One published stream message.  ``data`` is the exact frame every subscriber gets,
    live or replayed, so a replay is byte-identical to the original delivery."""

    strategy_id: int
    channel: str
    seq_id: int
    envelope: JsonObject
    data: bytes


@dataclass(frozen=True, slots=True)
class Replay:
    """What a ``resume_from`` asks for, as far as the store can answer it.

    ``history_lost``: some signals right after ``after_seq`` are no longer retained, so
    ``messages`` starts later than ``after_seq + 1``.
    ``truncated``: more signals were missed than ``limit``; ``messages`` holds the first
    ``limit`` of them.
    """

    messages: tuple[StoredMessage, ...]
    history_lost: bool
    truncated: bool
    oldest_retained: int


class _Stream:
    __slots__ = ("history", "next_seq")

    def __init__(self, retain: int) -> None:
        self.history: deque[StoredMessage] = deque(maxlen=retain)
        self.next_seq = 1


class StreamStore:
    """Per strategy: the signal history (the newest ``history`` messages) and the next
    ``seq_id`` of each channel.  seq_ids start at 1 and are contiguous per strategy per
    channel.  Positions are numbered too but not retained: ``resume_from`` applies to
    signals only.
    """

    def __init__(
        self, *, history: int = DEFAULT_HISTORY, id_factory: IdFactory = random_message_id
    ) -> None:
        if history < 1:
            raise ValueError("history must keep at least one message")
        self._history = history
        self._id_factory = id_factory
        self._streams: dict[Subscription, _Stream] = {}

    def publish(
        self, channel: str, strategy_id: int, payload: JsonObject, now: float
    ) -> StoredMessage:
        if channel not in spec.STREAM_MSG_TYPES:
            raise ValueError(f"not a stream channel: {channel!r}")
        stream = self._streams.get((strategy_id, channel))
        if stream is None:
            retain = self._history if channel == spec.CHANNEL_SIGNAL else 0
            stream = self._streams[(strategy_id, channel)] = _Stream(retain)
        seq_id = stream.next_seq
        stream.next_seq += 1
        message = protocol.server_message(
            channel,
            message_id=self._id_factory(),
            timestamp=protocol.format_timestamp(now),
            payload=payload,
            seq_id=seq_id,
        )
        stored = StoredMessage(strategy_id, channel, seq_id, message, protocol.encode(message))
        stream.history.append(stored)
        return stored

    def publish_signal(self, strategy_id: int, payload: JsonObject, now: float) -> JsonObject:
        return self.publish(spec.CHANNEL_SIGNAL, strategy_id, payload, now).envelope

    def publish_position(self, strategy_id: int, payload: JsonObject, now: float) -> JsonObject:
        return self.publish(spec.CHANNEL_POSITIONS, strategy_id, payload, now).envelope

    def stream_keys(self) -> frozenset[Subscription]:
        """The (strategy, channel) streams something was published on."""
        return frozenset(self._streams)

    def last_seq(self, strategy_id: int, channel: str = spec.CHANNEL_SIGNAL) -> int:
        """The seq_id of the newest message of a stream, 0 when nothing was published."""
        stream = self._streams.get((strategy_id, channel))
        return 0 if stream is None else stream.next_seq - 1

    def replay(self, strategy_id: int, after_seq: int, limit: int = spec.REPLAY_LIMIT) -> Replay:
        """The retained signals with ``seq_id > after_seq``, oldest first, at most ``limit``."""
        stream = self._streams.get((strategy_id, spec.CHANNEL_SIGNAL))
        if stream is None:
            return Replay(messages=(), history_lost=False, truncated=False, oldest_retained=1)
        history = stream.history
        oldest = history[0].seq_id if history else stream.next_seq
        history_lost = after_seq + 1 < oldest
        # seq_ids in the history are contiguous, so the position follows from the number.
        start = max(after_seq + 1 - oldest, 0)
        available = max(len(history) - start, 0)
        messages = tuple(itertools.islice(history, start, start + min(available, limit)))
        return Replay(
            messages=messages,
            history_lost=history_lost,
            truncated=available > limit,
            oldest_retained=oldest,
        )


# --- one connection -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimerResult:
    """What a timer tick asks for: messages to send, then possibly a close."""

    messages: list[bytes] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""


def _salvage_request_id(data: object) -> str | None:
    """The request_id of a frame that parsed as JSON but is not a valid envelope."""
    if not isinstance(data, (bytes, str)) or len(data) > spec.MAX_FRAME_BYTES:
        return None  # not a frame, or too big to be worth parsing for an id
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if isinstance(obj, dict):
        request_id = obj.get("request_id")
        if isinstance(request_id, str):
            return request_id
    return None


class ServerSession:
    """The server side of one connection, sans-I/O.

    Call ``start`` once right after the upgrade, ``receive`` with every client frame,
    and ``on_timer`` whenever ``next_deadline`` passes.  Each returns the encoded frames to
    send, in order.  Live stream messages are the shell's business: it asks ``wants``.

    Subscribing and unsubscribing are idempotent: unsubscribing from a channel that is not
    subscribed is acked anyway, so a client can always clean up blindly.

    Heartbeats: one every ``heartbeat_interval``; if no ``heartbeat.ack`` arrives within
    ``heartbeat_interval + heartbeat_grace`` of the previous ack (or of ``start``), the
    connection is to be closed with ``spec.CLOSE_HEARTBEAT_TIMEOUT``.  While heartbeats
    are disabled (a fault knob of the reference server) no acks are expected either.

    Like every client message, ``heartbeat.ack`` must carry a timestamp within one minute
    of UTC; an ack that fails the check is answered with an error and does not count.
    """

    def __init__(
        self,
        *,
        store: StreamStore,
        authorizer: Authorizer,
        api_key: str = "",
        heartbeat_interval: float = spec.HEARTBEAT_INTERVAL_SECONDS,
        heartbeat_grace: float = spec.HEARTBEAT_GRACE_SECONDS,
        max_subscriptions: int = spec.MAX_SUBSCRIPTIONS_PER_CONNECTION,
        replay_limit: int = spec.REPLAY_LIMIT,
        id_factory: IdFactory = random_message_id,
    ) -> None:
        if heartbeat_interval <= 0 or heartbeat_grace < 0:
            raise ValueError("heartbeat interval must be positive and grace non-negative")
        self.api_key = api_key
        self._store = store
        self._authorizer = authorizer
        self._interval = heartbeat_interval
        self._grace = heartbeat_grace
        self._max_subscriptions = max_subscriptions
        self._replay_limit = replay_limit
        self._new_id = id_factory
        self._subscriptions: set[Subscription] = set()
        self._started = False
        self._closed = False
        self._heartbeats_enabled = True
        self._next_heartbeat_at = 0.0
        self._last_ack_at = 0.0
        # A heartbeat went out after the last ack (or the start): only then can the
        # client be late.
        self._heartbeat_unanswered = False
        self.heartbeat_acks = 0

    # -- queries --

    @property
    def subscriptions(self) -> frozenset[Subscription]:
        return frozenset(self._subscriptions)

    @property
    def closed(self) -> bool:
        return self._closed

    def wants(self, strategy_id: int, channel: str) -> bool:
        return not self._closed and (strategy_id, channel) in self._subscriptions

    def next_deadline(self) -> float | None:
        """When ``on_timer`` next has something to do; None while nothing is scheduled."""
        if not self._started or self._closed or not self._heartbeats_enabled:
            return None
        return min(self._next_heartbeat_at, self._ack_deadline())

    # -- inputs --

    def start(self, now: float) -> list[bytes]:
        """The ``connection.connected`` message; starts the heartbeat clock."""
        self._started = True
        self._last_ack_at = now
        self._heartbeat_unanswered = False
        self._next_heartbeat_at = now + self._interval
        return [self._message(spec.MSG_CONNECTED, now)]

    def set_heartbeats_enabled(self, enabled: bool, now: float) -> None:
        """Stop or resume heartbeats; on resume the ack clock restarts from ``now``."""
        if enabled and not self._heartbeats_enabled:
            self._last_ack_at = now
            self._heartbeat_unanswered = False
            self._next_heartbeat_at = now + self._interval
        self._heartbeats_enabled = enabled

    def mark_closed(self) -> None:
        """The connection is going away: no more heartbeats or deliveries."""
        self._closed = True

    def on_timer(self, now: float) -> TimerResult:
        if self.next_deadline() is None:
            return TimerResult()
        if now >= self._ack_deadline():
            if self._heartbeat_unanswered:
                self._closed = True
                return TimerResult(close_code=spec.CLOSE_HEARTBEAT_TIMEOUT,
                                   close_reason="heartbeat.ack not received")
            # This timer ran so late that the deadline passed before the heartbeat due
            # went out: a client is never late for a heartbeat it was not sent.  It has
            # the grace from now, as if the heartbeat had gone out on time.
            self._last_ack_at = now - self._interval
        if now < self._next_heartbeat_at:
            return TimerResult()
        # A late tick sends one heartbeat, not a burst for every interval it missed.
        while self._next_heartbeat_at <= now:
            self._next_heartbeat_at += self._interval
        self._heartbeat_unanswered = True
        return TimerResult(messages=[self._message(spec.MSG_HEARTBEAT, now)])

    def receive(self, data: bytes | str, now: float) -> list[bytes]:
        """Handle one client frame; never raises for any input.

        Whatever a frame holds, the answer is well-formed: ``error`` (INVALID_PARAMETER
        naming the field, FORBIDDEN, LIMIT_EXCEEDED), ``subscription.ack`` with a replay,
        or nothing (a valid ``heartbeat.ack``).  Only subscriptions of strategies the
        authorizer allows are kept, at most ``max_subscriptions``: nothing a client sends
        grows the session otherwise.
        """
        try:
            message = protocol.decode(data)
        except protocol.MalformedMessage as exc:
            detail = ErrorDetail(spec.ERROR_INVALID_PARAMETER, f"Malformed message: {exc}")
            return [self._error([detail], _salvage_request_id(data), now)]
        if message.msg_type == spec.MSG_HEARTBEAT_ACK:
            return self._receive_heartbeat_ack(message, now)
        if message.msg_type == spec.MSG_SUBSCRIPTION_REQUEST:
            return self._receive_subscription_request(message, now)
        detail = ErrorDetail(
            spec.ERROR_UNKNOWN_MESSAGE_TYPE,
            f"Unknown msg_type {message.msg_type[:64]!r}: a client may send only "
            f"{spec.MSG_SUBSCRIPTION_REQUEST} or {spec.MSG_HEARTBEAT_ACK}",
            field="MsgType",
        )
        return [self._error([detail], message.request_id, now)]

    # -- internals --

    def _ack_deadline(self) -> float:
        return self._last_ack_at + self._interval + self._grace

    def _receive_heartbeat_ack(self, message: protocol.Envelope, now: float) -> list[bytes]:
        sent_at = protocol.parse_timestamp(message.timestamp) if message.timestamp else None
        if sent_at is None or abs(sent_at - now) > spec.MAX_CLOCK_SKEW_SECONDS:
            detail = ErrorDetail(
                spec.ERROR_INVALID_PARAMETER,
                "timestamp missing, not UTC ISO 8601, or not within 1 minute of UTC",
                field="Timestamp",
            )
            return [self._error([detail], message.request_id, now)]
        self._last_ack_at = now
        self._heartbeat_unanswered = False
        self.heartbeat_acks += 1
        return []

    def _receive_subscription_request(self, message: protocol.Envelope, now: float) -> list[bytes]:
        """Subscribe or unsubscribe.

        Both actions are idempotent: subscribing again to a live subscription is acked
        (and replays again when ``resume_from`` asks for it); unsubscribing from a channel
        that is not subscribed is acked as well, so a client can always clean up blindly.
        Authorization is checked on subscribe only.
        """
        checked = protocol.validate_subscription_request(message, now=now)
        if isinstance(checked, list):
            return [self._error(checked, message.request_id, now)]
        key = (checked.strategy_id, checked.channel)
        ack = self._message(
            spec.MSG_SUBSCRIPTION_ACK,
            now,
            payload={
                "action": checked.action,
                "channel": checked.channel,
                "strategy_id": checked.strategy_id,
            },
            request_id=checked.request_id,
        )
        if checked.action == spec.ACTION_UNSUBSCRIBE:
            self._subscriptions.discard(key)
            return [ack]
        if not self._authorizer(checked.strategy_id):
            detail = ErrorDetail(spec.ERROR_FORBIDDEN, FORBIDDEN_MESSAGE, field="StrategyId")
            return [self._error([detail], checked.request_id, now)]
        if key not in self._subscriptions and len(self._subscriptions) >= self._max_subscriptions:
            detail = ErrorDetail(
                spec.ERROR_LIMIT_EXCEEDED,
                f"Subscription limit of {self._max_subscriptions} per connection reached",
            )
            return [self._error([detail], checked.request_id, now)]
        self._subscriptions.add(key)
        if checked.resume_from <= 0:
            return [ack]
        return [ack, *self._replay(checked.strategy_id, checked.resume_from, now)]

    def _replay(self, strategy_id: int, resume_from: int, now: float) -> list[bytes]:
        """The missed signals, framed by ``gap`` messages where they cannot all be sent.

        - More than the replay limit missed: after the last replayed signal, a ``gap``
          whose ``from`` is that signal's seq_id (the docs' behaviour).
        - Our choice: when ``resume_from`` is older than the retained history, a ``gap``
          comes first, with ``from`` = ``resume_from`` (the client holds everything up to
          it; the REST fetch starts right after), followed by the retained signals.
        - A ``resume_from`` at or beyond the newest seq_id replays nothing.
        """
        replay = self._store.replay(strategy_id, resume_from, self._replay_limit)
        frames: list[bytes] = []
        if replay.history_lost:
            frames.append(
                self._gap(
                    strategy_id,
                    resume_from,
                    f"Signals {resume_from + 1} to {replay.oldest_retained - 1} "
                    "are no longer retained",
                    now,
                )
            )
        frames.extend(stored.data for stored in replay.messages)
        if replay.truncated:
            message = f"Replay limit of {self._replay_limit} messages exceeded"
            frames.append(self._gap(strategy_id, replay.messages[-1].seq_id, message, now))
        return frames

    def _gap(self, strategy_id: int, from_seq: int, message: str, now: float) -> bytes:
        payload = protocol.gap_payload(strategy_id=strategy_id, from_seq=from_seq, message=message)
        return self._message(spec.MSG_GAP, now, payload=payload)

    def _error(self, details: list[ErrorDetail], request_id: str | None, now: float) -> bytes:
        payload = protocol.error_payload(details)
        return self._message(spec.MSG_ERROR, now, payload=payload, request_id=request_id)

    def _message(
        self,
        msg_type: str,
        now: float,
        *,
        payload: JsonObject | None = None,
        request_id: str | None = None,
    ) -> bytes:
        return protocol.encode(
            protocol.server_message(
                msg_type,
                message_id=self._new_id(),
                timestamp=protocol.format_timestamp(now),
                payload=payload,
                request_id=request_id,
            )
        )


# --- admission at upgrade time --------------------------------------------------------

ERROR_RATE_LIMITED: Final = "RATE_LIMITED"
ERROR_SERVICE_UNAVAILABLE: Final = "SERVICE_UNAVAILABLE"


@dataclass(frozen=True, slots=True)
class Rejection:
    """An HTTP refusal of the upgrade: status, ``X-WS-Error`` header and JSON body fields."""

    status: int
    header: str
    code: str
    message: str

    def body(self) -> bytes:
        return orjson.dumps({"code": self.code, "message": self.message})


def rejection_for_status(status: int) -> Rejection:
    """The refusal of an upgrade with ``status``: for 401, 429 and 503 the answer the
    upgrade checks give (so a client cannot tell it from a real refusal), for any other
    4xx or 5xx status its standard phrase.  ValueError for a status that is no error."""
    if status == spec.HTTP_UNAUTHORIZED:
        return Rejection(status, "Invalid API key", spec.ERROR_UNAUTHORIZED, "Invalid API key")
    if status == spec.HTTP_TOO_MANY_REQUESTS:
        return Rejection(status, "Connection limit exceeded", ERROR_RATE_LIMITED,
                         "Connection limit per API key reached")
    if status == spec.HTTP_SERVICE_UNAVAILABLE:
        return Rejection(status, "Server connection limit reached", ERROR_SERVICE_UNAVAILABLE,
                         "Server connection limit reached, try again later")
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = None
    if phrase is None or not 400 <= status <= 599:
        raise ValueError(f"{status} is not an HTTP error status (400-599)")
    return Rejection(status, phrase, f"HTTP_{status}", phrase)


def bearer_key(authorization: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header value; None when absent or blank."""
    if authorization is None:
        return None
    scheme, _, key = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return key.strip() or None


class Admission:
    """Who may open a connection.

    ``check`` runs before the upgrade and counts only established connections, so two
    connections of one key can both pass it at the same moment; ``register`` (right after
    the upgrade) then refuses the one over the limit, which the shell closes with 1008
    and no error message: the race the docs describe.
    """

    def __init__(
        self,
        api_keys: Iterable[str],
        *,
        max_per_key: int = spec.MAX_CONNECTIONS_PER_KEY,
        max_total: int = 1000,
    ) -> None:
        self._api_keys = frozenset(api_keys)
        self._max_per_key = max_per_key
        self._max_total = max_total
        self._per_key: dict[str, int] = {}
        self._total = 0

    @property
    def total(self) -> int:
        return self._total

    def count(self, api_key: str) -> int:
        return self._per_key.get(api_key, 0)

    def check(self, authorization: str | None) -> str | Rejection:
        """The API key when the upgrade may proceed, else why not."""
        key = bearer_key(authorization)
        if key is None:
            return Rejection(
                spec.HTTP_UNAUTHORIZED,
                "Missing API key",
                spec.ERROR_UNAUTHORIZED,
                "Missing API key",
            )
        if key not in self._api_keys:
            return Rejection(
                spec.HTTP_UNAUTHORIZED,
                "Invalid API key",
                spec.ERROR_UNAUTHORIZED,
                "Invalid API key",
            )
        if self.count(key) >= self._max_per_key:
            return Rejection(
                spec.HTTP_TOO_MANY_REQUESTS,
                "Connection limit exceeded",
                ERROR_RATE_LIMITED,
                f"Connection limit of {self._max_per_key} per API key reached",
            )
        if self._total >= self._max_total:
            return Rejection(
                spec.HTTP_SERVICE_UNAVAILABLE,
                "Server connection limit reached",
                ERROR_SERVICE_UNAVAILABLE,
                "Server connection limit reached, try again later",
            )
        return key

    def register(self, api_key: str) -> bool:
        """Count an established connection; False when it puts its key over the limit
        (it stays counted until ``release``)."""
        self._per_key[api_key] = self.count(api_key) + 1
        self._total += 1
        return self._per_key[api_key] <= self._max_per_key

    def release(self, api_key: str) -> None:
        remaining = self.count(api_key) - 1
        if remaining > 0:
            self._per_key[api_key] = remaining
        else:
            self._per_key.pop(api_key, None)
        self._total = max(self._total - 1, 0)
