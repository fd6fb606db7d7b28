"""``c2ws.stream()`` end to end: the library against the reference server on 127.0.0.1
(real sockets, the real engine), settings resolved as the CLI resolves them."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import c2ws
from c2ws import spec
from c2ws.errors import BacklogFull, ConfigError, StateFileError
from c2ws.server.app import ReferenceServer, ServerConfig
from c2ws.streaming import StreamEnd

KEY = "stream-e2e-key-1234"
STRATEGY = 12345678


@pytest.fixture
def server() -> Iterator[ReferenceServer]:
    config = ServerConfig(api_keys=(KEY,), feed="none", strategies=(STRATEGY,),
                          heartbeat_interval=0.5, heartbeat_grace=1.0, max_lifetime=120)
    with ReferenceServer(config) as running:
        yield running


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, server: ReferenceServer) -> ReferenceServer:
    """The key and URL in the environment, as a user of the CLI would have them."""
    for name in ("C2WS_PROFILE", "C2WS_API_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("C2WS_CONFIG", "/dev/null")
    monkeypatch.setenv("C2_API_KEY", KEY)
    monkeypatch.setenv("C2WS_URL", server.url)
    return server


def subscribed(server: ReferenceServer, subscriptions: int = 1) -> None:
    def ready() -> bool:
        records = server.connections(open_only=True)
        return bool(records) and len(records[-1].subscriptions) >= subscriptions
    server.wait_for(ready, timeout=15)


def order(n: int, symbol: str = "@ESZ6") -> dict[str, Any]:
    return {"StrategyId": STRATEGY, "Side": "1", "OrderType": "2", "OrderQuantity": 2,
            "Limit": 4312.25, "C2Symbol": {"FullSymbol": symbol}, "n": n}


def publish_when_subscribed(server: ReferenceServer, payloads: list[dict[str, Any]]) -> None:
    import threading

    def publish() -> None:
        # A test that has what it needs ends, and its server with it, while this thread
        # may still be publishing: that ends the thread quietly (no warning pinned on
        # whichever test runs next).
        try:
            subscribed(server)
            for payload in payloads:
                server.publish_signal(STRATEGY, payload)
        except (RuntimeError, TimeoutError):
            if server.running:
                raise

    threading.Thread(target=publish, daemon=True).start()


def test_typed_messages_from_the_environments_key_and_url(env: ReferenceServer) -> None:
    publish_when_subscribed(env, [order(n) for n in range(5)])
    with c2ws.stream([STRATEGY], channels="signal", count=3, timeout=30) as s:
        got = list(s)
    assert [type(m) for m in got] == [c2ws.Signal] * 3
    first = got[0]
    assert isinstance(first, c2ws.Signal)
    assert first.symbol == "@ESZ6" and first.side is c2ws.Side.BUY
    assert str(first.limit_price) == "4312.25" and first.raw["payload"]["n"] == 0
    assert s.end_reason is StreamEnd.COUNT and s.delivered == 3
    record = env.wait_for(lambda: (r := env.connections()[-1]) and not r.open and r, timeout=10)
    assert record.client_close_code == 1000  # unsubscribed and closed cleanly
    assert any(m.get("msg_type") == "subscription.request"
               and m["payload"]["action"] == "unsubscribe" for m in record.received)


def test_bad_settings_are_config_errors_at_once(env: ReferenceServer,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="is not a strategy id"):
        c2ws.stream([0])
    with pytest.raises(ConfigError, match="'orders' is not a channel"):
        c2ws.stream([1], channels=["orders"])
    monkeypatch.delenv("C2_API_KEY")
    with pytest.raises(ConfigError, match="no API key"):
        c2ws.stream([1])
    with pytest.raises(ConfigError, match="too short"):
        c2ws.stream([1], api_key="short")


def test_a_caller_that_never_acknowledges_gets_backlog_full(env: ReferenceServer) -> None:
    """Defect 3: it used to get max_buffer messages and then nothing, for ever."""
    publish_when_subscribed(env, [order(n) for n in range(300)])
    got = 0
    with pytest.raises(BacklogFull) as caught, c2ws.stream(
            [STRATEGY], channels="signal", auto_ack=False, max_buffer=100, timeout=60) as s:
        for _ in s:
            got += 1
    assert got >= 100 and caught.value.max_buffer == 100
    assert s.end_reason is None or s.end_reason is StreamEnd.CLOSED


def test_a_caller_that_acknowledges_in_bulk_gets_everything(env: ReferenceServer) -> None:
    publish_when_subscribed(env, [order(n) for n in range(300)])
    seen: list[int] = []
    with c2ws.stream([STRATEGY], channels="signal", auto_ack=False, max_buffer=100,
                     count=300, timeout=60) as s:
        for msg in s:
            seen.append(msg.raw["payload"]["n"])
            if len(seen) % 40 == 0:
                s.ack(msg)
    assert seen == list(range(300)) and s.end_reason is StreamEnd.COUNT


def test_the_timeout_ends_a_stream_whose_consumer_is_behind() -> None:
    """Defect 1: a fast feed and a consumer slower than it; the deadline still ends the
    stream (asserted by what happened: it ended by the timeout, well short of the feed)."""
    config = ServerConfig(api_keys=(KEY,), rate=500, strategies=(STRATEGY,),
                          feed_waits_for_subscription=True, max_lifetime=120)
    with ReferenceServer(config) as server:
        with c2ws.stream([STRATEGY], channels="signal", api_key=KEY, url=server.url,
                         timeout=2) as s:
            for _ in s:
                time.sleep(0.02)
        published = server.last_seq(STRATEGY)
    assert s.end_reason is StreamEnd.TIMEOUT
    assert 0 < s.delivered < published


def test_file_cursors_resume_where_the_last_stream_stopped(env: ReferenceServer,
                                                           tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    publish_when_subscribed(env, [order(n) for n in range(5)])
    with c2ws.stream([STRATEGY], channels="signal", count=3, timeout=30,
                     cursors=c2ws.FileCursors(state)) as s:
        first = [m.raw["payload"]["n"] for m in s]
    with c2ws.stream([STRATEGY], channels="signal", count=2, timeout=30,
                     cursors=c2ws.FileCursors(state)) as s:
        second = [m.raw["payload"]["n"] for m in s]
    assert first + second == [0, 1, 2, 3, 4]
    held = c2ws.FileCursors(state)
    held.open(c2ws.StreamIdentity.of(env.url, KEY, [(STRATEGY, spec.CHANNEL_SIGNAL)]))
    try:
        with pytest.raises(StateFileError, match="in use by another c2ws run"), c2ws.stream(
                [STRATEGY], cursors=c2ws.FileCursors(state)):
            pass
    finally:
        held.close()


def test_sqlite_cursors_commit_with_the_callers_data(env: ReferenceServer,
                                                     tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "journal.db")
    db.execute("CREATE TABLE fills (n INTEGER)")
    publish_when_subscribed(env, [order(n) for n in range(6)])
    with c2ws.stream([STRATEGY], channels="signal", auto_ack=False, count=4, timeout=30,
                     cursors=c2ws.SqliteCursors(db)) as s:
        for msg in s:
            db.execute("INSERT INTO fills VALUES (?)", (msg.raw["payload"]["n"],))
            s.ack(msg)
            if msg.raw["payload"]["n"] == 3:
                db.rollback()  # the last one never made it: neither did its cursor
            else:
                db.commit()
    with c2ws.stream([STRATEGY], channels="signal", auto_ack=False, count=3, timeout=30,
                     cursors=c2ws.SqliteCursors(db)) as s:
        for msg in s:
            db.execute("INSERT INTO fills VALUES (?)", (msg.raw["payload"]["n"],))
            s.ack(msg)
            db.commit()
    assert [n for (n,) in db.execute("SELECT n FROM fills ORDER BY rowid")] == list(range(6))
    (seq,) = db.execute("SELECT seq_id FROM c2ws_cursors").fetchone()
    assert seq == env.last_seq(STRATEGY, spec.CHANNEL_SIGNAL)


# The journal that survives kill -9 is the cookbook's (docs/library.md), run by
# tests/test_cookbook.py.


def test_a_store_committing_each_message_gets_one_message_at_a_time(
        env: ReferenceServer) -> None:
    """``commits_each_message`` (a --state whose output is a pipe): every commit moves the
    cursor by one message, also when a burst arrives in one read (NDJSON's streams hand a
    burst over as one run of messages otherwise)."""
    class EachMessage:
        commits_each_message = True

        def __init__(self) -> None:
            self.commits: list[int] = []

        def load(self) -> dict[Any, int]:
            return {}

        def commit(self, cursors: Any) -> None:
            self.commits.append(cursors[(STRATEGY, spec.CHANNEL_SIGNAL)])

    store = EachMessage()
    # ASCII payloads published back to back: the stream's reads bring bursts.
    publish_when_subscribed(env, [order(n) for n in range(400)])
    with c2ws.stream([STRATEGY], channels="signal", count=400, timeout=60,
                     cursors=store) as s:
        seqs = [msg.seq_id for msg in s]
    assert len(seqs) == 400
    assert store.commits == seqs[: len(store.commits)]  # one message per commit, in order
    assert len(store.commits) >= 399
