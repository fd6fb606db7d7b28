"""`c2ws demo` shows every stream complete, from seq_id 1 (issue 13, item 8)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from websockets.sync.client import connect

from c2ws import spec
from c2ws.server.app import ReferenceServer, ServerConfig

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parent.parent


def test_the_demo_shows_each_stream_from_seq_id_1_without_holes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "c2ws", "demo", "-o", "ndjson", "-n", "40", "--rate", "50",
         "--timeout", "60"],
        cwd=REPO, capture_output=True, text=True, timeout=100,
    )
    assert result.returncode == 0, result.stderr
    messages = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(messages) == 40
    seq_ids: dict[tuple[str, int], list[int]] = {}
    for message in messages:
        key = (message["msg_type"], message["payload"]["StrategyId"])
        seq_ids.setdefault(key, []).append(message["seq_id"])
    signal_streams = {sid for msg_type, sid in seq_ids if msg_type == spec.CHANNEL_SIGNAL}
    assert len(signal_streams) >= 2  # the feed picks strategies at random
    for key, seen in seq_ids.items():
        assert seen == list(range(1, len(seen) + 1)), (key, seen)


def test_a_feed_that_waits_for_subscriptions_publishes_nothing_before_them() -> None:
    config = ServerConfig(rate=200.0, feed_waits_for_subscription=True, close_timeout=1.0,
                          max_lifetime=60.0)
    with ReferenceServer(config) as server:
        headers = {"Authorization": "Bearer test-key"}
        with connect(server.url, additional_headers=headers, open_timeout=10) as client:
            assert json.loads(client.recv(timeout=10))["msg_type"] == spec.MSG_CONNECTED
            # Connected but not subscribed: the feed has not started.
            assert all(server.last_seq(sid) == 0 for sid in config.strategies)
            for sid in config.strategies:
                client.send(json.dumps({
                    "msg_type": spec.MSG_SUBSCRIPTION_REQUEST,
                    "timestamp": time.strftime(spec.TIMESTAMP_FORMAT, time.gmtime()),
                    "payload": {"action": "subscribe", "channel": spec.CHANNEL_SIGNAL,
                                "strategy_id": sid},
                }))
            first_seen: dict[int, int] = {}
            while len(first_seen) < len(config.strategies):
                message = json.loads(client.recv(timeout=10))
                if message["msg_type"] == spec.CHANNEL_SIGNAL:
                    first_seen.setdefault(message["payload"]["StrategyId"], message["seq_id"])
    assert set(first_seen.values()) == {1}
