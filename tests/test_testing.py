"""``c2ws.testing`` and the ``c2_server`` pytest plugin, as a bot author uses them: every
client here is a bare websocket-client connection (not c2ws's own client), writing the
wire format by hand, so what is checked is what any bot would see."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import websocket

from c2ws import spec, testing
from c2ws.testing import ConnectionEnd, TestServer

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parent.parent
STRATEGY = 12345678
ORDER = {"StrategyId": STRATEGY, "Side": "1", "OrderType": "1", "OrderQuantity": 2,
         "C2Symbol": {"FullSymbol": "@ESZ6", "SymbolType": "future"}}
POSITION = {"StrategyId": STRATEGY, "Quantity": 2, "C2Symbol": {"FullSymbol": "@ESZ6"}}
WS_CLOSE_OPCODE = websocket.ABNF.OPCODE_CLOSE


def stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def open_socket(srv: TestServer, key: str | None = None) -> websocket.WebSocket:
    return websocket.create_connection(
        srv.url, header=[f"Authorization: Bearer {key or srv.api_key}"], timeout=15
    )


def connect(srv: TestServer) -> websocket.WebSocket:
    ws = open_socket(srv)
    assert receive(ws)["msg_type"] == spec.MSG_CONNECTED
    return ws


@contextmanager
def connected(srv: TestServer) -> Iterator[websocket.WebSocket]:
    """A connection that has seen ``connection.connected``, closed at the end of the block
    (before the server's own block ends: a client that does not answer the server's close
    would hold its stop up for the close timeout)."""
    ws = connect(srv)
    try:
        yield ws
    finally:
        if ws.connected:
            ws.close(timeout=1)
        ws.shutdown()


def receive(ws: websocket.WebSocket, *, heartbeats: bool = False) -> dict[str, Any]:
    """The next message (heartbeats skipped unless asked for)."""
    while True:
        message: dict[str, Any] = json.loads(ws.recv())
        if heartbeats or message["msg_type"] != spec.MSG_HEARTBEAT:
            return message


def close_code(ws: websocket.WebSocket) -> int:
    """Read until the server's close frame (which websocket-client answers); its code."""
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == WS_CLOSE_OPCODE:
            ws.shutdown()  # the closing handshake is done: nothing more to wait for
            return int.from_bytes(data[:2], "big")


def subscribe(ws: websocket.WebSocket, strategy_id: int = STRATEGY,
              channel: str = spec.CHANNEL_SIGNAL, resume_from: int | None = None,
              ) -> dict[str, Any]:
    """Send a subscription.request; the server's answer (ack or error)."""
    payload: dict[str, Any] = {"action": "subscribe", "channel": channel,
                               "strategy_id": strategy_id}
    if resume_from is not None:
        payload["resume_from"] = str(resume_from)
    ws.send(json.dumps({"msg_type": "subscription.request", "timestamp": stamp(),
                        "request_id": f"{strategy_id}-{channel}", "payload": payload}))
    return receive(ws)


# --- start, stop, where to connect ------------------------------------------------------


def test_a_server_serves_its_key_on_127_0_0_1_until_the_block_ends() -> None:
    with testing.server() as srv:
        assert srv.url.startswith("ws://127.0.0.1:") and srv.url.endswith("/ws")
        assert srv.api_key == testing.DEFAULT_API_KEY
        assert len(srv.api_key) >= spec.MIN_API_KEY_LENGTH
        assert srv.api_key not in repr(srv)
        ws = connect(srv)
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            open_socket(srv, key="not-the-test-key")
        assert refused.value.status_code == spec.HTTP_UNAUTHORIZED
    # Leaving the block closed the connection (1001 going away) and the port.
    try:
        assert close_code(ws) == 1001
    finally:
        ws.close(timeout=1)
    with pytest.raises(ConnectionRefusedError):
        open_socket(srv)


def test_the_key_is_the_one_given_and_a_short_one_is_refused() -> None:
    with testing.server(api_key="my-bot-key-1234") as srv, connected(srv):
        assert srv.api_key == "my-bot-key-1234"
    with pytest.raises(ValueError, match="at least 8 characters"), testing.server(api_key="short"):
        pass


def test_a_server_stops_by_itself_after_its_lifetime() -> None:
    with testing.server(lifetime=1.0) as srv, connected(srv) as ws:
        assert srv.running
        assert close_code(ws) == 1001  # the lifetime ended the server
        srv.wait_for(lambda: not srv.running)
        with pytest.raises(RuntimeError, match=r"lifetime=1 s"):
            srv.publish(STRATEGY, ORDER)


# --- publishing -------------------------------------------------------------------------


def test_publish_reaches_a_subscribed_websocket_client_as_the_returned_envelope() -> None:
    with testing.server() as srv, connected(srv) as ws:
        assert subscribe(ws)["msg_type"] == spec.MSG_SUBSCRIPTION_ACK
        assert subscribe(ws, channel=spec.CHANNEL_POSITIONS)["msg_type"] == (
            spec.MSG_SUBSCRIPTION_ACK)
        (record,) = srv.wait_for_subscribers(1, strategy_id=STRATEGY, channel="positions")
        assert record.subscriptions == {(STRATEGY, spec.CHANNEL_SIGNAL),
                                        (STRATEGY, spec.CHANNEL_POSITIONS)}
        first = srv.publish(STRATEGY, ORDER)
        second = srv.publish(STRATEGY, dict(ORDER, Side="2"), channel="signal")
        position = srv.publish_position(STRATEGY, POSITION)
        assert [receive(ws) for _ in range(3)] == [first, second, position]
        assert (first["seq_id"], second["seq_id"]) == (1, 2)
        assert first["msg_type"] == spec.CHANNEL_SIGNAL and first["payload"] == ORDER
        assert position["msg_type"] == spec.CHANNEL_POSITIONS
        assert srv.last_seq(STRATEGY) == 2
        assert srv.last_seq(STRATEGY, "positions") == 1
        assert srv.last_seq(23456789) == 0


def test_a_signal_without_payload_is_a_synthetic_order() -> None:
    with testing.server() as srv, connected(srv) as ws:
        subscribe(ws)
        srv.wait_for_subscribers(1)
        envelope = srv.publish(STRATEGY)
        assert receive(ws) == envelope
        assert envelope["payload"]["StrategyId"] == STRATEGY and envelope["payload"]["Side"]


def test_publish_refuses_what_it_cannot_send() -> None:
    with testing.server() as srv:
        with pytest.raises(ValueError, match="unknown channel 'orders'"):
            srv.publish(STRATEGY, ORDER, channel="orders")
        with pytest.raises(ValueError, match="needs a payload"):
            srv.publish(STRATEGY, channel="positions")


def test_a_replay_after_resume_from_is_served() -> None:
    with testing.server() as srv:
        for n in range(3):
            srv.publish(STRATEGY, dict(ORDER, OrderQuantity=n + 1))
        with connected(srv) as ws:
            assert subscribe(ws, resume_from=1)["msg_type"] == spec.MSG_SUBSCRIPTION_ACK
            assert [receive(ws)["seq_id"] for _ in range(2)] == [2, 3]


def test_any_strategy_may_be_subscribed_unless_strategies_are_given() -> None:
    with testing.server() as srv, connected(srv) as ws:
        assert subscribe(ws, 4242)["msg_type"] == spec.MSG_SUBSCRIPTION_ACK
    with testing.server(strategies=[4242]) as srv, connected(srv) as ws:
        assert subscribe(ws, 4242)["msg_type"] == spec.MSG_SUBSCRIPTION_ACK
        refused = subscribe(ws, STRATEGY)
        assert refused["msg_type"] == spec.MSG_ERROR
        assert refused["payload"]["code"] == spec.ERROR_FORBIDDEN


def test_the_synthetic_feed_is_off_unless_turned_on() -> None:
    with testing.server(heartbeat_interval=0.1) as srv, connected(srv) as ws:
        subscribe(ws)
        # Fifteen heartbeats (1.5 s of the server's time): a feed that was on (2 a
        # second, starting 0.5 s after the subscriptions settle) would have published.
        seen = [receive(ws, heartbeats=True)["msg_type"] for _ in range(15)]
        assert set(seen) == {spec.MSG_HEARTBEAT}
        assert srv.last_seq(STRATEGY) == 0
    with testing.server(synthetic_feed=True, feed_rate=50, seed=3) as srv, connected(srv) as ws:
        subscribe(ws)
        messages = [receive(ws) for _ in range(3)]
        assert [m["seq_id"] for m in messages] == [1, 2, 3]  # from seq_id 1: it waited
        assert {m["payload"]["StrategyId"] for m in messages} == {STRATEGY}


# --- what clients did ------------------------------------------------------------------


def test_connections_show_what_each_client_sent() -> None:
    with testing.server(heartbeat_interval=0.2) as srv:
        with connected(srv) as ws:
            subscribe(ws)
            assert receive(ws, heartbeats=True)["msg_type"] == spec.MSG_HEARTBEAT
            ws.send(json.dumps({"msg_type": "heartbeat.ack", "timestamp": stamp()}))
            ws.send("not json")
            record = srv.wait_for(lambda: next(
                (r for r in srv.connections() if r.heartbeat_acks and r.malformed), None))
            assert record.open and record.api_key == srv.api_key
            assert [m["msg_type"] for m in record.received] == [
                "subscription.request", "heartbeat.ack"]
            assert record.malformed == ["not json"]
        closed = srv.wait_for(lambda: next((r for r in srv.connections() if not r.open), None))
        assert closed.end is ConnectionEnd.CLIENT_CLOSED and srv.connections(open_only=True) == []


def test_waiting_for_subscribers_that_never_come_says_what_was_seen() -> None:
    with testing.server() as srv, connected(srv) as ws:
        subscribe(ws, 4242)
        with pytest.raises(TimeoutError, match=(
                rf"0 of 1 connection\(s\) subscribed to strategy {STRATEGY} strategy.signal "
                r"within 0.3 s \(1 open\)")):
            srv.wait_for_subscribers(strategy_id=STRATEGY, channel="signal", timeout=0.3)
        assert len(srv.wait_for_subscribers(1, strategy_id=4242)) == 1


# --- fault knobs ------------------------------------------------------------------------


def test_drop_connections_cuts_tcp_without_a_close_frame() -> None:
    with testing.server() as srv, connected(srv) as ws:
        subscribe(ws)
        assert srv.drop_connections() == 1
        with pytest.raises(websocket.WebSocketConnectionClosedException):
            ws.recv_data(control_frame=True)
        (record,) = srv.wait_for(lambda: [r for r in srv.connections() if not r.open])
        assert record.end is ConnectionEnd.DROPPED and record.server_close_code is None


def test_drop_connections_after_messages() -> None:
    with testing.server() as srv, connected(srv) as ws:
        subscribe(ws)
        srv.drop_connections(after_messages=2)
        sent = [srv.publish(STRATEGY, ORDER) for _ in range(3)]
        assert [receive(ws) for _ in range(2)] == sent[:2]
        with pytest.raises(websocket.WebSocketConnectionClosedException):
            ws.recv()


def test_drop_next_connections_fails_a_client_in_its_resubscription() -> None:
    with testing.server() as srv:
        srv.drop_next_connections(after_messages=2)  # connection.connected and one ack
        with connected(srv) as ws:
            assert subscribe(ws)["msg_type"] == spec.MSG_SUBSCRIPTION_ACK
            with pytest.raises(websocket.WebSocketConnectionClosedException):
                ws.recv()
        with connected(srv) as again:  # only the next one was armed
            assert subscribe(again)["msg_type"] == spec.MSG_SUBSCRIPTION_ACK


def test_close_connections_sends_the_code() -> None:
    with testing.server() as srv:
        with connected(srv) as ws:
            assert srv.close_connections() == 1
            assert close_code(ws) == spec.CLOSE_POLICY_VIOLATION
        with connected(srv) as ws:
            srv.close_connections(4001, "maintenance")
            assert close_code(ws) == 4001
        assert srv.wait_for(lambda: not srv.connections(open_only=True))


def test_close_after_acks_closes_every_connection_once_it_is_acked() -> None:
    with testing.server() as srv:
        srv.close_after_acks(0.05)
        for _ in range(2):  # each time it comes back
            with connected(srv) as ws:
                assert subscribe(ws)["msg_type"] == spec.MSG_SUBSCRIPTION_ACK
                assert close_code(ws) == spec.CLOSE_POLICY_VIOLATION
        srv.close_after_acks(None)
        with connected(srv) as ws:
            subscribe(ws)
            envelope = srv.publish(STRATEGY, ORDER)
            assert receive(ws) == envelope


@pytest.mark.parametrize("status", [401, 429, 503, 500])
def test_reject_next_connections_refuses_that_many_upgrades(status: int) -> None:
    with testing.server() as srv:
        srv.reject_next_connections(status, count=2)
        for _ in range(2):
            with pytest.raises(websocket.WebSocketBadStatusException) as refused:
                open_socket(srv)
            assert refused.value.status_code == status
            assert "retry-after" not in (refused.value.resp_headers or {})
        with connected(srv):
            assert len(srv.connections()) == 1  # refused upgrades are no connections


def test_reject_next_connections_with_retry_after() -> None:
    with testing.server() as srv:
        srv.reject_next_connections(429, retry_after=7)
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            open_socket(srv)
        headers = refused.value.resp_headers or {}
        assert headers["retry-after"] == "7" and headers["x-ws-error"]
        assert json.loads(refused.value.resp_body or b"{}")["code"] == "RATE_LIMITED"
        with connected(srv):
            pass
        with pytest.raises(ValueError, match="429 or 503"):
            srv.reject_next_connections(401, retry_after=7)
        with pytest.raises(ValueError, match="not an HTTP error status"):
            srv.reject_next_connections(200)


def test_stop_heartbeats_stops_them_and_their_deadline() -> None:
    with testing.server(heartbeat_interval=0.1, heartbeat_grace=0.1) as srv:
        srv.stop_heartbeats()  # new connections too
        with connected(srv) as ws:
            ws.settimeout(1.0)  # ten intervals: a heartbeat, then a 4000 close, were due
            with pytest.raises(websocket.WebSocketTimeoutException):
                ws.recv()
            assert srv.connections(open_only=True)
            ws.settimeout(15)
            srv.resume_heartbeats()
            assert receive(ws, heartbeats=True)["msg_type"] == spec.MSG_HEARTBEAT
            assert close_code(ws) == spec.CLOSE_HEARTBEAT_TIMEOUT  # never acked


def test_stall_keeps_the_socket_open_and_sends_nothing() -> None:
    with testing.server() as srv, connected(srv) as ws:
        subscribe(ws)
        assert srv.stall() == 1
        srv.publish(STRATEGY, ORDER)  # lost to the stalled connection
        assert srv.connections(open_only=True)
        assert srv.unstall() == 1
        later = srv.publish(STRATEGY, ORDER)
        # Frames leave in order: had the first been sent, it would come first.
        assert receive(ws) == later and later["seq_id"] == 2


def test_restart_closes_with_1012_and_keeps_the_numbering() -> None:
    with testing.server() as srv:
        with connected(srv) as ws:
            srv.publish(STRATEGY, ORDER)
            srv.restart()
            assert close_code(ws) == 1012
        assert srv.last_seq(STRATEGY) == 1
        with connected(srv) as ws:  # the same URL
            subscribe(ws, resume_from=0)
            srv.wait_for_subscribers(1)
            assert srv.publish(STRATEGY, ORDER)["seq_id"] == 2
            srv.restart(renumber=True)
            assert close_code(ws) == 1012
        assert srv.last_seq(STRATEGY) == 0
        assert srv.publish(STRATEGY, ORDER)["seq_id"] == 1


def test_send_raw_and_send_message_go_out_as_they_are() -> None:
    with testing.server() as srv, connected(srv) as ws:
        assert srv.send_raw("{this is not json") == 1
        assert ws.recv() == "{this is not json"
        srv.send_raw(b"\x00\x01", text=False)
        assert ws.recv_data() == (websocket.ABNF.OPCODE_BINARY, b"\x00\x01")
        srv.send_message({"msg_type": "strategy.orders", "id": "m1"})
        assert receive(ws) == {"msg_type": "strategy.orders", "id": "m1"}


# --- importing and the pytest plugin -----------------------------------------------------


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], text=True,
                          capture_output=True, timeout=60)


def test_without_websockets_the_import_names_the_extra() -> None:
    result = python("""
        import sys
        sys.modules["websockets"] = None  # as if it were not installed
        import c2ws.testing
    """)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError: ")
    assert "pip install 'c2ws[server]'" in last


def test_the_plugin_imports_neither_the_server_nor_websockets() -> None:
    """pytest imports the plugin in every run of every project that has c2ws installed."""
    result = python("""
        import sys
        before = set(sys.modules)
        import c2ws.pytest_plugin
        print(" ".join(sorted(set(sys.modules) - before)))
    """)
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.split())
    heavy = {"websockets", "websocket", "c2ws.server", "c2ws.testing", "rich", "typer",
             "orjson", "msgspec"}
    assert not loaded & heavy, loaded & heavy


USER_TESTS = '''
import json
import time

import pytest
import websocket

pytestmark = pytest.mark.c2_server_options(strategies=[4242], heartbeat_interval=5)


def open_bot(c2_server):
    ws = websocket.create_connection(
        c2_server.url, header=["Authorization: Bearer " + c2_server.api_key], timeout=15)
    assert json.loads(ws.recv())["msg_type"] == "connection.connected"
    ws.send(json.dumps({
        "msg_type": "subscription.request", "request_id": "r1",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "payload": {"action": "subscribe", "channel": "strategy.signal", "strategy_id": 4242},
    }))
    return ws


def test_my_bot_gets_the_signal(c2_server):
    ws = open_bot(c2_server)
    assert json.loads(ws.recv())["msg_type"] == "subscription.ack"
    c2_server.wait_for_subscribers(1, strategy_id=4242)
    sent = c2_server.publish(4242, {"Side": "1", "OrderQuantity": 3})
    assert json.loads(ws.recv()) == sent


@pytest.mark.c2_server_options(strategies=[1])
def test_the_nearest_marker_wins(c2_server, c2_server_options):
    assert c2_server_options == {"strategies": [1], "heartbeat_interval": 5}
    ws = open_bot(c2_server)
    assert json.loads(ws.recv())["payload"]["code"] == "FORBIDDEN"


def test_each_test_has_a_fresh_server(c2_server):
    assert c2_server.last_seq(4242) == 0
    assert c2_server.connections() == []
'''


def test_a_project_with_c2ws_installed_gets_the_c2_server_fixture(
    pytester: pytest.Pytester,
) -> None:
    """Nothing but the installed package: no conftest, no pytest_plugins; the fixture comes
    from the pytest11 entry point."""
    pytester.makepyfile(test_my_bot=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=90)
    result.assert_outcomes(passed=3)


def test_the_example_of_docs_testing_md_passes_as_written(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bot and its tests in docs/testing.md, run as a user's project would run them."""
    text = (REPO / "docs" / "testing.md").read_text()
    files = dict(re.findall(r"<!-- testing-example: (\S+) -->\n```python\n(.*?)```", text,
                            re.DOTALL))
    assert sorted(files) == ["my_bot.py", "test_my_bot.py"], "docs/testing.md lost its example"
    for name, source in files.items():
        pytester.path.joinpath(name).write_text(source)
    # Not the settings of whoever runs the suite: no config profile, no key, no URL.
    monkeypatch.setenv("C2WS_CONFIG", os.devnull)
    for variable in ("C2_API_KEY", "C2WS_API_KEY_FILE", "C2WS_URL", "C2WS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=2)
