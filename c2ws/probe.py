"""``c2ws check`` as a library: connect once, wait for ``connection.connected``, ask for
the given subscriptions, measure, and leave cleanly.

It reports what a script needs to know before streaming: whether the key is accepted,
which subscriptions are allowed, the round trip (a WebSocket ping, else the fastest
subscription answer) and how far the server's clock is from ours.  The server stamps
``connection.connected`` and its answers with a second-precision ``timestamp``; each
stamp happened between our sending (or connecting) and our receiving, which brackets
the offset, and the brackets of all stamps are intersected (:class:`ClockOffset`).
"""

from __future__ import annotations

import contextlib
import math
import secrets
import selectors
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import orjson
import websocket
from websocket import ABNF

from c2ws import events as ev
from c2ws import protocol, spec
from c2ws.delivery.dedupe import StreamFilter
from c2ws.events import ConnectionEnd, EndReason, SubscriptionKey
from c2ws.net.connection import BufferedWebSocket, ConnectFailed, open_connection
from c2ws.net.worker import end_for_connect_failure
from c2ws.render.diagnostics import describe_errors
from c2ws.session import ClientSession, ConnectionState, SessionTimeouts

# After every subscription is answered, how long to wait for the pong to our ping.
PONG_WAIT_SECONDS: Final = 2.0
# How long leaving waits for the unsubscribe answers, and for the close handshake.
LEAVE_WAIT_SECONDS: Final = 1.0
CLOSE_WAIT_SECONDS: Final = 2.0
_PING_PAYLOAD: Final = b"c2ws-check"


@dataclass(frozen=True, slots=True)
class ClockEstimate:
    """The server's clock minus this machine's, in seconds, give or take ``uncertainty``."""

    offset: float
    uncertainty: float


class ClockOffset:
    """Brackets the offset from server timestamps.  A stamp ``ts`` (resolution ``r``:
    1 s, or 1 ms when it has a fraction) made while our clock read between ``sent`` and
    ``received`` puts the offset in ``[ts - received, ts + r - sent]``."""

    def __init__(self) -> None:
        self._low = -math.inf
        self._high = math.inf
        self.samples = 0

    def observe(self, timestamp: str | None, sent: float | None, received: float) -> None:
        server = protocol.parse_timestamp(timestamp)
        if server is None or sent is None or received < sent:
            return
        resolution = 1.0 if server.is_integer() else 0.001
        low, high = server - received, server + resolution - sent
        self.samples += 1
        if max(self._low, low) <= min(self._high, high):
            self._low, self._high = max(self._low, low), min(self._high, high)
        else:  # the clocks disagree with earlier stamps (one was stepped): trust the newest
            self._low, self._high = low, high

    def estimate(self) -> ClockEstimate | None:
        if not self.samples:
            return None
        return ClockEstimate((self._low + self._high) / 2, (self._high - self._low) / 2)


@dataclass(frozen=True, slots=True)
class SubscriptionCheck:
    key: SubscriptionKey
    allowed: bool
    reason: str = ""  # why not, terminal-safe (the server's error codes and messages)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    url: str
    connect_seconds: float
    round_trip_seconds: float | None
    round_trip_method: str  # "ping", "subscription answer" or "" (none measured)
    clock: ClockEstimate | None
    subscriptions: tuple[SubscriptionCheck, ...]

    @property
    def rejected(self) -> tuple[SubscriptionCheck, ...]:
        return tuple(check for check in self.subscriptions if not check.allowed)


class ProbeFailed(Exception):
    """The check could not complete; ``end`` says how (its detail is safe to print)."""

    def __init__(self, end: ConnectionEnd, connect_seconds: float | None = None) -> None:
        super().__init__(end.detail or end.reason.value)
        self.end = end
        self.connect_seconds = connect_seconds


def probe(
    url: str,
    api_key: str,
    keys: Sequence[SubscriptionKey],
    *,
    timeout: float = 10.0,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
    connect: Callable[..., BufferedWebSocket] = open_connection,
) -> ProbeResult:
    """One check; raises :class:`ProbeFailed`.  At most one connection's worth of
    subscriptions (``spec.MAX_SUBSCRIPTIONS_PER_CONNECTION``)."""
    if len(keys) > spec.MAX_SUBSCRIPTIONS_PER_CONNECTION:
        raise ValueError(f"a check asks for at most {spec.MAX_SUBSCRIPTIONS_PER_CONNECTION} "
                         "subscriptions")
    started, connecting_since = clock(), wall()
    try:
        ws = connect(url, api_key, timeout=timeout)
    except ConnectFailed as exc:
        end = end_for_connect_failure(exc, url)
        raise ProbeFailed(end) from None
    connect_seconds = clock() - started
    try:
        return _Probe(ws, url, keys, started + timeout, clock, wall, connect_seconds,
                      connecting_since).run()
    finally:
        with contextlib.suppress(Exception):
            ws.shutdown()  # type: ignore[no-untyped-call]


class _Probe:
    def __init__(
        self, ws: BufferedWebSocket, url: str, keys: Sequence[SubscriptionKey], deadline: float,
        clock: Callable[[], float], wall: Callable[[], float], connect_seconds: float,
        connecting_since: float,
    ) -> None:
        self.ws, self.url, self.keys, self.deadline = ws, url, tuple(keys), deadline
        self.clock, self.wall = clock, wall
        self.connect_seconds = connect_seconds
        self.connecting_since = connecting_since
        budget = max(deadline - clock(), 0.1)
        self.session = ClientSession(
            request_id_prefix=f"c2ws-check-{secrets.token_hex(4)}",
            stream_filter=StreamFilter(keys, {}), now=clock(),
            timeouts=SessionTimeouts(connected=budget, ack=budget, silence=budget + 1),
        )
        for key in keys:
            self.session.subscribe(key, now=clock(), wall=wall())
        self.offset = ClockOffset()
        self.sent_at: dict[str, float] = {}
        self.answered: dict[SubscriptionKey, SubscriptionCheck] = {}
        self.fastest_answer: float | None = None
        self.ping_sent: float | None = None
        self.pong_after: float | None = None

    def run(self) -> ProbeResult:
        selector = selectors.DefaultSelector()
        selector.register(self.ws.sock, selectors.EVENT_READ)  # type: ignore[arg-type]
        try:
            while not self._done():
                self._step(selector)
        except ProbeFailed:
            raise
        except (websocket.WebSocketException, OSError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise ProbeFailed(ConnectionEnd(EndReason.LOST, f"connection lost: {reason}"),
                              self.connect_seconds) from None
        finally:
            selector.close()
        self._leave()
        method, round_trip = "", None
        if self.pong_after is not None:
            method, round_trip = "ping", self.pong_after
        elif self.fastest_answer is not None:
            method, round_trip = "subscription answer", self.fastest_answer
        return ProbeResult(
            url=self.url, connect_seconds=self.connect_seconds, round_trip_seconds=round_trip,
            round_trip_method=method, clock=self.offset.estimate(),
            subscriptions=tuple(self.answered[key] for key in self.keys if key in self.answered),
        )

    def _done(self) -> bool:
        if not self.session.all_answered or self.ping_sent is None:
            return False
        return self.pong_after is not None or self.clock() >= self.ping_sent + PONG_WAIT_SECONDS

    def _step(self, selector: selectors.BaseSelector) -> None:
        session, now = self.session, self.clock()
        if now >= self.deadline:
            if session.state is ConnectionState.AWAITING_CONNECTED:
                detail = "no connection.connected before the timeout"
                raise ProbeFailed(ConnectionEnd(EndReason.NO_CONNECTED, detail),
                                  self.connect_seconds)
            if not session.all_answered:
                raise ProbeFailed(ConnectionEnd(EndReason.NO_ACK, "not every subscription was "
                                                "answered before the timeout"),
                                  self.connect_seconds)
            return  # answered; the pong never came: report without it
        session.handle_timeout(now=now, wall=self.wall())
        self._send()
        if session.ended is not None:
            raise ProbeFailed(session.ended, self.connect_seconds)
        if session.state is ConnectionState.READY and self.ping_sent is None:
            self.ws.ping(_PING_PAYLOAD)
            self.ping_sent = self.clock()
        wake = min(self.deadline, session.next_deadline() or self.deadline)
        if self.ping_sent is not None and session.all_answered:
            wake = min(wake, self.ping_sent + PONG_WAIT_SECONDS)
        if self.ws.has_buffered_data() or selector.select(max(0.0, wake - self.clock())):
            self._read()

    def _send(self) -> None:
        for data in self.session.data_to_send():
            self.ws.send_text(data)
            with contextlib.suppress(orjson.JSONDecodeError):
                request_id = orjson.loads(data).get("request_id")
                if isinstance(request_id, str):
                    self.sent_at[request_id] = self.wall()

    def _read(self) -> None:
        while True:
            opcode, frame = self.ws.recv_data_frame(control_frame=True)
            if opcode in (ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY):
                received = self.wall()
                self.session.receive(frame.data, now=self.clock(), wall=received)
                for event in self.session.events_received():
                    self._observe(event, received)
            elif opcode == ABNF.OPCODE_PONG and self.ping_sent is not None:
                if frame.data == _PING_PAYLOAD and self.pong_after is None:
                    self.pong_after = self.clock() - self.ping_sent
            elif opcode == ABNF.OPCODE_CLOSE:
                code = int.from_bytes(frame.data[:2], "big") if len(frame.data) >= 2 else None
                self.session.close_received(code, frame.data[2:].decode("utf-8", "replace"))
            if self.session.ended is not None:
                raise ProbeFailed(self.session.ended, self.connect_seconds)
            if not self.ws.has_buffered_data():
                return

    def _observe(self, event: ev.Event, received: float) -> None:
        if isinstance(event, ev.Connected):
            self.offset.observe(event.message.timestamp, self.connecting_since, received)
        elif isinstance(event, (ev.SubscriptionConfirmed, ev.SubscriptionRejected)):
            sent = self.sent_at.get(event.request_id)
            self.offset.observe(event.message.timestamp, sent, received)
            if sent is not None and (self.fastest_answer is None
                                     or received - sent < self.fastest_answer):
                self.fastest_answer = received - sent
            if isinstance(event, ev.SubscriptionConfirmed):
                self.answered[event.key] = SubscriptionCheck(event.key, True)
            else:
                self.answered[event.key] = SubscriptionCheck(
                    event.key, False, describe_errors(event.errors)
                )

    def _leave(self) -> None:
        """Unsubscribe, wait briefly for the answers, close with 1000."""
        session = self.session
        with contextlib.suppress(Exception):
            if session.close(now=self.clock(), wall=self.wall()):
                self._send()
                leave_by = self.clock() + LEAVE_WAIT_SECONDS
                with selectors.DefaultSelector() as selector:
                    selector.register(self.ws.sock, selectors.EVENT_READ)  # type: ignore[arg-type]
                    while session.awaiting_unsubscribe and self.clock() < leave_by:
                        wait = max(0.0, leave_by - self.clock())
                        if self.ws.has_buffered_data() or selector.select(wait):
                            self._read()
        with contextlib.suppress(Exception):
            self.ws.close(status=spec.CLOSE_NORMAL, timeout=CLOSE_WAIT_SECONDS)
