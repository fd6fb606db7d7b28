"""The reference server over real sockets on 127.0.0.1, driven by the websockets sync
client (independent of c2ws's own client).  Messages are written as plain JSON here so
the wire format is checked without going through c2ws.protocol."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus
from websockets.protocol import State
from websockets.sync.client import ClientConnection, connect

from c2ws import spec
from c2ws.exitcodes import ExitCode
from c2ws.server.app import (
    CLOSE_SERVICE_RESTART,
    ConnectionEnd,
    ReferenceServer,
    ServerConfig,
    run_server,
    wait_for,
)

pytestmark = pytest.mark.timeout(30)

KEY = "test-key"
STRATEGY = 12345678
OTHER_STRATEGY = 23456789

MakeServer = Callable[..., ReferenceServer]


@pytest.fixture
def make_server() -> Iterator[MakeServer]:
    servers: list[ReferenceServer] = []

    def make(**overrides: Any) -> ReferenceServer:
        settings: dict[str, Any] = {
            "feed": "none",
            "heartbeat_interval": 5.0,
            "heartbeat_grace": 2.0,
            "close_timeout": 1.0,
            "max_lifetime": 120.0,
        }
        settings.update(overrides)
        server = ReferenceServer(ServerConfig(**settings)).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


def open_client(server: ReferenceServer, key: str | None = KEY) -> ClientConnection:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else None
    return connect(
        server.url, additional_headers=headers, open_timeout=5, close_timeout=1, legacy=True
    )


def recv(client: ClientConnection, timeout: float = 3.0) -> dict[str, Any]:
    message: dict[str, Any] = orjson.loads(client.recv(timeout=timeout))
    return message


def recv_stream(client: ClientConnection, timeout: float = 3.0) -> dict[str, Any]:
    """The next message that is not a heartbeat."""
    while True:
        message = recv(client, timeout)
        if message["msg_type"] != spec.MSG_HEARTBEAT:
            return message


def connected_client(server: ReferenceServer, key: str = KEY) -> ClientConnection:
    client = open_client(server, key)
    assert recv(client)["msg_type"] == spec.MSG_CONNECTED
    return client


def now_stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def send_subscription(
    client: ClientConnection,
    strategy_id: int = STRATEGY,
    channel: str = spec.CHANNEL_SIGNAL,
    *,
    request_id: str = "sub-1",
    resume_from: str | None = None,
    action: str = "subscribe",
) -> None:
    payload: dict[str, Any] = {"action": action, "channel": channel, "strategy_id": strategy_id}
    if resume_from is not None:
        payload["resume_from"] = resume_from
    request = {
        "msg_type": "subscription.request",
        "request_id": request_id,
        "timestamp": now_stamp(),
        "payload": payload,
    }
    client.send(orjson.dumps(request).decode())


def subscribe(
    client: ClientConnection,
    strategy_id: int = STRATEGY,
    channel: str = spec.CHANNEL_SIGNAL,
    **options: Any,
) -> dict[str, Any]:
    """Send a subscription.request; the next message that is not a heartbeat."""
    send_subscription(client, strategy_id, channel, **options)
    return recv_stream(client)


def ack_heartbeat(client: ClientConnection) -> None:
    client.send(orjson.dumps({"msg_type": "heartbeat.ack", "timestamp": now_stamp()}).decode())


def closed_by_server(client: ClientConnection, timeout: float = 3.0) -> ConnectionClosed:
    """Read until the connection ends; the exception that ended it."""
    deadline = time.monotonic() + timeout
    with pytest.raises(ConnectionClosed) as ended:
        while time.monotonic() < deadline:
            client.recv(timeout=max(deadline - time.monotonic(), 0.01))
    return ended.value


def rejection(server: ReferenceServer, key: str | None) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as refused:
        open_client(server, key)
    return refused.value


# --- upgrade-time refusals ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "reason"), [(None, "Missing API key"), ("nope", "Invalid API key")]
)
def test_missing_or_invalid_key_is_refused_with_401(
    make_server: MakeServer, key: str | None, reason: str
) -> None:
    server = make_server()
    response = rejection(server, key).response
    assert response.status_code == 401
    assert response.headers["X-WS-Error"] == reason
    assert response.headers["Content-Type"] == "application/json"
    assert orjson.loads(response.body) == {"code": "UNAUTHORIZED", "message": reason}


def test_the_eleventh_connection_of_a_key_gets_429(make_server: MakeServer) -> None:
    server = make_server(api_keys=(KEY, "other-key"))
    clients = [connected_client(server) for _ in range(spec.MAX_CONNECTIONS_PER_KEY)]
    response = rejection(server, KEY).response
    assert response.status_code == 429
    assert response.headers["X-WS-Error"]
    body = orjson.loads(response.body)
    assert body["code"] == "RATE_LIMITED" and body["message"]
    connected_client(server, "other-key").close()
    clients.pop().close()
    wait_for(lambda: server.open_connection_count() < spec.MAX_CONNECTIONS_PER_KEY)
    connected_client(server).close()
    for client in clients:
        client.close()


def test_the_global_connection_cap_gives_503(make_server: MakeServer) -> None:
    server = make_server(max_connections=2)
    clients = [connected_client(server) for _ in range(2)]
    response = rejection(server, KEY).response
    assert response.status_code == 503
    assert response.headers["X-WS-Error"]
    assert orjson.loads(response.body)["code"] == "SERVICE_UNAVAILABLE"
    for client in clients:
        client.close()


def test_only_the_ws_path_is_served(make_server: MakeServer) -> None:
    server = make_server()
    with pytest.raises(InvalidStatus) as refused:
        connect(
            server.url.replace("/ws", "/other"),
            additional_headers={"Authorization": f"Bearer {KEY}"},
        )
    assert refused.value.response.status_code == 404


def test_connections_racing_past_the_key_limit_are_closed_with_1008(
    make_server: MakeServer,
) -> None:
    server = make_server()
    clients = [connected_client(server) for _ in range(spec.MAX_CONNECTIONS_PER_KEY - 1)]
    outcomes: list[str] = []
    kept: list[ClientConnection] = []
    start = threading.Barrier(5)

    def race() -> None:
        start.wait()
        try:
            client = open_client(server)
        except InvalidStatus as refused:
            outcomes.append(f"http {refused.response.status_code}")
            return
        try:
            message = recv(client)
        except ConnectionClosed as closed:
            # The loser of the race gets a bare 1008 close, no error message first.
            assert closed.rcvd is not None
            outcomes.append(f"closed {closed.rcvd.code}")
            return
        assert message["msg_type"] == spec.MSG_CONNECTED
        outcomes.append("connected")
        kept.append(client)

    threads = [threading.Thread(target=race) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("connected") == 1
    assert set(outcomes) <= {"connected", "http 429", "closed 1008"}
    wait_for(lambda: server.open_connection_count() == spec.MAX_CONNECTIONS_PER_KEY)
    for client in clients + kept:
        client.close()


# --- connection, heartbeats ---------------------------------------------------------------------


def test_connection_connected_arrives_at_once(make_server: MakeServer) -> None:
    server = make_server()
    with open_client(server) as client:
        message = recv(client)
        assert message["msg_type"] == "connection.connected"
        assert message["v"] == 4 and message["id"].startswith("msg_") and len(message["id"]) == 36
        assert message["timestamp"].endswith("Z")


def test_an_unanswered_heartbeat_closes_the_connection(make_server: MakeServer) -> None:
    server = make_server(heartbeat_interval=0.2, heartbeat_grace=0.1)
    client = connected_client(server)
    heartbeat = recv(client)
    assert heartbeat["msg_type"] == "heartbeat" and "seq_id" not in heartbeat
    closed = closed_by_server(client)
    assert closed.rcvd is not None and closed.rcvd.code == spec.CLOSE_HEARTBEAT_TIMEOUT
    record = wait_for(lambda: [r for r in server.connections() if not r.open])[0]
    assert record.end is ConnectionEnd.HEARTBEAT_TIMEOUT
    assert record.server_close_code == spec.CLOSE_HEARTBEAT_TIMEOUT


def test_an_acknowledged_connection_stays_open(make_server: MakeServer) -> None:
    # Ten intervals outlast interval + grace many times over: only the acks keep it open.
    server = make_server(heartbeat_interval=0.1, heartbeat_grace=0.3)
    with connected_client(server) as client:
        for _ in range(10):
            assert recv(client)["msg_type"] == "heartbeat"
            ack_heartbeat(client)
        wait_for(lambda: server.connections()[0].heartbeat_acks == 10)
        record = server.connections()[0]
        assert record.open
        assert [m["msg_type"] for m in record.received] == ["heartbeat.ack"] * 10
    record = wait_for(lambda: [r for r in server.connections() if not r.open])[0]
    assert record.end is ConnectionEnd.CLIENT_CLOSED and record.client_close_code == 1000


# --- subscriptions and streaming ------------------------------------------------------------------


def test_subscribe_ack_and_live_delivery(make_server: MakeServer) -> None:
    server = make_server()
    with connected_client(server) as client:
        ack = subscribe(client, request_id="my-sub-001")
        assert ack["msg_type"] == "subscription.ack" and ack["request_id"] == "my-sub-001"
        assert ack["payload"] == {
            "action": "subscribe",
            "channel": "strategy.signal",
            "strategy_id": STRATEGY,
        }
        server.publish_signal(OTHER_STRATEGY, {"StrategyId": OTHER_STRATEGY})
        server.publish_position(STRATEGY, {"StrategyId": STRATEGY, "Quantity": 1})
        published = server.publish_signal(STRATEGY, {"StrategyId": STRATEGY, "Side": "1"})
        received = recv_stream(client)
        assert received == published
        assert received["seq_id"] == 1 and received["payload"] == {
            "StrategyId": STRATEGY,
            "Side": "1",
        }
        assert subscribe(client, channel="strategy.positions", request_id="p")["request_id"] == "p"
        position = server.publish_position(STRATEGY, {"StrategyId": STRATEGY, "Quantity": 2})
        assert recv_stream(client) == position and position["seq_id"] == 2
        assert (
            subscribe(client, action="unsubscribe", request_id="off")["msg_type"]
            == "subscription.ack"
        )
        server.publish_signal(STRATEGY, {"StrategyId": STRATEGY})
        marker = server.publish_position(STRATEGY, {"StrategyId": STRATEGY, "Quantity": 3})
        assert recv_stream(client) == marker


def test_errors_arrive_as_messages(make_server: MakeServer) -> None:
    server = make_server()
    with connected_client(server) as client:
        forbidden = subscribe(client, strategy_id=999, request_id="f")
        assert forbidden["msg_type"] == "error" and forbidden["request_id"] == "f"
        assert forbidden["payload"] == {
            "code": "FORBIDDEN",
            "field": "StrategyId",
            "message": "Not authorized to subscribe to Strategy",
        }
        invalid = subscribe(client, channel="strategy.orders", request_id="i")
        assert invalid["payload"]["code"] == "INVALID_PARAMETER"
        assert invalid["payload"]["field"] == "Channel"
        client.send('{"msg_type": "heartbeat", "request_id": "u"}')
        unknown = recv_stream(client)
        assert unknown["request_id"] == "u" and unknown["payload"]["field"] == "MsgType"
        client.send("{oops")
        assert recv_stream(client)["payload"]["code"] == "INVALID_PARAMETER"
        client.send(b"\xff\x00")
        assert recv_stream(client)["msg_type"] == "error"
        assert server.connections()[0].malformed == ["{oops", b"\xff\x00"]


def test_the_synthetic_feed_streams_signals_followed_by_their_positions(
    make_server: MakeServer,
) -> None:
    server = make_server(feed="synthetic", rate=200.0, seed=5)
    with connected_client(server) as client:
        for strategy_id in server.config.strategies:
            for channel in spec.CHANNELS:
                send_subscription(client, strategy_id, channel)
        received = [recv_stream(client) for _ in range(80)]
    acks = [m for m in received if m["msg_type"] == "subscription.ack"]
    assert len(acks) == 2 * len(server.config.strategies)
    messages = [m for m in received if m["msg_type"] != "subscription.ack"]
    last_seq: dict[tuple[int, str], int] = {}
    for index, message in enumerate(messages):
        key = (message["payload"]["StrategyId"], message["msg_type"])
        if key in last_seq:
            assert message["seq_id"] == last_seq[key] + 1
        last_seq[key] = message["seq_id"]
        if message["msg_type"] == "strategy.positions" and index > 0:
            fill = messages[index - 1]
            assert fill["msg_type"] == "strategy.signal" and fill["payload"]["OrderStatus"] == "2"
            assert fill["payload"]["C2Symbol"] == message["payload"]["C2Symbol"]
    assert {m["msg_type"] for m in messages} == {"strategy.signal", "strategy.positions"}


def test_a_recorded_feed_is_republished_with_fresh_seq_ids(
    make_server: MakeServer, tmp_path: Path
) -> None:
    recording = tmp_path / "recorded.ndjson"
    lines = [
        {"msg_type": "strategy.signal", "seq_id": 500, "payload": {"StrategyId": STRATEGY, "n": 1}},
        {"msg_type": "strategy.signal", "seq_id": 501, "payload": {"StrategyId": STRATEGY, "n": 2}},
    ]
    recording.write_bytes(b"not json\n" + b"\n".join(orjson.dumps(line) for line in lines))
    server = make_server(feed=recording, rate=100.0)
    time.sleep(0.3)
    assert server.last_seq(STRATEGY) == 0  # a recording waits for its first listener
    with connected_client(server) as client:
        assert subscribe(client)["msg_type"] == "subscription.ack"
        first, second = recv_stream(client), recv_stream(client)
    assert (first["seq_id"], first["payload"]) == (1, {"StrategyId": STRATEGY, "n": 1})
    assert (second["seq_id"], second["payload"]) == (2, {"StrategyId": STRATEGY, "n": 2})
    assert server.feed_lines_skipped == 1


def test_resume_replays_the_missed_signals_then_a_gap_then_live(make_server: MakeServer) -> None:
    server = make_server()
    published = [server.publish_signal(STRATEGY, {"n": n}) for n in range(1005)]
    with connected_client(server) as client:
        ack = subscribe(client, resume_from="2", request_id="resume")
        assert ack["msg_type"] == "subscription.ack" and ack["request_id"] == "resume"
        replayed = [recv_stream(client) for _ in range(1000)]
        assert replayed == published[2:1002]
        gap = recv_stream(client)
        assert gap["msg_type"] == "gap"
        assert gap["payload"] == {
            "strategy_id": None,
            "channel": f"strategy.signal:{STRATEGY}",
            "from": "1002",
            "message": "Replay limit of 1000 messages exceeded",
        }
        live = server.publish_signal(STRATEGY, {"n": "live"})
        assert recv_stream(client) == live and live["seq_id"] == 1006


# --- fault knobs ----------------------------------------------------------------------------------


def test_drop_after_n_messages_aborts_without_a_close_frame(make_server: MakeServer) -> None:
    server = make_server()
    client = connected_client(server)
    subscribe(client)
    assert server.drop_connections_after(2) == 1
    for n in range(3):
        server.publish_signal(STRATEGY, {"n": n})
    assert [recv_stream(client)["payload"]["n"] for _ in range(2)] == [0, 1]
    with pytest.raises(ConnectionClosedError) as closed:
        client.recv(timeout=3)
    assert closed.value.rcvd is None
    record = wait_for(lambda: [r for r in server.connections() if not r.open])[0]
    assert record.end is ConnectionEnd.DROPPED and record.server_close_code is None


def test_drop_after_zero_aborts_at_once(make_server: MakeServer) -> None:
    server = make_server()
    client = connected_client(server)
    server.drop_connections_after(0)
    assert closed_by_server(client).rcvd is None


def test_paused_heartbeats_go_silent_without_closing(make_server: MakeServer) -> None:
    server = make_server(heartbeat_interval=0.1, heartbeat_grace=0.05)
    with connected_client(server) as client:
        server.pause_heartbeats()
        # Drain a heartbeat that may have left just before the pause.
        with pytest.raises(TimeoutError):
            while True:
                assert recv(client, timeout=0.3)["msg_type"] == "heartbeat"
        with pytest.raises(TimeoutError):
            client.recv(timeout=0.4)
        assert client.protocol.state is State.OPEN
        server.resume_heartbeats()
        assert recv(client)["msg_type"] == "heartbeat"
        ack_heartbeat(client)


def test_a_stalled_server_sends_nothing_but_keeps_the_socket_open(make_server: MakeServer) -> None:
    server = make_server(heartbeat_interval=0.1, heartbeat_grace=0.05)
    with connected_client(server) as client:
        assert subscribe(client)["msg_type"] == "subscription.ack"
        server.stall()
        server.publish_signal(STRATEGY, {"n": "lost"})
        with pytest.raises(TimeoutError):
            while True:
                assert recv(client, timeout=0.4)["msg_type"] == "heartbeat"
        assert client.protocol.state is State.OPEN
        server.unstall()
        server.publish_signal(STRATEGY, {"n": "after"})
        message = recv_stream(client)
        assert message["payload"] == {"n": "after"} and message["seq_id"] == 2
        ack_heartbeat(client)


def test_close_connections_uses_policy_violation(make_server: MakeServer) -> None:
    server = make_server()
    client = connected_client(server)
    assert server.close_connections() == 1
    closed = closed_by_server(client)
    assert closed.rcvd is not None and closed.rcvd.code == spec.CLOSE_POLICY_VIOLATION
    record = wait_for(lambda: [r for r in server.connections() if not r.open])[0]
    assert record.end is ConnectionEnd.CLOSED_BY_SERVER


def test_raw_frames_and_arbitrary_messages_reach_the_client(make_server: MakeServer) -> None:
    server = make_server()
    with connected_client(server) as client:
        server.send_raw("not json {")
        assert client.recv(timeout=3) == "not json {"
        server.send_raw(b"\x00\x01binary")
        assert client.recv(timeout=3) == b"\x00\x01binary"
        server.send_message({"msg_type": "surprise", "payload": [1, 2]})
        assert recv(client) == {"msg_type": "surprise", "payload": [1, 2]}


def test_invalid_utf8_in_a_text_frame_makes_the_client_close_with_1007(
    make_server: MakeServer,
) -> None:
    server = make_server()
    client = connected_client(server)
    server.send_raw(b"\xff\xfe", text=True)
    with pytest.raises(ConnectionClosedError):
        client.recv(timeout=3)
    record = wait_for(lambda: [r for r in server.connections() if not r.open])[0]
    assert record.client_close_code == 1007


def test_restart_keeps_the_port_and_the_stream_so_clients_resume(make_server: MakeServer) -> None:
    server = make_server()
    port = server.port
    client = connected_client(server)
    subscribe(client)
    for n in range(3):
        server.publish_signal(STRATEGY, {"n": n})
    assert [recv_stream(client)["seq_id"] for _ in range(3)] == [1, 2, 3]
    server.restart()
    closed = closed_by_server(client)
    assert closed.rcvd is not None and closed.rcvd.code == CLOSE_SERVICE_RESTART
    assert server.port == port
    server.publish_signal(STRATEGY, {"n": 3})
    with connected_client(server) as again:
        assert subscribe(again, resume_from="3")["msg_type"] == "subscription.ack"
        assert recv_stream(again)["seq_id"] == 4
        assert server.publish_signal(STRATEGY, {"n": 4})["seq_id"] == 5
        assert recv_stream(again)["seq_id"] == 5


def test_restart_can_forget_the_numbering_like_a_server_that_lost_it(
    make_server: MakeServer,
) -> None:
    server = make_server()
    client = connected_client(server)
    subscribe(client)
    for n in range(3):
        server.publish_signal(STRATEGY, {"n": n})
    assert [recv_stream(client)["seq_id"] for _ in range(3)] == [1, 2, 3]
    server.restart(renumber=True)
    closed_by_server(client)
    with connected_client(server) as again:
        assert subscribe(again, resume_from="3")["msg_type"] == "subscription.ack"
        assert server.publish_signal(STRATEGY, {"n": 3})["seq_id"] == 1  # nothing replayed
        assert recv_stream(again)["seq_id"] == 1


def test_renumber_on_connect_forgets_the_numbering_for_each_new_connection(
    make_server: MakeServer,
) -> None:
    server = make_server(renumber_on_connect=True)
    with connected_client(server) as first:
        subscribe(first)
        for n in range(2):
            server.publish_signal(STRATEGY, {"n": n})
        assert [recv_stream(first)["seq_id"] for _ in range(2)] == [1, 2]
    with connected_client(server) as second:
        assert subscribe(second, resume_from="2")["msg_type"] == "subscription.ack"
        server.publish_signal(STRATEGY, {"n": 2})
        assert recv_stream(second)["seq_id"] == 1


def test_the_serve_command_passes_renumber_on_connect_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import c2ws.cli.serve  # noqa: F401  (registers the command)
    from c2ws.cli.app import app
    from c2ws.server import app as server_app

    configs: list[ServerConfig] = []

    def run(config: ServerConfig, **options: Any) -> int:
        configs.append(config)
        return 0

    monkeypatch.setattr(server_app, "run_server", run)
    for flag, expected in (("--renumber-on-connect", True), ("--feed", False)):
        args = ["serve", "--port", "0", flag] + (["none"] if flag == "--feed" else [])
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert configs[-1].renumber_on_connect is expected


def test_stop_closes_clients_with_going_away(make_server: MakeServer) -> None:
    server = make_server()
    clients = [connected_client(server) for _ in range(3)]
    server.stop()
    for client in clients:
        closed = closed_by_server(client)
        assert closed.rcvd is not None and closed.rcvd.code == 1001
    assert all(record.end is ConnectionEnd.SERVER_SHUTDOWN for record in server.connections())
    with pytest.raises(RuntimeError):
        server.publish_signal(STRATEGY)
    server.stop()  # idempotent


def test_max_lifetime_stops_the_server_by_itself(make_server: MakeServer) -> None:
    server = make_server(max_lifetime=0.3)
    client = connected_client(server)
    closed = closed_by_server(client)
    assert closed.rcvd is not None and closed.rcvd.code == 1001
    wait_for(lambda: not server.running)


def test_a_port_in_use_fails_start_and_run_server(
    make_server: MakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server = make_server()
    with pytest.raises(OSError):
        ReferenceServer(ServerConfig(port=server.port, feed="none")).start()
    assert run_server(ServerConfig(port=server.port, feed="none")) == ExitCode.CONNECT_FAILED
    assert capsys.readouterr().err == (
        f"c2ws serve: port {server.port} on 127.0.0.1 is already in use: choose another "
        "--port (0 picks a free one)\n"
    )


def test_bad_configurations_are_refused_early(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        ServerConfig(heartbeat_interval=0)
    with pytest.raises(ValueError):
        ServerConfig(api_keys=())
    with pytest.raises(FileNotFoundError):
        ReferenceServer(ServerConfig(feed=tmp_path / "missing.ndjson"))


# --- the foreground entry point -------------------------------------------------------------------


@contextlib.contextmanager
def serving_process(command: list[str]) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A server in a child process; yields it and the URL from its banner on stderr."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stderr is not None
        prefix = "c2ws reference server listening on "
        banner = process.stderr.readline().strip()
        assert banner.startswith(prefix)
        yield process, banner.removeprefix(prefix)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def sigterm_closes_with_going_away(process: subprocess.Popen[str],
                                   client: ClientConnection) -> None:
    process.send_signal(signal.SIGTERM)
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            client.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert process.wait(timeout=10) == 0


def test_run_server_serves_until_sigterm_then_closes_cleanly() -> None:
    code = (
        "from c2ws.server.app import ServerConfig, run_server; "
        "raise SystemExit(run_server(ServerConfig(port=0, feed='none')))"
    )
    with serving_process([sys.executable, "-c", code]) as (process, url):
        assert process.stderr is not None
        assert "test-key" in process.stderr.readline()
        with connect(url, additional_headers={"Authorization": f"Bearer {KEY}"}) as client:
            assert orjson.loads(client.recv(timeout=5))["msg_type"] == "connection.connected"
            sigterm_closes_with_going_away(process, client)


def test_the_hundred_and_first_subscription_is_refused_over_the_wire(
    make_server: MakeServer,
) -> None:
    strategies = tuple(range(1000, 1051))  # 51 strategies x 2 channels = 102 subscriptions
    server = make_server(strategies=strategies)
    with connected_client(server) as client:
        answers = []
        for number, (strategy_id, channel) in enumerate(
            (s, c) for s in strategies for c in spec.CHANNELS
        ):
            answers.append(subscribe(client, strategy_id, channel, request_id=f"r{number}"))
        assert [a["msg_type"] for a in answers[:100]] == ["subscription.ack"] * 100
        for refused in answers[100:]:
            assert refused["msg_type"] == "error"
            assert refused["payload"]["code"] == spec.ERROR_LIMIT_EXCEEDED
        # Unsubscribing frees a place.
        assert subscribe(client, 1000, spec.CHANNEL_SIGNAL, action="unsubscribe",
                         request_id="u")["msg_type"] == "subscription.ack"
        assert subscribe(client, 1050, spec.CHANNEL_POSITIONS,
                         request_id="again")["msg_type"] == "subscription.ack"


@pytest.mark.parametrize(
    ("request_id", "timestamp", "field"),
    [("x" * 51, None, "RequestId"), ("ok", "2020-01-01T00:00:00Z", "Timestamp")],
)
def test_request_id_and_timestamp_limits_over_the_wire(
    make_server: MakeServer, request_id: str, timestamp: str | None, field: str
) -> None:
    server = make_server()
    with connected_client(server) as client:
        request = {
            "msg_type": "subscription.request",
            "request_id": request_id,
            "timestamp": timestamp or now_stamp(),
            "payload": {"action": "subscribe", "channel": spec.CHANNEL_SIGNAL,
                        "strategy_id": STRATEGY},
        }
        client.send(orjson.dumps(request).decode())
        error = recv_stream(client)
        assert error["msg_type"] == "error"
        assert (error["payload"]["code"], error["payload"]["field"]) == (
            "INVALID_PARAMETER", field)


def test_the_serve_command_serves_until_sigterm() -> None:
    command = [sys.executable, "-m", "c2ws", "serve", "--port", "0", "--api-key", "cli-key",
               "--feed", "none", "--heartbeat-interval", "0.2", "--strategies", "7,8"]
    with serving_process(command) as (process, url):
        assert process.stderr is not None
        assert process.stderr.readline().strip() == "accepted API keys: 1 given with --api-key"
        headers = {"Authorization": "Bearer cli-key"}
        with connect(url, additional_headers=headers, open_timeout=5) as client:
            assert orjson.loads(client.recv(timeout=5))["msg_type"] == spec.MSG_CONNECTED
            assert orjson.loads(client.recv(timeout=5))["msg_type"] == spec.MSG_HEARTBEAT
            forbidden = subscribe(client, 9)  # --strategies limits what the key may see
            assert forbidden["payload"]["code"] == "FORBIDDEN"
            sigterm_closes_with_going_away(process, client)


# --- issue 25: the server tells its operator what happens -------------------------------------


def test_the_server_tells_its_operator_each_refusal_connection_subscription_and_close() -> None:
    told: list[str] = []
    config = ServerConfig(feed="none", strategies=(STRATEGY,), max_lifetime=60.0,
                          close_timeout=1.0)
    with ReferenceServer(config, log=told.append) as server:
        rejection(server, "wrong-key")
        with connected_client(server) as client:
            assert subscribe(client)["msg_type"] == spec.MSG_SUBSCRIPTION_ACK
            refused = subscribe(client, 99, request_id="sub-\x1b[2J")
            assert refused["msg_type"] == spec.MSG_ERROR
        server.wait_for(lambda: any(" closed: " in line for line in told))
    lines = [line.split(" ", 1)[1] for line in told]  # after the time of day
    assert lines[0].startswith("refused 127.0.0.1:") and lines[0].endswith(
        ": HTTP 401 UNAUTHORIZED: Invalid API key")
    assert lines[1].startswith("connection 1 from 127.0.0.1:") and lines[1].endswith(" opened")
    assert lines[2] == f"connection 1 subscribed to {spec.CHANNEL_SIGNAL}:{STRATEGY}"
    assert lines[3].startswith("connection 1 refused request sub-: FORBIDDEN: ")  # escapes removed
    assert lines[4].startswith("connection 1 closed: client_closed (close code: client 1000")
    assert len(lines) == 5


@pytest.mark.parametrize("quiet", [False, True])
def test_serve_quiet_says_nothing_but_what_ends_it(
    quiet: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    config = ServerConfig(port=0, feed="none", max_lifetime=0.2)
    assert run_server(config, quiet=quiet) == 0
    said = capsys.readouterr().err
    assert (said == "") is quiet and ("listening on" in said) is not quiet
