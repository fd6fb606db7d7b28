"""Live subscription changes (issue 25: --strategies-file) below the CLI: the strategies
file's format, the session swapping subscriptions on a full connection, the filter
resuming an added stream (no network); then Stream.set_subscriptions against the
reference server on 127.0.0.1: new streams go to the connection with room, a new one
when none has, resumed from the cursor store, and no connection is reopened."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_session import WALL, ack, ready, sent, signal

import c2ws
from c2ws import events as ev
from c2ws import spec, testing
from c2ws.cli.strategies_watch import read_subscriptions
from c2ws.delivery.dedupe import StreamFilter
from c2ws.errors import ConfigError
from c2ws.events import SubscriptionKey
from c2ws.strategies_file import StrategiesFileError, decode, subscriptions_of
from c2ws.testing import TestServer

SIGNAL, POSITIONS = spec.CHANNEL_SIGNAL, spec.CHANNEL_POSITIONS
BOTH = (SIGNAL, POSITIONS)
KEY = "live-subscriptions-key-1234"


def key(strategy_id: int, channel: str = SIGNAL) -> SubscriptionKey:
    return SubscriptionKey(strategy_id, channel)


# --- the file's format -------------------------------------------------------------------


def test_ids_comments_and_channels_with_the_command_lines_first() -> None:
    text = "# desk A\n\n 7  # both channels\n8:signal\n9 : Positions\n7:strategy.signal\n"
    assert subscriptions_of(text, name="f", channels=BOTH, fixed=[key(1)]) == [
        key(1), key(7), key(7, POSITIONS), key(8), key(9, POSITIONS)]
    assert subscriptions_of("7\n", name="f", channels=(SIGNAL,)) == [key(7)]


@pytest.mark.parametrize(("text", "error"), [
    ("1\n0\n", "f:2: '0' is not a strategy id (a positive integer)"),
    ("1\n\n-3\n", "f:3: '-3' is not a strategy id (a positive integer)"),
    ("1 2\n", "f:1: '1 2' is not a strategy id (a positive integer)"),
    ("9" * 5000 + "\n", "f:1: '" + "9" * 59 + "\u2026' is not a strategy id"),
    ("4:sig\n", "f:1: 'sig' is not a channel; use signal or positions"),
    ("\x1b[2J:signal\n", "f:1: '' is not a strategy id"),  # never to a terminal
    ("# nothing\n", "f: names no strategy (and none is given on the command line)"),
])
def test_a_bad_line_is_named(text: str, error: str) -> None:
    with pytest.raises(StrategiesFileError) as raised:
        subscriptions_of(text, name="f", channels=BOTH)
    assert str(raised.value).startswith(error)


def test_more_than_the_limit_names_the_line_that_passes_it() -> None:
    text = "".join(f"{n}\n" for n in range(1, 600))
    with pytest.raises(StrategiesFileError, match=r"^f:500: more than 1000 subscriptions"):
        subscriptions_of(text, name="f", channels=BOTH, fixed=[key(1000)])
    assert len(subscriptions_of(text[:text.index("500\n")], name="f", channels=BOTH,
                                fixed=[key(1000), key(1000, POSITIONS)])) == 1000


def test_bytes_that_are_no_utf8_text_are_named_by_line() -> None:
    assert decode(b"\xef\xbb\xbf1\n", "f") == "1\n"
    with pytest.raises(StrategiesFileError, match=r"^f:2: not UTF-8 text$"):
        decode(b"1\n\xff\n", "f")


# --- the session and the filter ------------------------------------------------------------


def test_a_full_connection_swaps_a_subscription_without_waiting_for_the_unsubscribe() -> None:
    """The server takes requests in order: the unsubscribe has freed its place by the time
    the subscribe after it arrives."""
    session = ready(key(1), key(2), max_subscriptions=2)
    session.unsubscribe(key(2), now=1.0, wall=WALL)
    session.subscribe(key(3), now=1.0, wall=WALL)
    requests = sent(session)
    assert [(r["payload"]["action"], r["payload"]["strategy_id"]) for r in requests] == [
        ("unsubscribe", 2), ("subscribe", 3)]
    for request in requests:
        ack(session, request, 1.1)
    kinds = [type(e) for e in session.events_received()]
    assert kinds == [ev.Unsubscribed, ev.SubscriptionConfirmed]
    session.receive(signal(1, strategy_id=3), now=1.2, wall=WALL)
    assert [e.key for e in session.events_received()] == [key(3)]  # type: ignore[attr-defined]


def test_an_added_stream_resumes_from_its_cursor_and_a_known_one_keeps_its_own() -> None:
    stream_filter = StreamFilter([key(1)], {key(1): 5})
    stream_filter.adopt(key(2), 40)
    stream_filter.adopt(key(1), 2)  # followed already: its cursor is never moved back
    assert (stream_filter.resume_from(key(2)), stream_filter.held(key(1))) == (40, 5)


# --- Stream.set_subscriptions against the reference server ----------------------------------


@pytest.fixture
def server() -> Iterator[TestServer]:
    with testing.server(api_key=KEY, strategies=range(1, 61), heartbeat_interval=0.5,
                     heartbeat_grace=1.0) as running:
        yield running


def order(strategy_id: int) -> dict[str, Any]:
    return {"StrategyId": strategy_id, "Side": "1", "OrderType": "1", "OrderQuantity": 1,
            "C2Symbol": {"FullSymbol": "@ESZ6"}}


def held_by_server(server: TestServer) -> dict[int, frozenset[tuple[int, str]]]:
    return {r.number: r.subscriptions for r in server.connections(open_only=True)}


def test_a_full_connection_sends_new_streams_to_a_new_one_and_none_reconnects(
    server: TestServer, tmp_path: Path,
) -> None:
    changes: list[ev.SubscriptionsChanged] = []
    state = tmp_path / "state.json"
    with c2ws.stream([60], "signal", api_key=KEY, url=server.url,
                     cursors=c2ws.FileCursors(state)) as s:
        server.wait_for(lambda: held_by_server(server) == {1: {(60, SIGNAL)}}, timeout=15)
        server.publish(60, order(60))
        server.publish(60, order(60))
        assert [m.seq_id for m in (next(s), next(s))] == [1, 2]
    # A cursor of strategy 60 in the state file; a new run starts with 50 strategies on
    # both channels (one full connection) and adds 60 to them.
    on_event = changes.append
    with c2ws.stream(range(1, 51), api_key=KEY, url=server.url, on_event=on_event,  # type: ignore[arg-type]
                     cursors=c2ws.FileCursors(state)) as s:
        server.wait_for(lambda: len(held_by_server(server).get(2, ())) == 100, timeout=15)
        with pytest.raises(ConfigError, match="at most 1000"):
            s.set_strategies(range(1, 502))
        s.set_subscriptions([*s.keys, (60, "signal")], source="test")
        server.publish(60, order(60))
        (message,) = next(iter(s.batches()))  # the change comes through on_event first
        assert (message.strategy_id, message.seq_id) == (60, 3)  # resumed after 2
        assert held_by_server(server) == {
            2: frozenset((sid, channel) for sid in range(1, 51) for channel in BOTH),
            3: {(60, SIGNAL)}}
        (change,) = [e for e in changes if isinstance(e, ev.SubscriptionsChanged)]
        assert (change.added, change.removed, change.source) == ((key(60),), (), "test")
        assert [len(keys) for keys in change.plan] == [100, 1] and s.connection_count == 2
        (subscribe,) = [r for r in server.connections()[-1].received
                        if r.get("msg_type") == "subscription.request"]
        assert subscribe["payload"]["resume_from"] == "2"  # a string on the wire

        # Strategies out, on the full connection: unsubscribed there, nothing reopened.
        s.set_strategies(range(1, 41))
        # Applied on the consumer's thread, at its next request (an empty batch: only
        # events came).
        assert not next(s.batches(include_empty=True))
        server.wait_for(lambda: [len(v) for v in held_by_server(server).values()] == [80, 0],
                        timeout=15)
        assert [r.number for r in server.connections()] == [1, 2, 3]


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_fifo_or_a_directory_as_the_strategies_file_is_refused_at_once(
    kind: str, tmp_path: Path
) -> None:
    # A FIFO with no writer used to block the start (and the poll thread) for good.
    path = tmp_path / "desk.txt"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            read_subscriptions(path, channels=spec.CHANNELS, fixed=[])
        except BaseException as exc:  # handed to the test's thread
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(30)  # a deadline for the old code's endless open, not a timing
    assert not reader.is_alive(), "reading the strategies file waited for a writer"
    assert len(outcome) == 1 and isinstance(outcome[0], StrategiesFileError), outcome
    assert "desk.txt is a" in str(outcome[0]) and "not a regular file" in str(outcome[0])
