"""The reference server: a thin asyncio shell (websockets) around ``c2ws.server.core``.

``ReferenceServer`` runs in a background thread for tests and ``c2ws demo``;
``run_server`` runs in the foreground for ``c2ws serve``.  Besides the C2 behaviour
(upgrade checks, ``connection.connected``, heartbeats, subscriptions, replay, live
fan-out) it offers deterministic fault knobs for testing clients: dropped TCP
connections, silent heartbeats, stalls, policy closes, malformed frames and restarts
(optionally forgetting every stream's numbering, as a server that lost it).

Each connection has one writer task draining an outbox queue, so replies, replays and
live messages leave in exactly the order they were produced.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import email.utils
import errno
import http
import ipaddress
import itertools
import re
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Final, Generic, TypeVar
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from c2ws import protocol, spec
from c2ws.exitcodes import ExitCode
from c2ws.protocol import JsonObject
from c2ws.render.safe import terminal_safe
from c2ws.server.core import (
    DEFAULT_HISTORY,
    Admission,
    Rejection,
    ServerSession,
    StreamStore,
    Subscription,
    bearer_key,
    rejection_for_status,
)
from c2ws.server.feed import DEFAULT_STRATEGIES, FeedError, FeedEvent, FileFeed, SyntheticFeed
from c2ws.server.rest import (
    REST_PREFIXES,
    OrderBook,
    RestAnswer,
    RestRequestRecord,
    RestService,
)

T = TypeVar("T")

DEFAULT_API_KEY: Final = "test-key"
WS_PATH: Final = "/ws"
CLOSE_GOING_AWAY: Final = 1001
CLOSE_SERVICE_RESTART: Final = 1012
FEED_SYNTHETIC: Final = "synthetic"
FEED_NONE: Final = "none"

_HOOK_TIMEOUT: Final = 10.0
_REST_LOG_KEPT: Final = 1000
_START_TIMEOUT: Final = 10.0
_MAX_FEED_BATCH: Final = 1000
# A feed that waits for its audience starts once subscriptions have stopped changing for
# this long (a client sends all of its requests together), or this long after the first.
_FEED_SETTLE_QUIET_SECONDS: Final = 0.5
_FEED_SETTLE_MAX_SECONDS: Final = 5.0


def _held_bytes(value: object) -> int:
    """Bytes of memory ``value`` holds: its own size plus what its containers hold.

    Counts shared objects (small ints, None) each time: an upper bound, which is what a
    budget needs.  Iterative, so deep nesting cannot exhaust the stack.
    """
    total = 0
    pending = [value]
    while pending:
        item = pending.pop()
        total += sys.getsizeof(item)
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
    return total


class _Newest(Generic[T]):
    """The newest items of a list within a byte budget; the oldest go first."""

    __slots__ = ("budget", "held", "items", "sizes")

    def __init__(self, items: list[T], budget: int) -> None:
        self.items = items
        self.budget = budget
        self.sizes: deque[int] = deque()
        self.held = 0

    def add(self, item: T) -> None:
        size = _held_bytes(item)
        self.items.append(item)
        self.sizes.append(size)
        self.held += size
        while self.held > self.budget and len(self.items) > 1:
            del self.items[0]
            self.held -= self.sizes.popleft()


def _preview(data: bytes | str) -> str:
    text = data[: spec.RECORD_PREVIEW_BYTES]
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else text


@dataclass(frozen=True)
class ServerConfig:
    """How a reference server behaves.  ``feed``: "synthetic", "none" or an NDJSON path.

    ``strategies`` are both the strategies the synthetic feed trades and the only ones
    any key may subscribe to (others get FORBIDDEN), unless ``every_strategy_visible``
    lets every key subscribe to any strategy id.  ``rate`` is feed messages per
    second.  ``max_lifetime`` stops the server by itself after that many seconds.
    ``max_outbox``: frames queued for one slow client before it is closed with 1008.
    ``closed_records``: how many records of closed connections ``connections()`` still
    shows (0: none).  ``feed_waits_for_subscription``: the synthetic feed, too, starts
    only once a client's subscriptions have landed (a recorded feed always does), so that
    client sees every stream from seq_id 1.  ``clock_offset``: seconds the server's clock
    is off (to test how clients handle a skewed server).  ``retry_after``: a
    ``Retry-After`` header (delta-seconds) on every 429 and 503 answer (the C2 docs do
    not say whether the real server sends one; the HTTP standard allows it on both).
    ``renumber_on_connect``: every
    connection after the first finds every stream's numbering forgotten (seq_ids start
    again at 1, nothing older is replayed), as if the server had restarted and lost it
    in between (to test how clients handle a sequence reset).
    """

    host: str = "127.0.0.1"
    port: int = 0
    api_keys: tuple[str, ...] = (DEFAULT_API_KEY,)
    heartbeat_interval: float = spec.HEARTBEAT_INTERVAL_SECONDS
    heartbeat_grace: float = spec.HEARTBEAT_GRACE_SECONDS
    feed: str | Path = FEED_SYNTHETIC
    rate: float = 2.0
    seed: int = 0
    strategies: tuple[int, ...] = DEFAULT_STRATEGIES
    max_connections: int = 1000
    max_connections_per_key: int = spec.MAX_CONNECTIONS_PER_KEY
    max_subscriptions: int = spec.MAX_SUBSCRIPTIONS_PER_CONNECTION
    history: int = DEFAULT_HISTORY
    replay_limit: int = spec.REPLAY_LIMIT
    max_lifetime: float | None = None
    close_timeout: float = 2.0
    max_outbox: int = 100_000
    closed_records: int = spec.RECORD_CLOSED_KEPT
    feed_waits_for_subscription: bool = False
    # A test knob: the server's clock runs this many seconds ahead of the machine's
    # (negative: behind), in every timestamp it sends and every one it checks.
    clock_offset: float = 0.0
    retry_after: int | None = None
    renumber_on_connect: bool = False
    every_strategy_visible: bool = False
    # The REST API's envelope keys: "pascal" (Results) or "camel" (results), as C2's own
    # samples write them (c2ws/server/rest.py).
    rest_key_case: str = "pascal"

    def __post_init__(self) -> None:
        if self.heartbeat_interval <= 0 or self.heartbeat_grace < 0:
            raise ValueError("heartbeat_interval must be positive and heartbeat_grace >= 0")
        if self.history < 1 or self.replay_limit < 1:
            raise ValueError("history and replay_limit must be at least 1")
        if not self.api_keys:
            raise ValueError("at least one API key is needed")
        if self.max_lifetime is not None and self.max_lifetime <= 0:
            raise ValueError("max_lifetime must be positive")
        if self.closed_records < 0:
            raise ValueError("closed_records must be >= 0")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError("retry_after must be >= 0")
        if self.rest_key_case not in ("pascal", "camel"):
            raise ValueError("rest_key_case is 'pascal' or 'camel'")

    def feed_source(self) -> str | Path:
        """``FEED_SYNTHETIC``, ``FEED_NONE`` or the Path of a recording."""
        if isinstance(self.feed, str) and self.feed in (FEED_SYNTHETIC, FEED_NONE):
            return self.feed
        return Path(self.feed)


class ConnectionEnd(str, Enum):
    CLIENT_CLOSED = "client_closed"  # the client sent a close frame first
    CONNECTION_LOST = "connection_lost"  # TCP closed without a close frame from either side
    HEARTBEAT_TIMEOUT = "heartbeat_timeout"
    DROPPED = "dropped"  # fault knob: TCP aborted by the server
    CLOSED_BY_SERVER = "closed_by_server"  # fault knob: close_connections()
    SERVER_SHUTDOWN = "server_shutdown"  # stop() or restart()
    OVER_KEY_LIMIT = "over_key_limit"  # lost the per-key race right after the upgrade
    SLOW_CONSUMER = "slow_consumer"


@dataclass
class ConnectionRecord:
    """What a test can observe about one connection (snapshots, never live objects).

    ``received`` holds the client's valid envelopes, ``malformed`` the other frames,
    newest last, each within ``spec.RECORD_BUDGET_BYTES`` of memory (the oldest go
    first), so a client cannot grow the server by what it sends.  A frame of up to
    ``spec.RECORD_PREVIEW_BYTES`` is kept as it was (parsed, or as the malformed bytes or
    text); a longer one only as a preview: in ``malformed`` its first
    ``RECORD_PREVIEW_BYTES``, in ``received`` an object ``{"msg_type", "request_id",
    "truncated": true, "size", "preview"}``.  ``frames_received`` and ``bytes_received``
    count every frame, kept or not.
    """

    number: int
    api_key: str
    received: list[JsonObject] = field(default_factory=list)
    malformed: list[bytes | str] = field(default_factory=list)
    subscriptions: frozenset[Subscription] = frozenset()
    heartbeat_acks: int = 0
    messages_sent: int = 0
    open: bool = True
    client_close_code: int | None = None
    server_close_code: int | None = None
    end: ConnectionEnd | None = None
    frames_received: int = 0
    bytes_received: int = 0


@dataclass(frozen=True, slots=True)
class _Frame:
    data: bytes | str
    text: bool | None


@dataclass(frozen=True, slots=True)
class _CloseAfterAcks:
    seconds: float
    code: int
    strategies: frozenset[int] | None  # None: every connection


@dataclass(frozen=True, slots=True)
class _RejectNew:
    rejection: Rejection
    retry_after: int | None
    left: int  # upgrades still to refuse, this one included

    def next(self) -> _RejectNew | None:
        """The knob after it refused one upgrade (None: used up)."""
        return dataclasses.replace(self, left=self.left - 1) if self.left > 1 else None


@dataclass(frozen=True, slots=True)
class _Close:
    code: int
    reason: str
    end: ConnectionEnd


class _Connection:
    """One live connection in the event loop: its session, outbox and fault state."""

    def __init__(
        self,
        websocket: ServerConnection,
        session: ServerSession,
        record: ConnectionRecord,
        max_outbox: int,
    ) -> None:
        self.websocket = websocket
        self.session = session
        self.record = record
        self.received = _Newest(record.received, spec.RECORD_BUDGET_BYTES)
        self.malformed = _Newest(record.malformed, spec.RECORD_BUDGET_BYTES)
        self.outbox: asyncio.Queue[_Frame | _Close] = asyncio.Queue()
        self.max_outbox = max_outbox
        self.stalled = False
        self.drop_after: int | None = None
        self.close_timer: asyncio.TimerHandle | None = None  # close_after_acks()
        self.closing = False
        self.end: ConnectionEnd | None = None
        self.wake = asyncio.Event()

    def send(self, frames: Iterable[bytes | str], text: bool | None = True) -> None:
        for data in frames:
            if self.closing:
                return
            if self.outbox.qsize() >= self.max_outbox:
                # The client does not read: stop queueing and tell it why.
                while not self.outbox.empty():
                    self.outbox.get_nowait()
                self.close(
                    spec.CLOSE_POLICY_VIOLATION, "Client too slow", ConnectionEnd.SLOW_CONSUMER
                )
                return
            self.outbox.put_nowait(_Frame(data, text))

    def close(self, code: int, reason: str, end: ConnectionEnd) -> None:
        """Close after whatever is already queued."""
        if not self.closing:
            self.closing = True
            self.session.mark_closed()
            self.outbox.put_nowait(_Close(code, reason, end))


_RETRY_AFTER_STATUSES: Final = frozenset({
    spec.HTTP_TOO_MANY_REQUESTS, spec.HTTP_SERVICE_UNAVAILABLE,
})


def _http_error(rejection: Rejection, retry_after: int | None = None) -> Response:
    body = rejection.body()
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            (spec.ERROR_HEADER, rejection.header),
        ]
    )
    if retry_after is not None and rejection.status in _RETRY_AFTER_STATUSES:
        headers["Retry-After"] = str(retry_after)
    return Response(rejection.status, http.HTTPStatus(rejection.status).phrase, headers, body)


def _rest_response(answer: RestAnswer) -> Response:
    headers = Headers([
        ("Date", email.utils.formatdate(usegmt=True)),
        ("Connection", "close"),
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(answer.body))),
        *answer.headers,
    ])
    try:
        phrase = http.HTTPStatus(answer.status).phrase
    except ValueError:
        phrase = "Error"
    return Response(answer.status, phrase, headers, answer.body)


def _authorization(request: Request) -> str | None:
    values = request.headers.get_all("Authorization")
    if not values:
        return None
    # Two Authorization headers are ambiguous: treat them as an invalid key.
    return values[0] if len(values) == 1 else ""


def _peer(connection: ServerConnection) -> str:
    """host:port of the other end, for the operator's lines."""
    try:
        address = connection.remote_address
    except Exception:  # the transport is gone already
        return "?"
    if isinstance(address, tuple) and len(address) >= 2:
        host = str(address[0])
        return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    return "?"


def wait_for(predicate: Callable[[], T], timeout: float = 5.0, interval: float = 0.01) -> T:
    """Poll ``predicate`` until it returns something truthy; TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(interval)


class ReferenceServer:
    """A local C2 WebSocket server with test hooks; see the module docstring.

    ``start()`` serves from a daemon thread; ``run()`` serves in the calling thread.
    Hooks and knobs may be called from any thread once the server is running.
    """

    def __init__(
        self, config: ServerConfig | None = None, *, log: Callable[[str], None] | None = None,
    ) -> None:
        """Raises FileNotFoundError or FeedError for a recorded feed that cannot be played.
        ``log``: told what happens, one line each (``c2ws serve``): connections opened and
        closed, upgrades refused, subscriptions made, refused and ended."""
        self.config = config or ServerConfig()
        self._log = log
        source = self.config.feed_source()
        if isinstance(source, Path) and not source.is_file():
            raise FileNotFoundError(f"feed file not found: {source}")
        self._store = StreamStore(history=self.config.history)
        self._synthetic = SyntheticFeed(self.config.seed, self.config.strategies)
        self._file_feed = FileFeed(source) if isinstance(source, Path) else None
        if self._file_feed is not None:
            self._file_feed.check()  # FeedError now, not from a task once serving
        self._visible = frozenset(self.config.strategies)
        self._admission = Admission(
            self.config.api_keys,
            max_per_key=self.config.max_connections_per_key,
            max_total=self.config.max_connections,
        )
        self._connections: dict[int, _Connection] = {}
        self._open_records: dict[int, ConnectionRecord] = {}
        self._closed_records: deque[ConnectionRecord] = deque(maxlen=self.config.closed_records)
        self._numbers = itertools.count(1)
        self._heartbeats_paused = False
        self._drop_new: tuple[int, int] = (0, 0)  # (frames, connections) still to arm
        self._reject_new: _RejectNew | None = None  # reject_next_connections()
        self._close_after_acks: _CloseAfterAcks | None = None
        self._served_a_connection = False
        # The REST API on the same port (c2ws/server/rest.py), and its fault knobs.
        self._book = OrderBook()
        self._rest = RestService(self._book, self.config.api_keys, self._may_subscribe,
                                 key_case=self.config.rest_key_case)
        self._rest_faults: deque[tuple[int, int | None]] = deque()
        self._rest_delay = 0.0
        self._rest_received = 0  # REST requests come in, answered or not yet
        self._rest_log: deque[RestRequestRecord] = deque(maxlen=_REST_LOG_KEPT)
        self._port = self.config.port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread_id: int | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._stop_requested: asyncio.Event | None = None
        self._subscriptions_changed: asyncio.Event | None = None
        self._feed_error: FeedError | None = None
        self._ws_server: Server | None = None

    # -- lifecycle --

    def _now(self) -> float:
        """The server's wall clock: the machine's, shifted by ``clock_offset``."""
        return time.time() + self.config.clock_offset

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        return f"ws://{host}:{self._port}{WS_PATH}"

    @property
    def rest_url(self) -> str:
        """The REST API's base URL: the same host and port, over plain HTTP."""
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self._port}"

    @property
    def running(self) -> bool:
        return self._loop is not None and self._ready.is_set() and self._startup_error is None

    def start(self) -> ReferenceServer:
        """Serve from a daemon thread; returns once the port is bound."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        self._thread = threading.Thread(
            target=self._thread_main, name="c2ws-reference-server", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT):
            raise RuntimeError("reference server did not start in time")
        if self._startup_error is not None:
            raise self._startup_error
        return self

    def run(
        self,
        *,
        on_ready: Callable[[ReferenceServer], None] | None = None,
        handle_signals: bool = False,
    ) -> None:
        """Serve in the calling thread until ``stop()``, ``max_lifetime`` or (with
        ``handle_signals``) SIGINT/SIGTERM; then close every connection with 1001.

        Raises OSError when the address cannot be bound, and FeedError (after closing
        every connection) when a recorded feed cannot be read while it plays.
        """
        asyncio.run(self._main(on_ready, handle_signals))
        if self._feed_error is not None:
            raise self._feed_error

    def stop(self) -> None:
        """Close every connection with 1001 (going away) and wait for the server thread."""
        loop, stop_requested = self._loop, self._stop_requested
        if loop is not None and stop_requested is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already finished
                loop.call_soon_threadsafe(stop_requested.set)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.config.close_timeout + _HOOK_TIMEOUT)

    def __enter__(self) -> ReferenceServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _thread_main(self) -> None:
        try:
            self.run()
        except FeedError:
            pass  # the server has stopped; ``feed_error`` says why
        except BaseException as exc:
            if self._ready.is_set():
                raise  # a crash while serving: let the thread report it
            self._startup_error = exc  # start() re-raises it
            self._ready.set()

    async def _main(
        self, on_ready: Callable[[ReferenceServer], None] | None, handle_signals: bool
    ) -> None:
        loop = asyncio.get_running_loop()
        stop_requested = asyncio.Event()
        self._ws_server = await self._listen(self.config.port)
        self._loop, self._loop_thread_id = loop, threading.get_ident()
        self._stop_requested = stop_requested
        self._subscriptions_changed = asyncio.Event()
        self._ready.set()
        feed_task = asyncio.create_task(self._run_feed())
        feed_task.add_done_callback(lambda task: self._on_feed_done(task, stop_requested))
        try:
            if on_ready is not None:
                on_ready(self)
            if handle_signals:
                self._install_signal_handlers(loop, stop_requested)
            if self.config.max_lifetime is not None:
                loop.call_later(self.config.max_lifetime, stop_requested.set)
            await stop_requested.wait()
        finally:
            feed_task.cancel()
            await self._close_listener(CLOSE_GOING_AWAY)
            self._loop = None

    def _on_feed_done(self, task: asyncio.Task[None], stop_requested: asyncio.Event) -> None:
        """A feed that fails stops the server: serving on without it would look like a
        quiet market.  (The end of a recording is no failure.)"""
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            return
        if isinstance(error, FeedError):
            self._feed_error = error
        else:
            self._feed_error = FeedError(f"the feed failed: {type(error).__name__}: {error}")
            self._feed_error.__cause__ = error
        stop_requested.set()

    @staticmethod
    def _install_signal_handlers(
        loop: asyncio.AbstractEventLoop, stop_requested: asyncio.Event
    ) -> None:
        def graceful(signum: int) -> None:
            stop_requested.set()
            # A second signal interrupts at once instead of waiting for the clean close.
            loop.remove_signal_handler(signum)

        # SIGHUP too: a closed terminal or a dropped SSH session stops it cleanly.
        for signum in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM)):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, graceful, signum)

    async def _listen(self, port: int) -> Server:
        server = await serve(
            self._handle,
            self.config.host,
            port,
            process_request=self._process_request,
            ping_interval=None,  # the C2 heartbeat is application-level
            compression=None,
            max_size=spec.MAX_FRAME_BYTES,
            close_timeout=self.config.close_timeout,
            server_header="c2ws-reference",
        )
        self._port = server.sockets[0].getsockname()[1]
        return server

    async def _close_listener(self, code: int) -> None:
        server = self._ws_server
        if server is None:
            return
        for connection in self._connections.values():
            connection.end = connection.end or ConnectionEnd.SERVER_SHUTDOWN
            connection.session.mark_closed()
        server.close(close_connections=True, code=code)
        await server.wait_closed()
        self._ws_server = None

    # -- per connection --

    def _may_subscribe(self, strategy_id: int) -> bool:
        return self.config.every_strategy_visible or strategy_id in self._visible

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        path = urlsplit(request.path).path
        if path.startswith(REST_PREFIXES):
            return await self._rest_request(request)
        if path != WS_PATH:
            return _http_error(
                Rejection(404, "Not found", "NOT_FOUND", f"No WebSocket endpoint at {path}")
            )
        reject = self._reject_new
        if reject is not None:
            # Armed by reject_next_connections(): refused whoever asks, before the key
            # is even looked at, as a server at capacity or in trouble does.
            self._reject_new = reject.next()
            self._refused(connection, reject.rejection)
            return _http_error(reject.rejection, reject.retry_after)
        verdict = self._admission.check(_authorization(request))
        if isinstance(verdict, Rejection):
            self._refused(connection, verdict)
            return _http_error(verdict, self.config.retry_after)
        return None

    # -- what the operator is told (c2ws serve) --

    def _tell(self, text: str) -> None:
        if self._log is not None:
            self._log(f"{time.strftime('%H:%M:%S')} {text}")

    def _refused(self, connection: ServerConnection, rejection: Rejection) -> None:
        if self._log is not None:
            self._tell(f"refused {_peer(connection)}: HTTP {rejection.status} "
                       f"{rejection.code}: {rejection.message}")

    def _subscriptions_told(
        self, record: ConnectionRecord, before: frozenset[Subscription],
        after: frozenset[Subscription], replies: Iterable[bytes | str],
    ) -> None:
        """A line per subscription made or ended, and per request refused."""
        number = record.number
        for strategy, channel in sorted(after - before):
            self._tell(f"connection {number} subscribed to {channel}:{strategy}")
        for strategy, channel in sorted(before - after):
            self._tell(f"connection {number} unsubscribed from {channel}:{strategy}")
        for data in replies:
            if b'"error"' not in (data if isinstance(data, bytes) else data.encode()):
                continue
            with contextlib.suppress(protocol.MalformedMessage):
                message = protocol.decode(data)
                if message.msg_type == spec.MSG_ERROR:
                    said = "; ".join(f"{detail.code}: {detail.message}"[:120]
                                     for detail in protocol.error_details(message.payload))
                    # The request id is the client's text: escaped for the terminal.
                    self._tell(f"connection {number} refused request "
                               f"{terminal_safe(str(message.request_id), 60)}: "
                               f"{terminal_safe(said, 300)}")

    async def _rest_request(self, request: Request) -> Response:
        """A plain HTTP GET of the REST API (websockets hands every request to
        process_request before the upgrade: a REST request is answered there)."""
        parts = urlsplit(request.path)
        params = {name: values[0] for name, values in
                  parse_qs(parts.query, keep_blank_values=True).items()}
        self._rest_received += 1
        if self._rest_delay > 0:
            await asyncio.sleep(self._rest_delay)
        if self._rest_faults:
            status, retry_after = self._rest_faults.popleft()
            answer = self._rest.fault(status, retry_after)
        else:
            answer = self._rest.answer(parts.path, params, _authorization(request))
        self._rest_log.append(RestRequestRecord(parts.path, params, answer.status))
        return _rest_response(answer)

    async def _handle(self, websocket: ServerConnection) -> None:
        request = websocket.request
        api_key = (bearer_key(_authorization(request)) if request else None) or ""
        record = ConnectionRecord(number=next(self._numbers), api_key=api_key)
        self._open_records[record.number] = record
        within_limit = self._admission.register(api_key)
        self._tell(f"connection {record.number} from {_peer(websocket)} opened")
        try:
            if not within_limit:
                record.end = ConnectionEnd.OVER_KEY_LIMIT
                await websocket.close(spec.CLOSE_POLICY_VIOLATION)
                return
            await self._serve_connection(websocket, record)
        finally:
            self._admission.release(api_key)
            self._finish_record(websocket, record)
            del self._open_records[record.number]
            self._closed_records.append(record)
            if self._log is not None:
                self._tell(f"connection {record.number} closed: "
                           f"{record.end.value if record.end else 'unknown'} (close code: "
                           f"client {record.client_close_code}, server "
                           f"{record.server_close_code}); {record.messages_sent} frame(s) sent")

    async def _serve_connection(
        self, websocket: ServerConnection, record: ConnectionRecord
    ) -> None:
        now = self._now()
        if self.config.renumber_on_connect and self._served_a_connection:
            self._forget_numbering()
        self._served_a_connection = True
        session = ServerSession(
            store=self._store,
            authorizer=self._may_subscribe,
            api_key=record.api_key,
            heartbeat_interval=self.config.heartbeat_interval,
            heartbeat_grace=self.config.heartbeat_grace,
            max_subscriptions=self.config.max_subscriptions,
            replay_limit=self.config.replay_limit,
        )
        connection = _Connection(websocket, session, record, self.config.max_outbox)
        frames, connections = self._drop_new
        if connections > 0:
            connection.drop_after = frames
            self._drop_new = (frames, connections - 1)
        session.set_heartbeats_enabled(not self._heartbeats_paused, now)
        connection.send(session.start(now))
        self._connections[record.number] = connection
        writer = asyncio.create_task(self._write(connection))
        ticker = asyncio.create_task(self._tick(connection))
        try:
            async for data in websocket:
                subscribed = session.subscriptions
                replies = session.receive(data, self._now())
                changed = self._subscriptions_changed
                if changed is not None and session.subscriptions != subscribed:
                    changed.set()
                if self._log is not None:
                    self._subscriptions_told(record, subscribed, session.subscriptions, replies)
                self._record_received(connection, data)
                connection.send(replies)
                if session.subscriptions != subscribed:
                    self._arm_close_after_acks(connection)
        except ConnectionClosed:
            pass
        finally:
            if connection.close_timer is not None:
                connection.close_timer.cancel()
            session.mark_closed()
            del self._connections[record.number]
            ticker.cancel()
            writer.cancel()
            record.end = record.end or connection.end

    def _arm_close_after_acks(self, connection: _Connection) -> None:
        """close_after_acks(): (re)start the connection's close timer once its acks are
        queued, when it holds a subscription the knob names."""
        knob = self._close_after_acks
        if knob is None or not any(
            knob.strategies is None or strategy in knob.strategies
            for strategy, _ in connection.session.subscriptions
        ):
            return
        if connection.close_timer is not None:
            connection.close_timer.cancel()
        connection.close_timer = asyncio.get_running_loop().call_later(
            knob.seconds, connection.close, knob.code, "", ConnectionEnd.CLOSED_BY_SERVER
        )

    @staticmethod
    def _record_received(connection: _Connection, data: bytes | str) -> None:
        record = connection.record
        record.frames_received += 1
        record.bytes_received += len(data)
        small = len(data) <= spec.RECORD_PREVIEW_BYTES
        try:
            message = protocol.decode(data)
        except protocol.MalformedMessage:
            connection.malformed.add(data if small else data[: spec.RECORD_PREVIEW_BYTES])
        else:
            if small:
                connection.received.add(message.raw)
            else:
                request_id = message.request_id
                connection.received.add({
                    "msg_type": message.msg_type[:64],
                    "request_id": request_id[:64] if request_id is not None else None,
                    "truncated": True,
                    "size": len(data),
                    "preview": _preview(data),
                })
        record.heartbeat_acks = connection.session.heartbeat_acks
        record.subscriptions = connection.session.subscriptions

    @staticmethod
    def _finish_record(websocket: ServerConnection, record: ConnectionRecord) -> None:
        received, sent = websocket.protocol.close_rcvd, websocket.protocol.close_sent
        record.client_close_code = received.code if received else None
        record.server_close_code = sent.code if sent else None
        if record.end is None:
            client_first = received is not None and (
                sent is None or bool(websocket.protocol.close_rcvd_then_sent)
            )
            record.end = (
                ConnectionEnd.CLIENT_CLOSED if client_first else ConnectionEnd.CONNECTION_LOST
            )
        record.open = False

    async def _write(self, connection: _Connection) -> None:
        websocket = connection.websocket
        with contextlib.suppress(ConnectionClosed):
            while True:
                item = await connection.outbox.get()
                if isinstance(item, _Close):
                    connection.end = connection.end or item.end
                    await websocket.close(item.code, item.reason)
                    return
                if connection.stalled:
                    continue
                await websocket.send(item.data, text=item.text)
                connection.record.messages_sent += 1
                if connection.drop_after is not None:
                    connection.drop_after -= 1
                    if connection.drop_after <= 0:
                        self._abort(connection)
                        return

    @staticmethod
    def _abort(connection: _Connection) -> None:
        connection.end = connection.end or ConnectionEnd.DROPPED
        connection.closing = True
        connection.session.mark_closed()
        connection.websocket.transport.abort()

    async def _tick(self, connection: _Connection) -> None:
        session = connection.session
        while True:
            deadline = session.next_deadline()
            connection.wake.clear()
            if deadline is None:
                await connection.wake.wait()
            else:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(connection.wake.wait(), deadline - self._now())
            result = session.on_timer(self._now())
            connection.send(result.messages)
            if result.close_code is not None:
                connection.close(
                    result.close_code, result.close_reason, ConnectionEnd.HEARTBEAT_TIMEOUT
                )
                return

    def _apply_heartbeats(self, connection: _Connection) -> None:
        enabled = not self._heartbeats_paused and not connection.stalled
        connection.session.set_heartbeats_enabled(enabled, self._now())
        connection.wake.set()

    # -- feed and fan-out --

    def _feed_events(self) -> Iterator[FeedEvent]:
        if self._file_feed is not None:
            yield from self._file_feed
        elif self.config.feed_source() == FEED_SYNTHETIC:
            while True:
                yield self._synthetic.next_event(self._now())

    async def _wait_for_subscriptions(self) -> None:
        """Until a client has subscribed and its subscriptions have stopped changing (it
        sends them together), within a bound, so no feed message is published before
        the subscriptions it belongs to exist.  A client that subscribes to every stream
        of the synthetic feed (as the demo does) ends the wait at once."""
        changed = self._subscriptions_changed
        if changed is None:
            return
        await changed.wait()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _FEED_SETTLE_MAX_SECONDS
        while (remaining := deadline - loop.time()) > 0 and not self._someone_hears_all():
            changed.clear()
            try:
                await asyncio.wait_for(changed.wait(), min(_FEED_SETTLE_QUIET_SECONDS, remaining))
            except asyncio.TimeoutError:
                return

    def _someone_hears_all(self) -> bool:
        """Whether one connection is subscribed to every stream the synthetic feed has."""
        if self._file_feed is not None:
            return False  # a recording's streams are not known in advance
        streams = {(sid, channel) for sid in self.config.strategies for channel in spec.CHANNELS}
        return any(
            streams <= connection.session.subscriptions
            for connection in self._connections.values()
        )

    async def _run_feed(self) -> None:
        if self.config.rate <= 0:
            return
        if self._file_feed is not None or self.config.feed_waits_for_subscription:
            # A recording is finite: played before anyone listens, it would be gone.  And
            # a client that is to see every stream from seq_id 1 must subscribe first.
            await self._wait_for_subscriptions()
        events = self._feed_events()
        interval = 1.0 / self.config.rate
        loop = asyncio.get_running_loop()
        next_due = loop.time()
        while True:
            delay = next_due - loop.time()
            await asyncio.sleep(max(delay, 0.0))
            now = loop.time()
            due = min(int((now - next_due) / interval) + 1, _MAX_FEED_BATCH)
            for _ in range(due):
                event = next(events, None)
                if event is None:
                    return
                self._publish(event.channel, event.strategy_id, event.payload)
            next_due += due * interval
            if now - next_due > 1.0:
                # Fell far behind (a paused process): carry on from now, without a burst.
                next_due = now

    def _publish(self, channel: str, strategy_id: int, payload: JsonObject) -> JsonObject:
        stored = self._store.publish(channel, strategy_id, payload, self._now())
        self._book.record(channel, strategy_id, payload, stored.seq_id,
                          str(stored.envelope.get("timestamp", "")))
        for connection in self._connections.values():
            if connection.session.wants(strategy_id, channel):
                connection.send((stored.data,))
        return stored.envelope

    # -- thread-safe hooks --

    def _call(self, function: Callable[[], T]) -> T:
        loop = self._loop
        if loop is None:
            raise RuntimeError("the reference server is not running")
        if threading.get_ident() == self._loop_thread_id:
            return function()
        result: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                result.set_result(function())
            except BaseException as exc:
                result.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return result.result(timeout=_HOOK_TIMEOUT)

    def publish_signal(self, strategy_id: int, payload: JsonObject | None = None) -> JsonObject:
        """Publish a signal now and return its envelope.  Without a payload, the synthetic
        feed makes one for the strategy (and, if it fills, publishes its position next)."""

        def publish() -> JsonObject:
            if payload is not None:
                return self._publish(spec.CHANNEL_SIGNAL, strategy_id, payload)
            events = self._synthetic.events_for(strategy_id, self._now())
            envelopes = [self._publish(e.channel, e.strategy_id, e.payload) for e in events]
            return envelopes[0]

        return self._call(publish)

    def publish_position(self, strategy_id: int, payload: JsonObject) -> JsonObject:
        """Publish a position update now and return its envelope."""
        return self._call(lambda: self._publish(spec.CHANNEL_POSITIONS, strategy_id, payload))

    def last_seq(self, strategy_id: int, channel: str = spec.CHANNEL_SIGNAL) -> int:
        return self._call(lambda: self._store.last_seq(strategy_id, channel))

    # -- fault knobs (each acts on the connections open now and returns how many) --

    def _each_connection(self, action: Callable[[_Connection], None]) -> int:
        def apply() -> int:
            connections = list(self._connections.values())
            for connection in connections:
                action(connection)
            return len(connections)

        return self._call(apply)

    def drop_connections_after(self, messages: int) -> int:
        """Abort the TCP connection (no close frame) after ``messages`` more frames are sent;
        0 drops at once."""

        def arm(connection: _Connection) -> None:
            if messages <= 0:
                self._abort(connection)
            else:
                connection.drop_after = messages

        return self._each_connection(arm)

    def drop_new_connections_after(self, messages: int, connections: int = 1) -> None:
        """Arm the next ``connections`` new connections to abort after they have been sent
        ``messages`` frames (counting connection.connected, acks and replays): a way to
        drop a client in the middle of its resubscription and replay."""

        def arm() -> None:
            self._drop_new = (max(messages, 1), connections)

        self._call(arm)

    def reject_next_connections(
        self, status: int, count: int = 1, *, retry_after: int | None = None
    ) -> None:
        """Refuse the next ``count`` connection attempts at the upgrade with HTTP
        ``status`` (401, 429 and 503 with the body and ``X-WS-Error`` header the upgrade
        checks give them; any other 4xx or 5xx with its standard phrase); the attempts
        after them are served as usual.  ``retry_after``: a ``Retry-After`` header
        (delta-seconds), for 429 and 503 only; without it, the configured one.
        ``count=0`` disarms the knob."""
        rejection = rejection_for_status(status)
        if count < 0:
            raise ValueError("count must be >= 0")
        if retry_after is not None:
            if retry_after < 0:
                raise ValueError("retry_after must be >= 0")
            if status not in _RETRY_AFTER_STATUSES:
                raise ValueError("retry_after goes with a 429 or 503 answer only")
        knob = None
        if count > 0:
            header = self.config.retry_after if retry_after is None else retry_after
            knob = _RejectNew(rejection, header, count)

        def arm() -> None:
            self._reject_new = knob

        self._call(arm)

    def close_after_acks(
        self,
        seconds: float | None,
        *,
        code: int = spec.CLOSE_POLICY_VIOLATION,
        strategies: Iterable[int] | None = None,
    ) -> None:
        """From now on, close every connection with ``code`` ``seconds`` after it was sent
        its subscription acks (a new subscription restarts the wait): a server that
        accepts, acks, then drops the client at once, as often as it comes back.  With
        ``strategies``, only connections subscribed to one of them (a few connections of
        a client's many).  ``seconds=None`` disarms it."""
        knob = None
        if seconds is not None:
            chosen = None if strategies is None else frozenset(strategies)
            knob = _CloseAfterAcks(max(seconds, 0.0), code, chosen)

        def arm() -> None:
            self._close_after_acks = knob

        self._call(arm)

    def pause_heartbeats(self) -> None:
        """Stop sending heartbeats (and stop expecting acks), also on new connections."""

        def pause() -> None:
            self._heartbeats_paused = True
            for connection in self._connections.values():
                self._apply_heartbeats(connection)

        self._call(pause)

    def resume_heartbeats(self) -> None:
        def resume() -> None:
            self._heartbeats_paused = False
            for connection in self._connections.values():
                self._apply_heartbeats(connection)

        self._call(resume)

    def stall(self) -> int:
        """Go silent on the open connections: nothing is sent (frames produced meanwhile
        are discarded), no heartbeat timeout applies, the sockets stay open."""

        def silence(connection: _Connection) -> None:
            connection.stalled = True
            self._apply_heartbeats(connection)

        return self._each_connection(silence)

    def unstall(self) -> int:
        def wake(connection: _Connection) -> None:
            connection.stalled = False
            self._apply_heartbeats(connection)

        return self._each_connection(wake)

    def close_connections(self, code: int = spec.CLOSE_POLICY_VIOLATION, reason: str = "") -> int:
        """Close the open connections with ``code`` (1008 PolicyViolation by default)."""
        return self._each_connection(
            lambda connection: connection.close(code, reason, ConnectionEnd.CLOSED_BY_SERVER)
        )

    def send_raw(self, data: str | bytes, *, text: bool | None = None) -> int:
        """Send one frame as is: a str as text, bytes as binary unless ``text=True``
        (then the bytes go out in a text frame unchecked, invalid UTF-8 included)."""
        return self._each_connection(lambda connection: connection.send((data,), text=text))

    def send_message(self, message: JsonObject) -> int:
        """Send an arbitrary object as a JSON text frame."""
        data = protocol.encode(message)
        return self._each_connection(lambda connection: connection.send((data,)))

    def restart(self, code: int = CLOSE_SERVICE_RESTART, *, renumber: bool = False) -> None:
        """Close every connection with ``code``, then listen again on the same port.  The
        stream store survives, so clients can resume; the feed keeps publishing.
        ``renumber``: the store is forgotten instead, as by a server that lost it: every
        stream's seq_ids start again at 1 and nothing older is replayed."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("the reference server is not running")

        async def restart() -> None:
            await self._close_listener(code)
            if renumber:
                self._forget_numbering()
            self._ws_server = await self._listen(self._port)

        asyncio.run_coroutine_threadsafe(restart(), loop).result(
            timeout=self.config.close_timeout + _HOOK_TIMEOUT
        )

    def _forget_numbering(self) -> None:
        """A fresh stream store (for connections opened from now on; the feed publishes
        into it): seq_ids from 1, no history."""
        self._store = StreamStore(history=self.config.history)

    # -- the REST API's knobs and records --

    def fail_next_rest_requests(self, statuses: Iterable[int], *,
                                retry_after: int | None = None) -> None:
        """Answer the next REST requests with these HTTP statuses, one each, in order
        (``retry_after``: a ``Retry-After`` header on each); the requests after them are
        served."""
        faults = [(int(status), retry_after) for status in statuses]
        for status, _ in faults:
            if not 400 <= status <= 599:
                raise ValueError(f"{status} is not an HTTP error status (400-599)")

        def arm() -> None:
            self._rest_faults.extend(faults)

        self._call(arm)

    def slow_rest_requests(self, seconds: float) -> None:
        """Wait ``seconds`` before answering each REST request (0: no more)."""

        def arm() -> None:
            self._rest_delay = max(seconds, 0.0)

        self._call(arm)

    def rest_requests(self) -> list[RestRequestRecord]:
        """The REST requests answered (the newest 1000), oldest first."""
        return self._call(lambda: list(self._rest_log))

    def rest_requests_received(self) -> int:
        """How many REST requests came in, those still waiting (slow_rest_requests)
        included."""
        return self._call(lambda: self._rest_received)

    def open_positions(self, strategy_id: int) -> list[JsonObject]:
        """The book the REST API answers GetStrategyOpenPositions from."""
        return self._call(lambda: self._book.open_positions(strategy_id))

    def order_history(self, strategy_id: int) -> list[JsonObject]:
        """Every order the REST history holds for a strategy, oldest first."""
        return self._call(lambda: self._book.history(strategy_id, 0.0, None))

    # -- observability --

    def connections(self, *, open_only: bool = False) -> list[ConnectionRecord]:
        """Snapshots of the connection records, oldest first."""

        def snapshot() -> list[ConnectionRecord]:
            records = list(self._open_records.values())
            if not open_only:
                records.extend(self._closed_records)
            records.sort(key=lambda record: record.number)
            return [
                dataclasses.replace(r, received=list(r.received), malformed=list(r.malformed))
                for r in records
                if r.open or not open_only
            ]

        return self._call(snapshot) if self._loop is not None else snapshot()

    def open_connection_count(self) -> int:
        return len(self.connections(open_only=True))

    @property
    def feed_error(self) -> FeedError | None:
        """Why the feed stopped the server, if it did."""
        return self._feed_error

    @property
    def feed_lines_skipped(self) -> int:
        """Lines of the recorded feed that were not usable stream envelopes."""
        return self._file_feed.skipped if self._file_feed is not None else 0

    @staticmethod
    def wait_for(predicate: Callable[[], T], timeout: float = 5.0, interval: float = 0.01) -> T:
        return wait_for(predicate, timeout, interval)


_HOST_LABEL: Final = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")
_MAX_HOST_CHARS: Final = 253


def is_bind_host(host: str) -> bool:
    """Whether ``host`` can name an address at all: an IPv4 or IPv6 address (no brackets)
    or a host name of dot-separated labels (IDNA for non-ASCII).  Whether it resolves, or
    belongs to this machine, only binding tells."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return True
    try:
        name = host.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    name = name.removesuffix(".")
    return 0 < len(name) <= _MAX_HOST_CHARS and all(
        _HOST_LABEL.fullmatch(label) for label in name.split(".")
    )


def describe_listen_error(host: str, port: int, error: OSError) -> str:
    """One line saying why the server cannot listen, and what to do about it."""
    if isinstance(error, socket.gaierror):
        return f"cannot resolve --host {host!r}: {error.strerror or error}"
    if error.errno == errno.EADDRINUSE:
        return (f"port {port} on {host} is already in use: choose another --port "
                "(0 picks a free one)")
    if error.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {host}: it is not an address of this machine"
    if error.errno in (errno.EACCES, errno.EPERM):
        return f"not allowed to listen on {host} port {port} (ports below 1024 need privileges)"
    return f"cannot listen on {host} port {port}: {error.strerror or error}"


def run_server(config: ServerConfig, *, show_api_keys: bool = True, quiet: bool = False) -> int:
    """Serve in the foreground until SIGINT/SIGTERM; close every connection cleanly.
    Each connection, refusal, subscription and close is one line on stderr, unless
    ``quiet`` (then only what ends it is said).

    Returns the exit code, each failure said in one line on stderr: 0 after a signal;
    ``ExitCode.USAGE`` for a host that is no host name or address, or a ``--feed`` file
    that cannot be played (at the start or while playing); ``ExitCode.CONNECT_FAILED``
    when the address cannot be bound (port in use, unknown host, not this machine's).
    """

    def announce(server: ReferenceServer) -> None:
        if quiet:
            return
        print(f"c2ws reference server listening on {server.url}", file=sys.stderr)
        if show_api_keys:
            print(f"accepted API key(s): {', '.join(config.api_keys)}", file=sys.stderr)
        else:
            print(f"accepted API keys: {len(config.api_keys)} given with --api-key",
                  file=sys.stderr)
        strategies = ", ".join(str(s) for s in config.strategies)
        print(f"strategies: {strategies}", file=sys.stderr, flush=True)

    def fail(message: str, code: ExitCode) -> int:
        print(f"c2ws serve: {message}", file=sys.stderr, flush=True)
        return int(code)

    if not is_bind_host(config.host):
        return fail(f"--host {config.host!r} is not a host name or IP address", ExitCode.USAGE)
    def log(line: str) -> None:
        print(f"c2ws serve: {line}", file=sys.stderr, flush=True)

    try:
        server = ReferenceServer(config, log=None if quiet else log)
    except FeedError as exc:
        return fail(f"--feed: {exc}", ExitCode.USAGE)
    except OSError as exc:  # the recording vanished between the CLI's check and here
        return fail(f"--feed: {exc.strerror or exc}: {config.feed}", ExitCode.USAGE)
    try:
        server.run(on_ready=announce, handle_signals=True)
    except FeedError as exc:
        return fail(f"--feed: {exc}; server stopped", ExitCode.USAGE)
    except OSError as exc:
        return fail(describe_listen_error(config.host, config.port, exc),
                    ExitCode.CONNECT_FAILED)
    except (ValueError, UnicodeError) as exc:  # a host the resolver refuses to even look up
        return fail(f"--host {config.host!r} cannot be used: {exc}", ExitCode.USAGE)
    return int(ExitCode.OK)
