"""The reference server against hostile clients and bad start-up input (issue 12, items 9-11):
memory bounded by the budget, not by what clients send; a resume_from that is no seq_id
answered, not a crash; `c2ws serve` failures said in one line with the right exit code."""

from __future__ import annotations

import dataclasses
import io
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from c2ws import spec
from c2ws.exitcodes import ExitCode
from c2ws.server import app
from c2ws.server.app import ReferenceServer, ServerConfig, is_bind_host, run_server, wait_for
from c2ws.server.feed import FeedError, FeedEvent, FileFeed

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parent.parent
KEY = "test-key"
STRATEGY = 12345678

MakeServer = Callable[..., ReferenceServer]


@pytest.fixture
def make_server() -> Iterator[MakeServer]:
    servers: list[ReferenceServer] = []

    def make(**overrides: Any) -> ReferenceServer:
        settings: dict[str, Any] = {"feed": "none", "close_timeout": 1.0, "max_lifetime": 120.0}
        settings.update(overrides)
        server = ReferenceServer(ServerConfig(**settings)).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


def connected_client(server: ReferenceServer) -> ClientConnection:
    client = connect(server.url, additional_headers={"Authorization": f"Bearer {KEY}"},
                     open_timeout=10, close_timeout=2, max_size=None, legacy=True)
    assert orjson.loads(client.recv(timeout=10))["msg_type"] == spec.MSG_CONNECTED
    return client


def reply(client: ClientConnection) -> dict[str, Any]:
    """The next message that is not a heartbeat."""
    while True:
        message: dict[str, Any] = orjson.loads(client.recv(timeout=10))
        if message["msg_type"] != spec.MSG_HEARTBEAT:
            return message


def stamp() -> str:
    return time.strftime(spec.TIMESTAMP_FORMAT, time.gmtime())


def subscription(request_id: str, **payload: Any) -> bytes:
    return orjson.dumps({
        "msg_type": spec.MSG_SUBSCRIPTION_REQUEST,
        "request_id": request_id,
        "timestamp": stamp(),
        "payload": {"action": "subscribe", "channel": spec.CHANNEL_SIGNAL,
                    "strategy_id": STRATEGY, **payload},
    })


def deep_size(value: object) -> int:
    """Bytes held by an object graph, each object counted once (written independently of
    the server's own accounting)."""
    seen: set[int] = set()
    total = 0
    pending = [value]
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            pending.extend(item)
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            pending.extend(getattr(item, f.name) for f in dataclasses.fields(item))
    return total


# --- item 9: memory held per connection and for closed ones --------------------------------


def test_many_large_frames_do_not_grow_what_the_server_keeps(make_server: MakeServer) -> None:
    server = make_server()
    big = 256 * 1024
    malformed_frames, valid_frames = 120, 40
    with connected_client(server) as client:
        for number in range(malformed_frames):
            client.send(f"{{not json {number:05d} " + "x" * big)
        for number in range(valid_frames):
            client.send(orjson.dumps({"msg_type": spec.MSG_HEARTBEAT_ACK, "timestamp": stamp(),
                                      "request_id": f"big-{number}", "pad": "y" * big}))
        client.send(b'{"msg_type": "heartbeat.ack", "request_id": "small"}')
        total = malformed_frames + valid_frames + 1
        wait_for(lambda: server.connections()[0].frames_received == total, timeout=30)
        record = server.connections()[0]
    sent_bytes = (malformed_frames + valid_frames) * big
    assert record.bytes_received > sent_bytes
    held = deep_size(server.connections())
    assert held < 2 * spec.RECORD_BUDGET_BYTES + 64 * 1024 < sent_bytes / 100
    # The newest frames are the ones kept, as previews of bounded size.
    assert record.malformed[-1].startswith(f"{{not json {malformed_frames - 1:05d} ")
    assert all(len(frame) <= spec.RECORD_PREVIEW_BYTES for frame in record.malformed)
    newest_big = record.received[-2]
    assert newest_big["msg_type"] == spec.MSG_HEARTBEAT_ACK and newest_big["truncated"]
    assert newest_big["request_id"] == f"big-{valid_frames - 1}"
    assert newest_big["size"] > big and len(newest_big["preview"]) == spec.RECORD_PREVIEW_BYTES
    # Small frames are kept as they came.
    assert record.received[-1] == {"msg_type": "heartbeat.ack", "request_id": "small"}


def test_only_the_newest_closed_connections_are_remembered(make_server: MakeServer) -> None:
    server = make_server(closed_records=3)
    for number in range(8):
        with connected_client(server) as client:
            client.send(subscription(f"r{number}"))
            assert reply(client)["msg_type"] == spec.MSG_SUBSCRIPTION_ACK
        wait_for(lambda n=number: [r.number for r in server.connections() if not r.open][-1:]
                 == [n + 1])
    with connected_client(server):
        numbers = [(r.number, r.open) for r in server.connections()]
    assert numbers == [(6, False), (7, False), (8, False), (9, True)]


def test_closed_records_zero_keeps_only_the_open_ones(make_server: MakeServer) -> None:
    server = make_server(closed_records=0)
    with connected_client(server):
        assert [r.number for r in server.connections()] == [1]
    wait_for(lambda: server.connections() == [])
    assert server.connections(open_only=True) == []


# --- item 10: a resume_from that is no seq_id ------------------------------------------------


@pytest.mark.parametrize("resume_from", ["--5", " 7", "1_000", "\uff15", "99999999999999999999"])
def test_a_hostile_resume_from_is_answered_and_the_connection_carries_on(
    make_server: MakeServer, resume_from: str
) -> None:
    server = make_server()
    with connected_client(server) as client:
        client.send(subscription("bad", resume_from=resume_from))
        error = reply(client)
        assert error["msg_type"] == spec.MSG_ERROR and error["request_id"] == "bad"
        assert (error["payload"]["code"], error["payload"]["field"]) == (
            spec.ERROR_INVALID_PARAMETER, "ResumeFrom")
        client.send(subscription("good", resume_from="0"))
        assert reply(client)["msg_type"] == spec.MSG_SUBSCRIPTION_ACK
    assert server.connections()[0].server_close_code != 1011


# --- item 11: `c2ws serve` start-up failures -------------------------------------------------


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "c2ws", "serve", "--feed", "none", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)


def assert_one_clear_line(result: subprocess.CompletedProcess[str], code: int,
                          *phrases: str) -> None:
    assert result.returncode == code, result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    for phrase in phrases:
        assert phrase in result.stderr


def test_serve_on_a_port_in_use_says_so_and_exits_4() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve("--port", str(port))
    assert_one_clear_line(result, ExitCode.CONNECT_FAILED, f"port {port}", "already in use")
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("host", "phrase"),
    [("192.0.2.1", "not an address of this machine"), ("no-such-host.invalid", "resolve")],
)
def test_serve_on_a_host_it_cannot_bind_exits_4(host: str, phrase: str) -> None:
    result = serve("--host", host, "--port", "0")
    assert_one_clear_line(result, ExitCode.CONNECT_FAILED, phrase)
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("host", ["a b", "", "http://localhost", "[::1]", "-x", "a" * 64,
                                  "host:80"])
def test_serve_with_a_host_that_is_no_host_at_all_is_a_usage_error(host: str) -> None:
    result = serve("--host", host, "--port", "0")
    assert_one_clear_line(result, ExitCode.USAGE, "--host")


def test_bind_hosts() -> None:
    for good in ("127.0.0.1", "::1", "::", "0.0.0.0", "localhost", "example.com.", "a_b.c"):
        assert is_bind_host(good), good
    for bad in ("", " ", "a b", "[::1]", "x:1", "a..b", "-a", "a-", "x\x00", "a" * 254):
        assert not is_bind_host(bad), bad


def test_run_server_refuses_a_host_that_is_no_host(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_server(ServerConfig(host="no host", feed="none")) == ExitCode.USAGE
    assert capsys.readouterr().err == (
        "c2ws serve: --host 'no host' is not a host name or IP address\n")


def test_serve_with_a_feed_file_holding_no_stream_message_stops_at_once(tmp_path: Path) -> None:
    recording = tmp_path / "wrong.ndjson"
    recording.write_text('{"msg_type": "heartbeat"}\nnot json\n')
    result = subprocess.run(
        [sys.executable, "-m", "c2ws", "serve", "--port", "0", "--feed", str(recording)],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert_one_clear_line(result, ExitCode.USAGE, str(recording), "holds no strategy.signal")
    assert result.stderr.count("\n") == 1


class _FailingStream(io.BytesIO):
    """A file whose reads fail after the first few, like a disk error."""

    def __init__(self, content: bytes, good_reads: int) -> None:
        super().__init__(content)
        self.good_reads = good_reads

    def readline(self, size: int | None = -1) -> bytes:
        if self.good_reads <= 0:
            raise OSError(5, "Input/output error")
        self.good_reads -= 1
        return super().readline(size)


class _FailingPath:
    def __init__(self, content: bytes, good_reads: int = 1) -> None:
        self.content = content
        self.good_reads = good_reads

    def open(self, mode: str) -> _FailingStream:
        return _FailingStream(self.content, self.good_reads)

    def __str__(self) -> str:
        return "failing.ndjson"


SIGNAL_LINE = orjson.dumps({"msg_type": spec.CHANNEL_SIGNAL,
                            "payload": {"StrategyId": STRATEGY, "n": 1}}) + b"\n"


def test_a_read_error_while_playing_a_recording_is_a_feed_error() -> None:
    feed = FileFeed(_FailingPath(SIGNAL_LINE))  # type: ignore[arg-type]
    events = iter(feed)
    assert next(events) == FeedEvent(spec.CHANNEL_SIGNAL, STRATEGY, {"StrategyId": STRATEGY,
                                                                     "n": 1})
    with pytest.raises(FeedError, match=r"cannot read failing\.ndjson: Input/output error"):
        next(events)


def test_a_recording_that_cannot_be_read_at_all_fails_its_check() -> None:
    feed = FileFeed(_FailingPath(SIGNAL_LINE, good_reads=0))  # type: ignore[arg-type]
    with pytest.raises(FeedError, match=r"cannot read failing\.ndjson: Input/output error"):
        feed.check()


def test_a_feed_that_fails_while_serving_stops_the_server(
    make_server: MakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recording = tmp_path / "feed.ndjson"
    recording.write_bytes(SIGNAL_LINE)

    class FailingFeed(FileFeed):
        def __iter__(self) -> Iterator[FeedEvent]:
            yield from super().__iter__()
            raise FeedError(f"cannot read {self.path}: Input/output error")

    monkeypatch.setattr(app, "FileFeed", FailingFeed)
    thread_errors: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", thread_errors.append)
    server = make_server(feed=recording, rate=50.0)
    with connected_client(server) as client:
        client.send(subscription("s"))
        assert reply(client)["msg_type"] == spec.MSG_SUBSCRIPTION_ACK
        assert reply(client)["payload"]["n"] == 1
        with pytest.raises(ConnectionClosed) as closed:
            reply(client)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    wait_for(lambda: not server.running)
    assert isinstance(server.feed_error, FeedError)
    assert "Input/output error" in str(server.feed_error)
    assert thread_errors == []  # the server thread ends quietly, the error is reported


def test_run_server_reports_a_feed_that_failed_while_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    recording = tmp_path / "feed.ndjson"
    recording.write_bytes(SIGNAL_LINE)

    def failed_run(self: ReferenceServer, **options: Any) -> None:
        raise FeedError(f"cannot read {recording}: Input/output error")

    monkeypatch.setattr(ReferenceServer, "run", failed_run)
    assert run_server(ServerConfig(feed=recording, port=0)) == ExitCode.USAGE
    assert capsys.readouterr().err == (
        f"c2ws serve: --feed: cannot read {recording}: Input/output error; server stopped\n")


def test_a_recording_without_newlines_is_skipped_without_being_read_into_memory(
    tmp_path: Path,
) -> None:
    recording = tmp_path / "one-long-line.ndjson"
    with recording.open("wb") as out:
        out.write(SIGNAL_LINE)
        chunk = b"x" * (1 << 20)
        for _ in range(24):
            out.write(chunk)
        out.write(b"\n" + SIGNAL_LINE)
    feed = FileFeed(recording)
    tracemalloc.start()
    try:
        events = list(feed)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [event.payload["n"] for event in events] == [1, 1]
    assert feed.skipped == 1
    assert peak < 4 * spec.MAX_FRAME_BYTES


def test_feed_check_needs_one_usable_line_and_keeps_counts(tmp_path: Path) -> None:
    empty = tmp_path / "empty.ndjson"
    empty.write_bytes(b"")
    with pytest.raises(FeedError, match="holds no"):
        FileFeed(empty).check()
    with pytest.raises(FeedError, match="holds no"):
        ReferenceServer(ServerConfig(feed=empty))
    good = tmp_path / "good.ndjson"
    good.write_bytes(b"junk\n" + SIGNAL_LINE)
    feed = FileFeed(good)
    feed.check()
    assert (feed.skipped, feed.published) == (0, 0)
    assert len(list(feed)) == 1 and feed.skipped == 1

