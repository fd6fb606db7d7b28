"""``c2ws check`` as a library: :func:`check` connects once, waits for
``connection.connected``, asks for the given subscriptions, measures, and leaves cleanly::

    result = c2ws.check([12345678], "signal")       # key and URL as the CLI finds them
    if not result.ok:
        print([str(sub.key) for sub in result.rejected], result.clock)

It reports what a script needs to know before streaming: whether the key is accepted,
which subscriptions are allowed, the round trip (a WebSocket ping, else the fastest
subscription answer) and how far the server's clock is from ours.  The server stamps
``connection.connected`` and its answers with a second-precision ``timestamp``; each
stamp happened between our sending (or connecting) and our receiving, which brackets
the offset, and the brackets of all stamps are intersected (:class:`ClockOffset`).
The connection is the stream's own: the same connect, the same driver and session.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import orjson

from c2ws import events as ev
from c2ws import protocol, spec
from c2ws.delivery.dedupe import StreamFilter
from c2ws.errors import ConfigError, connection_error
from c2ws.events import EndReason, SubscriptionKey
from c2ws.net.connection import ConnectFailed, SocketTransport, open_connection
from c2ws.net.driver import Driver, DriverHooks
from c2ws.net.worker import end_for_connect_failure
from c2ws.render.diagnostics import describe_errors
from c2ws.session import ClientSession, ConnectionState, SessionTimeouts

__all__ = ["CheckResult", "ClockEstimate", "ClockOffset", "SubscriptionCheck", "check"]

# After every subscription is answered, how long to wait for the pong to our ping.
PONG_WAIT_SECONDS: Final = 2.0
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
    """One subscription tried: ``allowed``, or not and ``reason`` why (the server's error
    codes and messages, terminal-safe)."""

    key: SubscriptionKey
    allowed: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What :func:`check` found.  ``connect_seconds``: TCP, TLS and the upgrade;
    ``round_trip_seconds``: by ``round_trip_method``, ``"ping"`` (a WebSocket ping) or
    ``"subscription answer"`` (the fastest one), None when neither was measured;
    ``clock``: the server's clock minus this machine's (None without a usable stamp);
    ``subscriptions``: one :class:`SubscriptionCheck` per subscription asked for."""

    url: str
    connect_seconds: float
    round_trip_seconds: float | None
    round_trip_method: str  # "ping", "subscription answer" or "" (none measured)
    clock: ClockEstimate | None
    subscriptions: tuple[SubscriptionCheck, ...]

    @property
    def rejected(self) -> tuple[SubscriptionCheck, ...]:
        """The subscriptions the server refused."""
        return tuple(check for check in self.subscriptions if not check.allowed)

    @property
    def clock_rejected(self) -> bool:
        """The server's clock is so far from this machine's (``MAX_CLOCK_SKEW_SECONDS``,
        60 s, or more) that it rejects the timestamps c2ws sends: set the clock (NTP)."""
        return self.clock is not None and abs(self.clock.offset) >= spec.MAX_CLOCK_SKEW_SECONDS

    @property
    def clock_off(self) -> bool:
        """The clocks differ by ``CLOCK_OFFSET_WARN_SECONDS`` (20 s) or more: worth
        fixing before the server starts rejecting (see :attr:`clock_rejected`)."""
        return self.clock is not None and abs(self.clock.offset) >= spec.CLOCK_OFFSET_WARN_SECONDS

    @property
    def ok(self) -> bool:
        """Every subscription allowed, and the clock near enough for the server."""
        return not self.rejected and not self.clock_rejected


def check(
    strategies: Iterable[int | str] | int | str = (),
    channels: Iterable[str] | str = ("signal", "positions"),
    *,
    api_key: str | None = None,
    url: str | None = None,
    profile: str | None = None,
    timeout: float = spec.CHECK_TIMEOUT_SECONDS,
) -> CheckResult:
    """Check the connection, the key and the subscriptions of ``strategies`` on
    ``channels`` (none: the connection only), as ``c2ws check`` does: connect once,
    subscribe, measure the round trip and the clock offset, unsubscribe, close with 1000.

    ``api_key``, ``url``, ``profile``: as :func:`c2ws.stream` resolves them.
    ``timeout``: the whole check gives up after that many seconds.  Returns a
    :class:`CheckResult` (rejected subscriptions and the clock are in it, not raised).
    Raises :class:`~c2ws.errors.ConfigError` for settings no check could work with (at
    most one connection's worth, 100, of subscriptions), and the
    :class:`~c2ws.errors.ConnectionFailed` subclass of how it failed:
    ``AuthenticationFailed``, ``CannotConnect``, ``ServerBusy``, ``ConnectionLost`` (no
    answer before the timeout)."""
    from c2ws.config import Flags, check_api_key, check_url, connection_of
    from c2ws.streaming import subscription_keys

    keys = subscription_keys(strategies, channels)
    if api_key is None or url is None:
        url, api_key = connection_of(Flags(profile=profile, url=url, api_key=api_key),
                                     os.environ)
    check_api_key(api_key)
    check_url(url)
    if isinstance(timeout, bool) or not timeout > 0:
        raise ConfigError(f"timeout must be a positive number of seconds, not {timeout!r}",
                          param="--timeout")
    if len(keys) > spec.MAX_SUBSCRIPTIONS_PER_CONNECTION:
        raise ConfigError(f"{len(keys)} subscriptions: a check tries at most "
                          f"{spec.MAX_SUBSCRIPTIONS_PER_CONNECTION} (strategies x channels)",
                          param="STRATEGY_ID")
    return probe(url, api_key, keys, timeout=timeout)


def probe(
    url: str,
    api_key: str,
    keys: Sequence[SubscriptionKey],
    *,
    timeout: float = spec.CHECK_TIMEOUT_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
    connect: Callable[..., SocketTransport] = open_connection,
) -> CheckResult:
    """:func:`check` of settings already checked, with the clocks and the connect passed
    in.  At most one connection's worth of subscriptions
    (``spec.MAX_SUBSCRIPTIONS_PER_CONNECTION``).  The connection is the stream's own: the
    same connect and the same driver, with a probe's hooks."""
    if len(keys) > spec.MAX_SUBSCRIPTIONS_PER_CONNECTION:
        raise ValueError(f"a check asks for at most {spec.MAX_SUBSCRIPTIONS_PER_CONNECTION} "
                         "subscriptions")
    started, connecting_since = clock(), wall()
    try:
        transport = connect(url, api_key, timeout=timeout)
    except ConnectFailed as exc:
        raise connection_error(end_for_connect_failure(exc, url)) from None
    connect_seconds = clock() - started
    try:
        return _Probe(transport, url, keys, started + timeout, clock, wall, connect_seconds,
                      connecting_since).run()
    finally:
        transport.close()


class _Probe(DriverHooks):
    """The driver's hooks for a check: note when each request went out and when its
    answer came, ping once the connection is ready, and leave once everything is
    answered (and the pong is in, or PONG_WAIT_SECONDS have passed)."""

    def __init__(
        self, transport: SocketTransport, url: str, keys: Sequence[SubscriptionKey],
        deadline: float, clock: Callable[[], float], wall: Callable[[], float],
        connect_seconds: float, connecting_since: float,
    ) -> None:
        self.url, self.keys, self.deadline_at = url, tuple(keys), deadline
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
        self.driver = Driver(transport, self.session, hooks=self, clock=clock, wall=wall)
        self.offset = ClockOffset()
        self.sent_at: dict[str, float] = {}
        self.answered: dict[SubscriptionKey, SubscriptionCheck] = {}
        self.fastest_answer: float | None = None
        self.ping_sent: float | None = None
        self.pong_after: float | None = None
        self.finished = False

    def run(self) -> CheckResult:
        end = self.driver.run()
        if not self.finished:
            raise connection_error(end)
        method, round_trip = "", None
        if self.pong_after is not None:
            method, round_trip = "ping", self.pong_after
        elif self.fastest_answer is not None:
            method, round_trip = "subscription answer", self.fastest_answer
        return CheckResult(
            url=self.url, connect_seconds=self.connect_seconds, round_trip_seconds=round_trip,
            round_trip_method=method, clock=self.offset.estimate(),
            subscriptions=tuple(self.answered[key] for key in self.keys if key in self.answered),
        )

    # --- hooks -----------------------------------------------------------------------------

    def sent(self, data: bytes, wall: float) -> None:
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
            request_id = orjson.loads(data).get("request_id")
            if isinstance(request_id, str):
                self.sent_at[request_id] = wall

    def hand_over(self, events: list[ev.Event]) -> None:
        received = self.driver.read_wall
        for event in events:
            self._observe(event, received)
        if self.session.state is ConnectionState.READY and self.ping_sent is None:
            self.driver.ping(_PING_PAYLOAD)
            self.ping_sent = self.clock()
        self._finish_when_done(self.clock())

    def pong(self, data: bytes, now: float) -> None:
        if data == _PING_PAYLOAD and self.ping_sent is not None and self.pong_after is None:
            self.pong_after = now - self.ping_sent
            self._finish_when_done(now)

    def deadline(self) -> float | None:
        if self.finished:
            return None
        if self.ping_sent is not None and self.session.all_answered:
            return min(self.deadline_at, self.ping_sent + PONG_WAIT_SECONDS)
        return self.deadline_at

    def tick(self, now: float) -> None:
        session = self.session
        if not self.finished and now >= self.deadline_at:
            if session.state is ConnectionState.AWAITING_CONNECTED:
                session.fail(EndReason.NO_CONNECTED, "no connection.connected before the timeout")
                return
            if not session.all_answered:
                session.fail(EndReason.NO_ACK, "not every subscription was answered before "
                                               "the timeout")
                return
            self._finish()  # answered; the pong never came: report without it
            return
        self._finish_when_done(now)

    # --- the check ---------------------------------------------------------------------------

    def _finish_when_done(self, now: float) -> None:
        if self.finished or not self.session.all_answered or self.ping_sent is None:
            return
        if self.pong_after is not None or now >= self.ping_sent + PONG_WAIT_SECONDS:
            self._finish()

    def _finish(self) -> None:
        """Everything measured: unsubscribe, wait briefly for the answers, close (1000)."""
        self.finished = True
        self.driver.leave()

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
