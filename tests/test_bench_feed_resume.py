"""The benchmark's feed server (bench/feed_server.py) serves reconnections of a ``resume``
job like C2 does: ``resume_from`` = N goes on at seq_id N+1 when that is among the last
1000 frames sent, else a ``gap`` comes first and the stream goes on at the oldest one.

A raw-socket client drives it; every wait is for a frame or an event, never for time.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
STRATEGY = 12345678  # feedctl.STRATEGY_ID
READ_TIMEOUT = 30.0


def bench_module(name: str) -> ModuleType:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module(name)


wire = bench_module("wire")
feedctl = bench_module("feedctl")


def upgrade_request() -> bytes:
    key = base64.b64encode(os.urandom(16))
    return (
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nAuthorization: Bearer test-key\r\n\r\n"
    )


class RawClient:
    """Just enough of a WebSocket client: upgrade, masked text frames out, frames in."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT)
        self.sock.sendall(upgrade_request())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            assert chunk, "the server closed during the upgrade"
            response += chunk
        head, _, rest = response.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        self.reader = wire.ClientFrameReader()  # parses unmasked (server) frames too
        self.frames: list[Any] = list(self.reader.feed(rest))
        self.early: list[dict[str, Any]] = []  # stream messages that came before an ack

    def next_frame(self) -> Any:
        while not self.frames:
            chunk = self.sock.recv(1 << 16)
            assert chunk, "the server closed the connection"
            self.frames.extend(self.reader.feed(chunk))
        return self.frames.pop(0)

    def next_message(self) -> dict[str, Any]:
        return self.early.pop(0) if self.early else self.read_message()

    def read_message(self) -> dict[str, Any]:
        frame = self.next_frame()
        assert frame.opcode == wire.OP_TEXT, frame
        return json.loads(frame.payload)

    def subscribe(self, resume_from: str | None = None, *, positions: bool = False) -> None:
        """Signals (with ``resume_from``), then, like c2ws, positions (without)."""
        assert self.next_message()["msg_type"] == "connection.connected"
        self.early = []
        request = json.loads(wire.subscription_request(STRATEGY, "resume-test"))
        if resume_from is not None:
            request["payload"]["resume_from"] = resume_from
        requests = [request]
        if positions:
            requests.append(json.loads(wire.subscription_request(STRATEGY, "positions")))
            requests[-1]["payload"]["channel"] = "strategy.positions"
        # One write: the server reads both requests before it starts the stream.
        self.sock.sendall(b"".join(wire.masked_frame(json.dumps(r).encode()) for r in requests))
        acks: list[str] = []
        while len(acks) < len(requests):
            # settle=0: the stream may start after the first ack
            message = self.read_message()
            if message["msg_type"] == "subscription.ack":
                acks.append(message["request_id"])
            else:
                self.early.append(message)
        assert acks == [sent["request_id"] for sent in requests]

    def seq_ids_until(self, last: int) -> list[int]:
        seen: list[int] = []
        while not seen or seen[-1] < last:
            message = self.next_message()
            assert message["msg_type"] == "strategy.signal", message
            seen.append(message["seq_id"])
        return seen

    def close(self) -> None:
        """A clean close: close frame out, then read until the server's reply or EOF."""
        self.sock.sendall(wire.masked_frame(b"\x03\xe8", wire.OP_CLOSE))
        try:
            while True:
                chunk = self.sock.recv(1 << 16)
                if not chunk or any(f.opcode == wire.OP_CLOSE for f in self.reader.feed(chunk)):
                    break
        except ConnectionResetError:
            pass  # the server may close with our unread acks still in its buffer
        self.sock.close()


@pytest.fixture
def feed() -> Iterator[Any]:
    with feedctl.FeedServer() as server:
        yield server


def test_a_resume_job_replays_from_resume_from_or_after_a_gap(feed: Any) -> None:
    count = 1500
    job = feed.start_job("blast", count=count, settle=0.0, timeout=120, resume=True)

    first = RawClient(feed.port)
    first.subscribe()
    assert first.seq_ids_until(count) == list(range(1, count + 1))
    first.close()

    # 200 is older than the last 1000 sent (501..1500): a gap, then 501 on.
    behind = RawClient(feed.port)
    behind.subscribe(resume_from="200")
    gap = behind.next_message()
    assert gap["msg_type"] == "gap"
    assert gap["payload"] == {
        "strategy_id": None,
        "channel": f"strategy.signal:{STRATEGY}",
        "from": "200",
        "message": "Signals 201 to 500 are no longer retained",
    }
    assert behind.seq_ids_until(count) == list(range(501, count + 1))
    resumed = job.wait_for("resumed", READ_TIMEOUT, connection=2)
    assert resumed is not None and resumed["gap"] and resumed["first_seq"] == 501
    behind.close()

    # Within the window (an integer resume_from is accepted too): no gap.
    within = RawClient(feed.port)
    within.subscribe(resume_from=1200)  # type: ignore[arg-type]
    assert within.seq_ids_until(count) == list(range(1201, count + 1))
    within.close()

    # No resume_from: live only, and the stream is over, so nothing.
    live = RawClient(feed.port)
    live.subscribe()
    streamed = job.wait_for("streamed", READ_TIMEOUT, connection=4)
    assert streamed is not None and streamed["frames"] == 0
    live.close()

    closed = job.end()
    assert closed["error"] is None
    assert closed["connections"] == 4
    assert closed["resumes"] == [200, 1200]
    assert closed["gaps_sent"] == 1
    assert closed["subscriptions"] == 4
    assert closed["frames_sent"] == count + 1000 + 300


def test_a_client_that_leaves_mid_stream_gets_the_rest_exactly_once(feed: Any) -> None:
    count, held = 5000, 100
    job = feed.start_job("blast", count=count, settle=0.0, timeout=120, resume=True)
    first = RawClient(feed.port)
    first.subscribe()
    assert first.seq_ids_until(held) == list(range(1, held + 1))
    first.close()  # whatever the server had sent beyond 100 is lost with this connection

    again = RawClient(feed.port)
    again.subscribe(resume_from=str(held), positions=True)
    message = again.next_message()
    resumed = job.wait_for("resumed", READ_TIMEOUT, connection=2)
    assert resumed is not None and resumed["resume_from"] == held
    if resumed["gap"]:  # the server was more than 1000 frames ahead
        assert message["msg_type"] == "gap" and message["payload"]["from"] == str(held)
        message = again.next_message()
    start = resumed["first_seq"]
    assert start == held + 1 or (resumed["gap"] and start > held + 1)
    assert message["seq_id"] == start
    assert again.seq_ids_until(count) == list(range(start + 1, count + 1))
    again.close()
    closed = job.end()
    assert closed["error"] is None and closed["connections"] == 2
    assert closed["resumes"] == [held] and closed["gaps_sent"] == int(resumed["gap"])


def test_a_job_without_resume_serves_one_connection(feed: Any) -> None:
    job = feed.start_job("blast", count=50, settle=0.0, timeout=120)
    client = RawClient(feed.port)
    client.subscribe(resume_from="10")  # ignored: the stream starts at 1
    assert client.seq_ids_until(50) == list(range(1, 51))
    client.close()
    closed = job.finish()
    assert closed["error"] is None
    assert closed["connections"] == 1 and closed["resumes"] == [] and closed["gaps_sent"] == 0
    assert closed["frames_sent"] == 50


def test_a_connection_left_by_an_earlier_jobs_client_is_dropped_not_served(feed: Any) -> None:
    """A client that reconnects after its job has ended (c2ws closing for backlog during
    a plain blast) must not be taken for the next job's client: that one would wait
    unserved, and the next job's, and so on (one bad run hung every later run)."""
    first = feed.start_job("blast", count=50, settle=0.0, timeout=120)
    client = RawClient(feed.port)
    client.subscribe()
    assert client.seq_ids_until(50) == list(range(1, 51))
    client.close()
    assert first.finish()["connections"] == 1
    # The same client comes back: nobody answers its upgrade, it waits in the listen queue.
    stale = socket.create_connection(("127.0.0.1", feed.port), timeout=READ_TIMEOUT)
    stale.sendall(upgrade_request())

    second = feed.start_job("blast", count=50, settle=0.0, timeout=120)
    fresh = RawClient(feed.port)
    fresh.subscribe()
    assert fresh.seq_ids_until(50) == list(range(1, 51))
    fresh.close()
    closed = second.finish()
    assert closed["error"] is None and closed["connections"] == 1
    assert second.get("armed")["stale_connections_dropped"] == 1
    try:
        answer = stale.recv(4096)
    except ConnectionResetError:  # closed with its upgrade request unread
        answer = b""
    assert answer == b""  # closed unanswered
    stale.close()
