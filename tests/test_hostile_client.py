"""The client against hostile servers: fuzzed sessions, echoed keys, unconfirmed runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.sync.server import ServerConnection, serve

from c2ws import events as ev
from c2ws import spec
from c2ws.delivery.dedupe import StreamFilter
from c2ws.events import SubscriptionKey
from c2ws.exitcodes import ExitCode
from c2ws.session import ClientSession
from c2ws.testing import TestServer

REPO = Path(__file__).resolve().parent.parent
KEY = "hostile-echo-key-42"
SUBSCRIBED = (SubscriptionKey(1, spec.CHANNEL_SIGNAL), SubscriptionKey(1, spec.CHANNEL_POSITIONS))

# The server of the tests against the reference server (the ``server`` fixture).
pytestmark = pytest.mark.c2_server_options(api_key=KEY, strategies=(1,), heartbeat_interval=0.5,
                                           heartbeat_grace=1.0, lifetime=60)

HOSTILE_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(["--5", "-", "1_000", "\uff15", " 7", "7 ", "1e9", "0x10", "9" * 40, "",
                     "strategy.signal:", "strategy.signal:--5", "strategy.signal:9" + "9" * 30,
                     "\x1b[2J", "2026-02-30T00:00:00Z"]),
)
JSON = st.recursive(HOSTILE_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12)
FIELDS = ("msg_type", "id", "seq_id", "request_id", "timestamp", "v", "payload")
MSG_TYPES = st.sampled_from([spec.MSG_CONNECTED, spec.MSG_HEARTBEAT, spec.MSG_SUBSCRIPTION_ACK,
                             spec.MSG_ERROR, spec.CHANNEL_SIGNAL, spec.CHANNEL_POSITIONS,
                             spec.MSG_GAP, spec.MSG_DISCONNECTED, "strange"])
PAYLOAD_KEYS = st.sampled_from(["StrategyId", "strategy_id", "strategyId", "channel", "from",
                                "message", "code", "errors", "field", "Side"])


@st.composite
def envelopes(draw: st.DrawFn) -> bytes:
    envelope: dict[str, Any] = {"msg_type": draw(MSG_TYPES)}
    for name in draw(st.lists(st.sampled_from(FIELDS[1:]), unique=True)):
        envelope[name] = draw(JSON)
    if draw(st.booleans()):
        envelope["payload"] = {draw(PAYLOAD_KEYS): draw(JSON) for _ in range(draw(
            st.integers(0, 4)))}
    # The standard library encodes what orjson refuses (NaN, integers past 64 bits).
    return json.dumps(envelope).encode() if draw(st.booleans()) else draw(st.binary(max_size=80))


def check_client_session_survives(frames: list[bytes]) -> None:
    """The property, shared with ``bench/fuzz_client_session.py``: any frames, no
    exception, and state only for the subscribed streams."""
    stream_filter = StreamFilter(SUBSCRIBED, {})
    session = ClientSession(request_id_prefix="fuzz", stream_filter=stream_filter, now=0.0)
    for key in SUBSCRIBED:
        session.subscribe(key, now=0.0, wall=1e9)
    for now, data in enumerate(frames, start=1):
        session.receive(data, now=float(now), wall=1e9)
        session.handle_timeout(now=float(now), wall=1e9)
        session.data_to_send()
        for event in session.events_received():
            if isinstance(event, ev.StreamMessage) and event.key is not None:
                assert event.key in SUBSCRIBED
    assert set(session.subscriptions) <= set(SUBSCRIBED)
    assert stream_filter.keys <= set(SUBSCRIBED)
    assert {gap.key for gap in stream_filter.unresolved_gaps()} <= set(SUBSCRIBED)


@settings(max_examples=600)
@given(st.lists(envelopes(), max_size=12))
def test_the_client_session_survives_any_frames_and_keeps_state_for_subscribed_keys_only(
    frames: list[bytes],
) -> None:
    check_client_session_survives(frames)


def run_cli(url: str, *args: str, key_flag: bool = False,
            timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("C2_API_KEY", "C2WS_URL")}
    env["C2WS_URL"] = url
    key_args = ["--api-key", KEY] if key_flag else []
    if not key_flag:
        env["C2_API_KEY"] = KEY
    return subprocess.run([sys.executable, "-m", "c2ws", "subscribe", *args, *key_args],
                          env=env, cwd=REPO, capture_output=True, timeout=timeout, check=False)


def test_a_key_echoed_by_the_server_never_reaches_stderr(server: TestServer) -> None:
    def echo() -> None:
        server.wait_for(lambda: any(r.subscriptions for r in server.connections(open_only=True)),
                        timeout=30)
        server.send_message({"msg_type": "error", "id": "msg_1", "timestamp": "x", "v": 4,
                             "payload": {"code": "FORBIDDEN", "message": f"bad key {KEY}"}})
        server.send_message({"msg_type": f"weird-{KEY}", "id": "msg_2"})
        server.send_message({"msg_type": "gap", "payload": {
            "channel": "strategy.signal:1", "from": "1", "message": f"gap for {KEY}"}})
        server.close_connections(4001, f"closing {KEY}")

    helper = threading.Thread(target=echo, daemon=True)
    helper.start()
    result = run_cli(server.url, "1", "-o", "ndjson", "--no-reconnect", "-v")
    helper.join(30)
    err = result.stderr.decode()
    assert KEY not in err
    assert err.count("****") >= 4 and "Traceback" not in err


def test_an_api_key_on_the_command_line_is_warned_about_once(server: TestServer) -> None:
    result = run_cli(server.url, "1", "-o", "ndjson", "--timeout", "0.5", key_flag=True)
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert err.count("visible to other users") == 1 and "C2_API_KEY" in err
    assert KEY not in err
    quiet = run_cli(server.url, "1", "-o", "ndjson", "--timeout", "0.5")
    assert b"visible to other users" not in quiet.stderr


def test_timeout_is_no_success_when_nothing_was_ever_confirmed() -> None:
    connected = orjson.dumps({"msg_type": "connection.connected", "id": "msg_1",
                              "timestamp": "2026-01-01T00:00:00Z", "v": 4}).decode()

    def never_ack(ws: ServerConnection) -> None:
        ws.send(connected)
        for _ in ws:
            pass

    with serve(never_ack, "127.0.0.1", 0, ping_interval=None, compression=None) as mute:
        thread = threading.Thread(target=mute.serve_forever, daemon=True)
        thread.start()
        url = f"ws://127.0.0.1:{mute.socket.getsockname()[1]}/ws"
        result = run_cli(url, "1", "-o", "ndjson", "--timeout", "1")
        mute.shutdown()
        thread.join(10)
    assert result.returncode == ExitCode.CONNECTION_LOST
    assert b"timed out after 1 s before any subscription was confirmed" in result.stderr
