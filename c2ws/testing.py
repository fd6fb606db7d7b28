"""Test a bot offline: the bundled reference server as a fixture.

::

    from c2ws import testing

    with testing.server() as srv:
        bot = start_my_bot(url=srv.url, api_key=srv.api_key, strategy=12345678)
        srv.wait_for_subscribers(1, strategy_id=12345678)
        envelope = srv.publish(12345678, {"Side": "1", "OrderQuantity": 2})
        ...  # assert what the bot did with signal envelope["seq_id"]
        srv.drop_connections()  # and that it comes back and resumes

``server()`` starts a reference server (the same one as ``c2ws serve``: the C2 protocol,
heartbeats, ``resume_from`` replay, the documented limits) on 127.0.0.1 on a free port,
in a background thread of the test process, and stops it when the ``with`` block ends.
Nothing is published unless the test publishes it (or turns the synthetic feed on).
``TestServer`` publishes, injects faults and shows what each client sent.

With pytest, the ``c2_server`` fixture (``c2ws.pytest_plugin``, installed with c2ws) gives
each test a fresh server; ``@pytest.mark.c2_server_options(...)`` passes ``server()``'s
options.  The server runs on the ``websockets`` package: install ``c2ws[server]``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Final, TypeVar, cast

from c2ws import spec
from c2ws.protocol import JsonObject

try:
    from c2ws.server.app import (
        CLOSE_SERVICE_RESTART,
        ConnectionEnd,
        ConnectionRecord,
        ReferenceServer,
        ServerConfig,
        wait_for,
    )
    from c2ws.server.core import DEFAULT_HISTORY
    from c2ws.server.feed import DEFAULT_STRATEGIES
    from c2ws.server.rest import RestRequestRecord
except ModuleNotFoundError as missing:  # pragma: no branch - depends on what is installed
    if (missing.name or "").partition(".")[0] != "websockets":
        raise
    raise ModuleNotFoundError(
        "c2ws.testing runs the reference server, which needs the websockets package: "
        "pip install 'c2ws[server]'",
        name=missing.name,
    ) from missing

__all__ = [
    "DEFAULT_API_KEY",
    "ConnectionEnd",
    "ConnectionRecord",
    "RestRequestRecord",
    "TestServer",
    "server",
]

T = TypeVar("T")

DEFAULT_API_KEY: Final = "c2ws-test-key"
"""The key a test server accepts unless told otherwise (``srv.api_key``)."""

_CHANNELS: Final = {
    "signal": spec.CHANNEL_SIGNAL,
    "positions": spec.CHANNEL_POSITIONS,
    spec.CHANNEL_SIGNAL: spec.CHANNEL_SIGNAL,
    spec.CHANNEL_POSITIONS: spec.CHANNEL_POSITIONS,
}


def _channel(name: str) -> str:
    try:
        return _CHANNELS[name]
    except KeyError:
        raise ValueError(f"unknown channel {name!r}: use 'signal' or 'positions'") from None


class TestServer:
    """A running reference server, as ``server()`` yields it.

    Every method may be called from any thread.  The fault methods act on the connections
    open at the moment (and say how many, where that is a number) unless their name says
    they wait for the next ones.
    """

    __test__ = False  # not a test class for pytest, though its name starts with "Test"

    def __init__(self, reference: ReferenceServer, api_key: str, lifetime: float) -> None:
        self._server = reference
        self._api_key = api_key
        self._lifetime = lifetime

    def __repr__(self) -> str:
        return f"<TestServer {self.url}>"  # never the key

    def _live(self) -> ReferenceServer:
        if not self._server.running:
            raise RuntimeError(
                "the test server is no longer running: it stops when its with block ends, "
                f"or by itself after lifetime={self._lifetime:g} s (pass a longer lifetime)"
            )
        return self._server

    # -- where to connect --

    @property
    def url(self) -> str:
        """The WebSocket URL, ``ws://127.0.0.1:PORT/ws`` (for ``C2WS_URL`` or ``--url``)."""
        return self._server.url

    @property
    def rest_url(self) -> str:
        """The REST API's base URL, ``http://127.0.0.1:PORT`` (the same port: for
        ``C2WS_REST_URL`` or ``--rest-url``; c2ws derives it from :attr:`url` anyway)."""
        return self._server.rest_url

    @property
    def api_key(self) -> str:
        """The API key the server accepts (any other gets HTTP 401)."""
        return self._api_key

    @property
    def running(self) -> bool:
        """Whether it still serves (False once its ``lifetime`` has run out)."""
        return self._server.running

    # -- publishing --

    def publish(
        self, strategy_id: int, payload: JsonObject | None = None, channel: str = "signal"
    ) -> JsonObject:
        """Publish one message now to every client subscribed to the stream, and return
        its envelope exactly as they receive it (``envelope["seq_id"]`` is its number).

        ``channel``: ``"signal"`` or ``"positions"``.  The payload is sent as given (the
        C2 REST ``OrderStatusDTO`` / ``PositionDTO`` fields, such as ``{"Side": "1",
        "OrderQuantity": 2, "C2Symbol": {"FullSymbol": "@ESZ6"}}``).  A signal without a
        payload gets a realistic synthetic one (and, when that order fills, a position
        update is published right after it)."""
        full = _channel(channel)
        if full == spec.CHANNEL_SIGNAL:
            return self._live().publish_signal(strategy_id, payload)
        if payload is None:
            raise ValueError("a position update needs a payload")
        return self._live().publish_position(strategy_id, payload)

    def publish_position(self, strategy_id: int, payload: JsonObject) -> JsonObject:
        """``publish(strategy_id, payload, channel="positions")``."""
        return self.publish(strategy_id, payload, channel="positions")

    def last_seq(self, strategy_id: int, channel: str = "signal") -> int:
        """The ``seq_id`` of the stream's newest message (0: none yet)."""
        return self._live().last_seq(strategy_id, _channel(channel))

    # -- what the clients did --

    def connections(self, *, open_only: bool = False) -> list[ConnectionRecord]:
        """A snapshot of every connection, oldest first: what each client sent
        (``received``: its valid messages; ``malformed``: other frames), its
        ``subscriptions`` as (strategy_id, channel) pairs, heartbeat acks, and how it
        ended (``end``, a ``ConnectionEnd``; close codes).  The most recent 100 closed
        connections are kept."""
        return self._server.connections(open_only=open_only)

    def wait_for_subscribers(
        self,
        n: int = 1,
        *,
        strategy_id: int | None = None,
        channel: str | None = None,
        timeout: float = spec.TEST_SERVER_WAIT_SECONDS,
    ) -> list[ConnectionRecord]:
        """Wait until at least ``n`` open connections are subscribed to a stream (to
        ``strategy_id``'s ``channel`` when given, else to any strategy or channel) and
        return their records.  A message published after this reaches them.  Raises
        TimeoutError after ``timeout`` seconds."""
        if n < 1:
            raise ValueError("n must be at least 1")
        wanted = None if channel is None else _channel(channel)

        def subscribed(record: ConnectionRecord) -> bool:
            return any(
                (strategy_id is None or sid == strategy_id) and (wanted is None or ch == wanted)
                for sid, ch in record.subscriptions
            )

        def ready() -> list[ConnectionRecord] | None:
            records = [r for r in self._live().connections(open_only=True) if subscribed(r)]
            return records if len(records) >= n else None

        try:
            return self.wait_for(ready, timeout)
        except TimeoutError:
            stream = "any stream" if strategy_id is None else f"strategy {strategy_id}"
            if wanted is not None:
                stream += f" {wanted}"
            open_now = self.connections(open_only=True)
            found = sum(1 for record in open_now if subscribed(record))
            raise TimeoutError(
                f"{found} of {n} connection(s) subscribed to {stream} within {timeout:g} s "
                f"({len(open_now)} open)"
            ) from None

    @staticmethod
    def wait_for(
        predicate: Callable[[], T | None], timeout: float = spec.TEST_SERVER_WAIT_SECONDS
    ) -> T:
        """Call ``predicate`` (every 10 ms) until it returns something true, and return
        that; TimeoutError after ``timeout`` seconds.  For conditions on
        ``connections()``, such as "the client sent a heartbeat.ack"."""
        # wait_for returns only a true value, which None is not.
        return cast(T, wait_for(predicate, timeout))

    # -- the REST API (same port: GetStrategyOpenPositions, GetStrategyActiveOrders,
    # GetStrategyHistoricalOrders, answered from what was published) --

    def open_positions(self, strategy_id: int) -> list[JsonObject]:
        """The strategy's book as the REST API answers it: the newest position update
        of each symbol that is not flat (``PositionDTO`` objects)."""
        return self._live().open_positions(strategy_id)

    def order_history(self, strategy_id: int) -> list[JsonObject]:
        """Every order the REST history holds for the strategy (the newest state of each
        ``SignalId``), oldest first."""
        return self._live().order_history(strategy_id)

    def rest_requests(self) -> list[RestRequestRecord]:
        """The REST requests answered (the newest 1000), oldest first: ``path``,
        ``params`` (a dict) and ``status``."""
        return self._live().rest_requests()

    def rest_requests_received(self) -> int:
        """How many REST requests came in, answered or not: one still held back by
        :meth:`slow_rest_requests` counts from its arrival."""
        return self._live().rest_requests_received()

    def fail_next_rest_requests(self, *statuses: int, retry_after: int | None = None) -> None:
        """Answer the next REST requests with these HTTP statuses (429, 500, 503...), one
        each, in order, with a ``Retry-After`` header when given; the ones after are
        served."""
        self._live().fail_next_rest_requests(statuses, retry_after=retry_after)

    def slow_rest_requests(self, seconds: float) -> None:
        """Wait ``seconds`` before answering each REST request (0: no more)."""
        self._live().slow_rest_requests(seconds)

    # -- faults --

    def drop_connections(self, after_messages: int = 0) -> int:
        """Cut the TCP connections with no close frame, as a network failure does: at
        once, or after each has been sent ``after_messages`` more frames."""
        return self._live().drop_connections_after(after_messages)

    def drop_next_connections(self, after_messages: int, connections: int = 1) -> None:
        """Cut each of the next ``connections`` new connections after it has been sent
        ``after_messages`` frames (``connection.connected``, acks and replays count): a
        way to fail a client in the middle of its resubscription and replay."""
        self._live().drop_new_connections_after(after_messages, connections)

    def close_connections(
        self, code: int = spec.CLOSE_POLICY_VIOLATION, reason: str = ""
    ) -> int:
        """Close the connections cleanly with ``code`` (1008 PolicyViolation, as C2 closes
        a connection over its key's limit, unless told otherwise)."""
        return self._live().close_connections(code, reason)

    def close_after_acks(
        self,
        seconds: float | None,
        *,
        code: int = spec.CLOSE_POLICY_VIOLATION,
        strategies: Iterable[int] | None = None,
    ) -> None:
        """From now on close every connection with ``code`` ``seconds`` after it was
        sent its subscription acks, each time it comes back (a server that accepts and
        then drops the client); with ``strategies``, only connections subscribed to one
        of them.  ``None`` turns it off."""
        self._live().close_after_acks(seconds, code=code, strategies=strategies)

    def reject_next_connections(
        self, status: int, count: int = 1, *, retry_after: int | None = None
    ) -> None:
        """Refuse the next ``count`` connection attempts at the HTTP upgrade with
        ``status``: 401 (bad key), 429 (too many connections), 503 (server busy) as C2
        answers them, or any other 4xx or 5xx; ``retry_after`` adds a ``Retry-After``
        header (seconds) to a 429 or 503.  The attempts after them are served."""
        self._live().reject_next_connections(status, count, retry_after=retry_after)

    def stop_heartbeats(self) -> None:
        """Stop sending heartbeats (and stop expecting acks), on new connections too:
        a client that waits for them must notice the silence by itself."""
        self._live().pause_heartbeats()

    def resume_heartbeats(self) -> None:
        """Undo ``stop_heartbeats()``."""
        self._live().resume_heartbeats()

    def stall(self) -> int:
        """Go silent on the open connections while keeping them open: nothing is sent
        (messages published meanwhile are lost to them), not even heartbeats."""
        return self._live().stall()

    def unstall(self) -> int:
        """Undo ``stall()`` for the connections still open."""
        return self._live().unstall()

    def restart(self, *, renumber: bool = False, code: int = CLOSE_SERVICE_RESTART) -> None:
        """Close every connection with ``code`` (1012 Service Restart), then listen again
        on the same port.  The published messages survive, so clients can resume; with
        ``renumber`` the server forgets them, as one that lost its state: every stream's
        ``seq_id`` starts again at 1 and nothing older is replayed."""
        self._live().restart(code, renumber=renumber)

    def send_raw(self, data: str | bytes, *, text: bool | None = None) -> int:
        """Send one frame as it is to every open connection: a str as a text frame,
        bytes as a binary frame unless ``text=True`` (then unchecked, invalid UTF-8
        included).  For clients that must survive malformed input."""
        return self._live().send_raw(data, text=text)

    def send_message(self, message: JsonObject) -> int:
        """Send any JSON object as a text frame to every open connection (an ``error``,
        a ``gap``, a message type the client does not know...)."""
        return self._live().send_message(message)


@contextlib.contextmanager
def server(
    *,
    api_key: str = DEFAULT_API_KEY,
    strategies: Iterable[int] | None = None,
    synthetic_feed: bool = False,
    feed_rate: float = 2.0,
    seed: int = 0,
    heartbeat_interval: float = spec.HEARTBEAT_INTERVAL_SECONDS,
    heartbeat_grace: float = spec.HEARTBEAT_GRACE_SECONDS,
    replay_limit: int = spec.REPLAY_LIMIT,
    history: int = DEFAULT_HISTORY,
    max_connections_per_key: int = spec.MAX_CONNECTIONS_PER_KEY,
    max_subscriptions: int = spec.MAX_SUBSCRIPTIONS_PER_CONNECTION,
    clock_offset: float = 0.0,
    lifetime: float = spec.TEST_SERVER_LIFETIME_SECONDS,
    rest_key_case: str = "pascal",
) -> Iterator[TestServer]:
    """Run a reference server on 127.0.0.1 (a free port) for the ``with`` block.

    - ``api_key``: the one key it accepts (at least 8 characters, as c2ws requires).
    - ``strategies``: the only strategy ids a client may subscribe to (others are
      ``FORBIDDEN``); by default any.
    - ``synthetic_feed``: publish realistic trading of ``strategies`` (by default three
      sample strategies, 12345678, 23456789 and 34567890) at ``feed_rate`` messages a
      second, from ``seed``, starting once a client's subscriptions have landed (so it
      sees every stream from ``seq_id`` 1).  Off by default: the test publishes.
    - ``heartbeat_interval`` / ``heartbeat_grace``: seconds between heartbeats, and how
      much longer than that an ack may take before the server closes with 4000 (30 and
      10, as C2; shorten them to test heartbeat handling quickly).
    - ``replay_limit``: signals replayed at most for one ``resume_from`` before a
      ``gap`` (1000); ``history``: signals kept per strategy (10,000).
    - ``max_connections_per_key`` (10, then HTTP 429) and ``max_subscriptions`` per
      connection (100, then ``LIMIT_EXCEEDED``).
    - ``clock_offset``: seconds the server's clock is ahead (negative: behind).
    - ``lifetime``: the server stops by itself after this many seconds (600), so a hung
      test cannot leave it serving.
    - ``rest_key_case``: the REST API's envelope keys, ``"pascal"`` (``Results``) or
      ``"camel"`` (``results``, as C2's own samples write them).

    Raises ValueError for an option out of range.
    """
    if len(api_key) < spec.MIN_API_KEY_LENGTH or api_key != api_key.strip():
        raise ValueError(
            f"api_key must have at least {spec.MIN_API_KEY_LENGTH} characters and no "
            "surrounding spaces (c2ws refuses shorter keys)"
        )
    if synthetic_feed and feed_rate <= 0:
        raise ValueError("feed_rate must be positive")
    visible = None if strategies is None else tuple(strategies)
    config = ServerConfig(
        api_keys=(api_key,),
        strategies=DEFAULT_STRATEGIES if visible is None else visible,
        every_strategy_visible=visible is None,
        feed="synthetic" if synthetic_feed else "none",
        rate=feed_rate,
        seed=seed,
        feed_waits_for_subscription=True,
        heartbeat_interval=heartbeat_interval,
        heartbeat_grace=heartbeat_grace,
        replay_limit=replay_limit,
        history=history,
        max_connections_per_key=max_connections_per_key,
        max_subscriptions=max_subscriptions,
        clock_offset=clock_offset,
        max_lifetime=lifetime,
        rest_key_case=rest_key_case,
    )
    reference = ReferenceServer(config).start()
    try:
        yield TestServer(reference, api_key, lifetime)
    finally:
        reference.stop()
