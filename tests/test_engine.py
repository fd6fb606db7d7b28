"""The engine as a library, in-process: watchdogs, retries and failures, against scripted
servers and the reference server on 127.0.0.1 (no CLI involved)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.sync.server import ServerConnection, serve

from c2ws import events as ev
from c2ws import spec
from c2ws.cursors import FileCursors, StreamIdentity
from c2ws.delivery.backoff import Backoff
from c2ws.delivery.dedupe import StreamFilter
from c2ws.engine import Engine, EngineConfig
from c2ws.errors import ConfigError, ConnectionFailed, InternalError
from c2ws.events import EndReason, SubscriptionKey
from c2ws.net.connection import ConnectFailed, ConnectFailure, HandshakeRejected
from c2ws.net.handoff import Handoff
from c2ws.net.worker import ConnectionSettings, ShardWorker, end_for_connect_failure
from c2ws.server.app import ReferenceServer, ServerConfig
from c2ws.session import SessionTimeouts

KEY = "engine-test-key"
SIGNAL = SubscriptionKey(1, spec.CHANNEL_SIGNAL)
CONNECTED = orjson.dumps({"msg_type": "connection.connected", "id": "msg_1",
                          "timestamp": "2026-01-01T00:00:00Z", "v": 4})


@contextmanager
def scripted(handler: Callable[[ServerConnection], None]) -> Iterator[tuple[str, list[int]]]:
    """A WebSocket server running ``handler`` per connection; yields its URL and a list
    that gets one entry per connection."""
    connections: list[int] = []
    stop = threading.Event()

    def counted(ws: ServerConnection) -> None:
        connections.append(1)
        try:
            handler(ws)
        finally:
            stop.wait(0)  # the handler returns when the client goes away

    with serve(counted, "127.0.0.1", 0, ping_interval=None, compression=None) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        port = server.socket.getsockname()[1]
        try:
            yield f"ws://127.0.0.1:{port}/ws", connections
        finally:
            server.shutdown()
            thread.join(10)


def drain(ws: ServerConnection) -> None:
    """Read (and ignore) until the client closes."""
    for _ in ws:
        pass


def config(address: str, **overrides: Any) -> EngineConfig:
    settings: dict[str, Any] = {
        "url": address, "api_key": KEY, "keys": [SIGNAL], "max_backoff": 0.05,
        "timeouts": SessionTimeouts(connected=0.5, ack=0.5, silence=2.0), "io_timeout": 0.5,
        "seed": 1,
    }
    settings.update(overrides)
    return EngineConfig(**settings)


def run_until_failure(engine: Engine, timeout: float = 30) -> tuple[list[ev.Event], Exception]:
    seen: list[ev.Event] = []
    with engine:
        try:
            while True:
                batch = engine.next_batch(timeout)
                assert batch, "no event and no failure within the timeout"
                seen.extend(batch)
                engine.acknowledge(batch)
        except (ConnectionFailed, InternalError) as failure:
            return seen, failure


def run_until(engine: Engine, predicate: Callable[[list[ev.Event]], bool],
              timeout: float = 30) -> list[ev.Event]:
    seen: list[ev.Event] = []
    with engine:
        while not predicate(seen):
            batch = engine.next_batch(timeout)
            assert batch, f"stuck after {[type(e).__name__ for e in seen]}"
            seen.extend(batch)
            engine.acknowledge(batch)
    return seen


def ended(events: list[ev.Event]) -> list[EndReason]:
    return [e.end.reason for e in events if isinstance(e, ev.ConnectionEnded)]


def test_no_connection_connected_is_a_deadline_then_a_reconnect() -> None:
    with scripted(drain) as (url, connections):
        seen = run_until(Engine(config(url)), lambda s: ended(s).count(EndReason.NO_CONNECTED) >= 2)
    assert any(isinstance(e, ev.Reconnecting) for e in seen)
    assert len(connections) >= 2


def test_no_connection_connected_without_reconnect_fails_with_its_reason() -> None:
    with scripted(drain) as (url, _):
        _, failure = run_until_failure(Engine(config(url, reconnect=False)))
    assert isinstance(failure, ConnectionFailed)
    assert failure.end.reason is EndReason.NO_CONNECTED
    assert "no connection.connected within 0.5 s" in str(failure)


def test_an_unanswered_subscription_is_a_deadline() -> None:
    def connected_then_mute(ws: ServerConnection) -> None:
        ws.send(CONNECTED.decode())
        drain(ws)

    with scripted(connected_then_mute) as (url, _):
        _, failure = run_until_failure(Engine(config(url, reconnect=False)))
    assert isinstance(failure, ConnectionFailed) and failure.end.reason is EndReason.NO_ACK
    assert "no answer to subscribe strategy.signal:1 within 0.5 s" in str(failure)


def test_a_frame_that_drips_in_is_a_deadline() -> None:
    dripping = threading.Event()

    def drip(ws: ServerConnection) -> None:
        ws.send(CONNECTED.decode())
        request = orjson.loads(ws.recv())
        ws.send(orjson.dumps({"msg_type": "subscription.ack", "id": "msg_2",
                              "request_id": request["request_id"],
                              "timestamp": "2026-01-01T00:00:00Z", "v": 4}).decode())
        # A text frame announcing 64 bytes, then one byte every 0.2 s: each read
        # succeeds quickly, the frame never completes.
        ws.socket.sendall(bytes([0x81, 64]))
        dripping.set()
        for _ in range(100):
            try:
                ws.socket.sendall(b"x")
            except OSError:
                return
            if ws.socket.recv(1, 0x40) == b"":  # MSG_DONTWAIT: stop once the peer left
                return
            threading.Event().wait(0.2)

    with scripted(drip) as (url, _):
        _, failure = run_until_failure(Engine(config(url, reconnect=False)))
    assert dripping.is_set()
    assert isinstance(failure, ConnectionFailed) and failure.end.reason is EndReason.FRAME_STALLED


def test_silence_ends_the_connection_and_the_engine_reconnects_and_resumes() -> None:
    server_config = ServerConfig(api_keys=(KEY,), feed="none", strategies=(1,),
                                 heartbeat_interval=0.5, heartbeat_grace=1.0, max_lifetime=60)
    with ReferenceServer(server_config) as server:
        engine = Engine(config(server.url, timeouts=SessionTimeouts(silence=1.0)))
        published = threading.Event()

        def act(seen: list[ev.Event]) -> bool:
            confirmed = sum(isinstance(e, ev.SubscriptionConfirmed) for e in seen)
            if confirmed == 1 and not published.is_set():
                server.publish_signal(1, {"StrategyId": 1})
                server.stall()  # nothing more: not even heartbeats
                server.publish_signal(1, {"StrategyId": 1})  # lost on the stalled socket
                published.set()
            if EndReason.SILENT in ended(seen) and confirmed == 1:
                server.unstall()
            delivered = [e.message.seq_id for e in seen if isinstance(e, ev.StreamMessage)]
            return delivered == [1, 2]

        seen = run_until(engine, act)
    assert EndReason.SILENT in ended(seen)


def test_a_fatal_answer_is_not_retried() -> None:
    server_config = ServerConfig(api_keys=("another-key",), feed="none", max_lifetime=60)
    with ReferenceServer(server_config) as server:
        seen, failure = run_until_failure(Engine(config(server.url)))
    assert isinstance(failure, ConnectionFailed) and failure.end.reason is EndReason.AUTH_FAILED
    assert not any(isinstance(e, ev.Reconnecting) for e in seen)
    assert KEY not in str(failure)


def test_max_retries_gives_up_with_the_last_reason() -> None:
    with scripted(drain) as (url, connections):
        seen, failure = run_until_failure(Engine(config(url, max_retries=2)))
    assert isinstance(failure, ConnectionFailed) and failure.end.reason is EndReason.NO_CONNECTED
    assert [e.attempt for e in seen if isinstance(e, ev.Reconnecting)] == [1, 2]
    assert len(connections) == 3


def test_a_bug_in_a_socket_thread_ends_the_run_as_an_internal_error() -> None:
    handoff: Handoff[ev.Event] = Handoff(10)

    def broken_connect(*args: object, **kwargs: object) -> Any:
        raise ZeroDivisionError("division by zero")

    worker = ShardWorker(0, [SIGNAL], settings=ConnectionSettings(url="ws://x/ws", api_key=KEY),
                         stream_filter=StreamFilter([SIGNAL], {}), handoff=handoff,
                         backoff=Backoff(), connect=broken_connect)
    worker.start()
    worker.join(10)
    (crash,) = handoff.take(0)
    assert isinstance(crash, ev.WorkerCrashed)
    assert crash.summary == "ZeroDivisionError: division by zero"
    assert "Traceback" in crash.traceback
    assert not any(isinstance(e, ev.Reconnecting) for e in handoff.take(0))


def test_a_cursor_store_is_resumed_from_and_committed_to(tmp_path: Path) -> None:
    server_config = ServerConfig(api_keys=(KEY,), feed="none", strategies=(1,),
                                 heartbeat_interval=0.5, heartbeat_grace=1.0, max_lifetime=60)
    with ReferenceServer(server_config) as server:
        for n in range(3):
            server.publish_signal(1, {"StrategyId": 1, "n": n})
        path = tmp_path / "state.json"
        identity = StreamIdentity.of(server.url, KEY, [SIGNAL])
        store = FileCursors(path)
        store.open(identity)
        store.commit({SIGNAL: 2})
        engine = Engine(config(server.url), cursors=store)

        def delivered(seen: list[ev.Event]) -> list[int]:
            return [e.message.seq_id for e in seen if isinstance(e, ev.StreamMessage)]

        run_until(engine, lambda seen: delivered(seen) == [3])  # resumed after 2
        store.close()  # the store's owner closes it, not the engine
    reopened = FileCursors(path)
    reopened.open(identity)
    assert reopened.load() == {SIGNAL: 3}
    reopened.close()


def test_a_cursor_store_returning_what_is_no_seq_id_is_a_state_file_error() -> None:
    from c2ws.errors import StateFileError

    class Broken:
        def load(self) -> dict[tuple[int, str], object]:
            return {(1, spec.CHANNEL_SIGNAL): "12"}

        def commit(self, cursors: object) -> None:
            raise AssertionError

    with pytest.raises(StateFileError, match=r"returned '12' as the cursor of "
                                             r"strategy\.signal:1, not a seq_id"):
        Engine(config("ws://127.0.0.1:9/ws"), cursors=Broken()).start()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"api_key": "two words"}, "the API key contains"),
        ({"api_key": ""}, "no API key"),
        ({"url": "http://example.com/ws"}, "is not a ws:// or wss:// URL"),
        ({"keys": []}, "nothing to subscribe to"),
        ({"keys": [SubscriptionKey(i, spec.CHANNEL_SIGNAL) for i in range(1, 1002)]},
         "at most 1000"),
    ],
)
def test_a_library_caller_gets_the_same_validation(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        Engine(config("ws://127.0.0.1:9/ws", **overrides))
    assert "two words" not in str(raised.value)


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (HandshakeRejected(401, "Invalid API key"), EndReason.AUTH_FAILED),
        (HandshakeRejected(429, "Connection limit exceeded"), EndReason.BUSY),
        (HandshakeRejected(503, "Server full"), EndReason.BUSY),
        (HandshakeRejected(404, "Not found"), EndReason.REFUSED),
        (HandshakeRejected(500, "Oops"), EndReason.UNREACHABLE),
        (ConnectFailed(ConnectFailure.REDIRECT, "redirect"), EndReason.REFUSED),
        (ConnectFailed(ConnectFailure.TLS_CERTIFICATE, "bad cert"), EndReason.REFUSED),
        (ConnectFailed(ConnectFailure.BAD_URL, "bad URL"), EndReason.REFUSED),
        (ConnectFailed(ConnectFailure.DNS, "cannot resolve"), EndReason.UNREACHABLE),
        (ConnectFailed(ConnectFailure.REFUSED, "connection refused"), EndReason.UNREACHABLE),
        (ConnectFailed(ConnectFailure.TIMEOUT, "timed out"), EndReason.UNREACHABLE),
        (ConnectFailed(ConnectFailure.TLS, "handshake"), EndReason.UNREACHABLE),
    ],
)
def test_each_connect_failure_is_classified_for_retrying(
    failure: ConnectFailed, reason: EndReason
) -> None:
    end = end_for_connect_failure(failure, "ws://example.test/ws")
    assert end.reason is reason


def test_a_404_on_a_url_without_the_ws_path_says_where_the_endpoint_is() -> None:
    end = end_for_connect_failure(HandshakeRejected(404, "Not found"), "wss://example.test/")
    assert "(the C2 endpoint's path is /ws)" in end.detail


def test_the_wait_a_busy_answer_asks_for_is_kept_for_the_backoff() -> None:
    for status in (429, 503):
        busy = end_for_connect_failure(HandshakeRejected(status, "busy", b"", 120.0), "ws://x/ws")
        assert (busy.reason, busy.retry_after) == (EndReason.BUSY, 120.0)
    other = end_for_connect_failure(HandshakeRejected(500, "oops", b"", 120.0), "ws://x/ws")
    assert other.retry_after is None  # only 429 and 503 ask us to come back later


def acked_then_closed(ws: ServerConnection) -> None:
    """connection.connected, an ack for every request, then a 1008 close at once."""
    ws.send(CONNECTED.decode())
    request = orjson.loads(ws.recv())
    ws.send(orjson.dumps({"msg_type": "subscription.ack", "id": "msg_2",
                          "request_id": request["request_id"],
                          "timestamp": "2026-01-01T00:00:00Z", "v": 4}).decode())
    ws.close(spec.CLOSE_POLICY_VIOLATION)


def test_acks_then_a_close_at_once_count_against_max_retries() -> None:
    with scripted(acked_then_closed) as (url, connections):
        engine = Engine(config(url, max_retries=2))
        seen, failure = run_until_failure(engine)
    assert isinstance(failure, ConnectionFailed) and failure.end.reason is EndReason.BUSY
    assert sum(isinstance(e, ev.SubscriptionConfirmed) for e in seen) == 3  # served, briefly
    assert [e.attempt for e in seen if isinstance(e, ev.Reconnecting)] == [1, 2]
    assert len(connections) == 3
    (down,) = engine.connections_down()
    assert (down.shard, down.gave_up, down.ever_up, down.attempts) == (0, True, True, 3)
    assert down.keys == (SIGNAL,) and down.last_end is not None
    assert down.last_end.close_code == spec.CLOSE_POLICY_VIOLATION

