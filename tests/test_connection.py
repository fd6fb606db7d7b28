"""Opening a connection and the socket under it: deadlines, bounds, failure classes and
stopping, against raw-socket servers (tests/raw_server.py: they share no code with c2ws)
and the reference server."""

from __future__ import annotations

import base64
import re
import select
import socket
import ssl
import string
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from raw_server import (
    OPCODE_TEXT,
    WAIT,
    Handler,
    RawServer,
    answering,
    free_port,
    read_request,
    server_frame,
    server_tls,
    switching_protocols,
    wait_until_closed_by_client,
)

from c2ws import spec
from c2ws.delivery.dedupe import StreamFilter
from c2ws.events import EndReason
from c2ws.net import connection
from c2ws.net.connection import (
    ConnectFailed,
    ConnectFailure,
    HandshakeRejected,
    SendBlocked,
    SendStopped,
    SocketTransport,
    StopSignal,
    open_connection,
    proxy_for,
    retry_after_seconds,
)
from c2ws.net.driver import Driver, DriverSettings
from c2ws.net.frames import FrameReader, Message
from c2ws.server.app import ReferenceServer, ServerConfig
from c2ws.session import ClientSession, SessionTimeouts

KEY = "connection-test-secret-key-0123"


class Messages:
    """Reads an upgraded connection as the driver does (poll, read, parse), for tests
    that look at what arrives on it."""

    def __init__(self, transport: SocketTransport) -> None:
        self.transport = transport
        self.frames = FrameReader()
        self.frames.feed(transport.received, 0.0)

    def next(self) -> Message:
        deadline = time.monotonic() + WAIT
        while True:
            message = self.frames.next_frame()
            if message is not None:
                return message
            if not self.transport.pending():
                left = max(0.0, deadline - time.monotonic())
                assert select.select([self.transport.sock], [], [], left)[0], "no frame came"
            data = self.transport.read()
            if data:
                self.frames.feed(data, 0.0)


def connect_failure(url: str, *, timeout: float = 5.0, **kwargs: Any) -> ConnectFailed:
    with pytest.raises(ConnectFailed) as failed:
        open_connection(url, KEY, timeout=timeout, **kwargs)
    assert KEY not in str(failed.value) and KEY not in repr(failed.value)
    assert "\n" not in str(failed.value)
    return failed.value


# --- the whole upgrade is bounded ------------------------------------------------------


def test_a_server_trickling_its_headers_cannot_outlast_the_deadline() -> None:
    closed = threading.Event()

    def trickle(conn: socket.socket, server: RawServer) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nX-Padding: ")
        for _ in range(1200):  # a byte every 50 ms, each well within any per-read timeout
            if server.stop.is_set():
                return
            try:
                conn.sendall(b"a")
            except OSError:
                closed.set()
                return
            readable, _, _ = select.select([conn], [], [], 0.05)
            if readable and not conn.recv(1):
                closed.set()
                return

    with RawServer(trickle) as server:
        failure = connect_failure(server.url, timeout=0.5)
        assert failure.kind is ConnectFailure.TIMEOUT
        assert str(failure) == "timed out after 0.5 s waiting for the server's answer"
        assert closed.wait(WAIT), "the client left the connection open"


def test_a_401_announcing_8_gb_is_read_only_up_to_the_body_cap() -> None:
    sent: list[int] = []

    def endless_401(conn: socket.socket, server: RawServer) -> None:
        read_request(conn)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        conn.sendall(
            b"HTTP/1.1 401 Unauthorized\r\nX-WS-Error: Invalid API key\r\n"
            b"Content-Length: 8000000000\r\n\r\n"
        )
        total = 0
        chunk = b"x" * 65536
        try:
            while total < 256 << 20 and not server.stop.is_set():
                total += conn.send(chunk)
        except OSError:
            pass  # the client closed: it stopped reading long ago
        finally:
            sent.append(total)

    with RawServer(endless_401) as server:
        with pytest.raises(HandshakeRejected) as rejected:
            open_connection(server.url, KEY, timeout=10)
        server.stop.set()
    assert rejected.value.status == 401
    assert rejected.value.reason == "Invalid API key"
    assert rejected.value.kind is ConnectFailure.REJECTED
    assert rejected.value.body == b"x" * spec.MAX_REJECTION_BODY_BYTES
    # What the kernel buffers took before the client closed, not the 8 GB announced.
    assert sent and sent[0] < 8 << 20


@pytest.mark.parametrize(
    ("status", "headers", "expected_reason"),
    [
        (429, b"X-WS-Error: Too many connections for this key\r\n",
         "Too many connections for this key"),
        (503, b"", "Service Unavailable"),
        (404, b"x-ws-error: \x1b[31mno such path\r\n", "[31mno such path"),
        (500, b"X-WS-Error: " + b"e" * 5000 + b"\r\n", "e" * 199 + "…"),
    ],
)
def test_rejections_carry_status_and_a_bounded_one_line_reason(
    status: int, headers: bytes, expected_reason: str
) -> None:
    phrase = {429: "Too Many Requests", 503: "Service Unavailable", 404: "Not Found",
              500: "Internal Server Error"}[status]

    def reject(conn: socket.socket, server: RawServer) -> None:
        read_request(conn)
        conn.sendall(f"HTTP/1.1 {status} {phrase}\r\n".encode() + headers
                     + b"Content-Length: 2\r\n\r\n{}")

    with RawServer(reject) as server, pytest.raises(HandshakeRejected) as rejected:
        open_connection(server.url, KEY, timeout=10)
    assert (rejected.value.status, rejected.value.reason) == (status, expected_reason)
    assert rejected.value.body == b"{}"
    assert len(rejected.value.reason) <= spec.MAX_REJECTION_REASON_CHARS


@pytest.mark.parametrize(
    ("status", "header", "expected"),
    [
        (429, b"Retry-After: 120\r\n", 120.0),
        (503, b"retry-after:  7 \r\n", 7.0),
        (429, b"Retry-After: soon\r\n", None),
        (429, b"", None),
    ],
)
def test_a_rejection_carries_the_wait_its_retry_after_asks_for(
    status: int, header: bytes, expected: float | None
) -> None:
    def reject(conn: socket.socket, server: RawServer) -> None:
        read_request(conn)
        conn.sendall(f"HTTP/1.1 {status} Busy\r\n".encode() + header + b"Content-Length: 0\r\n\r\n")

    with RawServer(reject) as server, pytest.raises(HandshakeRejected) as rejected:
        open_connection(server.url, KEY, timeout=10)
    assert rejected.value.retry_after == expected


NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 30 ", 30.0),
        ("99999999999999999999999", spec.MAX_RETRY_AFTER_SECONDS),
        ("86401", spec.MAX_RETRY_AFTER_SECONDS),
        ("Thu, 01 Jan 2026 00:02:00 GMT", 120.0),  # IMF-fixdate
        ("Thursday, 01-Jan-26 00:01:00 GMT", 60.0),  # RFC 850
        ("Thu Jan  1 00:00:30 2026", 30.0),  # asctime, no zone: GMT
        ("Wed, 31 Dec 2025 23:00:00 GMT", 0.0),  # in the past: no wait
        ("Fri, 31 Dec 9999 23:59:59 GMT", spec.MAX_RETRY_AFTER_SECONDS),
        ("-5", None),
        ("1.5", None),
        ("", None),
        ("soon", None),
        ("\u0661\u0662", None),  # digits, not ASCII ones
        ("Thu, 31 Feb 2026 00:00:00 GMT", None),
        ("Thu, 01 Jan 99999 00:00:00 GMT", None),
    ],
)
def test_retry_after_is_delta_seconds_or_an_http_date_bounded(
    value: str, seconds: float | None
) -> None:
    assert retry_after_seconds(value, NOW) == seconds


@given(st.text(max_size=80))
def test_retry_after_parsing_is_total(value: str) -> None:
    seconds = retry_after_seconds(value, NOW)
    assert seconds is None or 0.0 <= seconds <= spec.MAX_RETRY_AFTER_SECONDS


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        pytest.param(
            lambda r: switching_protocols(r)[:-2] + b"".join(
                b"X-H%d: v\r\n" % i for i in range(spec.MAX_UPGRADE_HEADER_LINES + 1)
            ) + b"\r\n",
            f"more than {spec.MAX_UPGRADE_HEADER_LINES} header lines",
            id="too-many-headers",
        ),
        pytest.param(
            lambda r: switching_protocols(r)[:-2] + b"X-Big: " + b"b" * 20_000 + b"\r\n\r\n",
            f"exceed {spec.MAX_UPGRADE_HEADER_BYTES} bytes", id="one-huge-header",
        ),
        pytest.param(
            b"HTTP/1.1 101 Switching Protocols\r\n" + b"X-Endless: " + b"e" * 40_000,
            f"exceed {spec.MAX_UPGRADE_HEADER_BYTES} bytes", id="head-without-end",
        ),
        pytest.param(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "HTTP status line", id="not-http"),
        pytest.param(b"\r\n\r\n", "empty line", id="empty"),
        pytest.param(
            lambda r: switching_protocols(r)[:-2] + b"no colon here\r\n\r\n",
            "malformed header", id="header-without-colon",
        ),
        pytest.param(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: d3Jvbmc=\r\n\r\n",
            "not a valid WebSocket upgrade", id="wrong-accept",
        ),
    ],
)
def test_malformed_or_oversized_answers_are_bad_responses(
    answer: bytes | Callable[[bytes], bytes], words: str
) -> None:
    with RawServer(answering(answer)) as server:
        failure = connect_failure(server.url)
    assert failure.kind is ConnectFailure.BAD_RESPONSE
    assert words in str(failure)


def test_a_redirect_is_refused_and_not_followed() -> None:
    with socket.create_server(("127.0.0.1", 0)) as elsewhere:
        target = f"ws://127.0.0.1:{elsewhere.getsockname()[1]}/ws"
        answer = (f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {target}\r\n"
                  "Content-Length: 0\r\n\r\n").encode()
        with RawServer(answering(answer)) as server:
            failure = connect_failure(server.url)
        elsewhere.setblocking(False)
        with pytest.raises(BlockingIOError):
            elsewhere.accept()  # nobody came: the key went nowhere else
    assert failure.kind is ConnectFailure.REDIRECT
    assert "redirect, which c2ws does not follow" in str(failure)
    assert server.accepted == 1


def test_a_closed_port_is_refused() -> None:
    failure = connect_failure(f"ws://127.0.0.1:{free_port()}/ws")
    assert (failure.kind, str(failure)) == (ConnectFailure.REFUSED, "connection refused")


def test_a_server_closing_before_answering_is_a_network_failure() -> None:
    def hang_up(conn: socket.socket, server: RawServer) -> None:
        read_request(conn)

    with RawServer(hang_up) as server:
        failure = connect_failure(server.url)
    assert failure.kind is ConnectFailure.NETWORK
    assert "closed" in str(failure)


@pytest.mark.parametrize(
    "url", ["http://example.com/ws", "ws://", "ws://h:99999/ws", "nonsense", "ws://a..b/ws"]
)
def test_bad_urls_are_classified(url: str) -> None:
    assert connect_failure(url).kind is ConnectFailure.BAD_URL


def test_an_unresolvable_host_is_a_dns_failure() -> None:
    failure = connect_failure("ws://no-such-host.invalid/ws", timeout=30)
    assert failure.kind is ConnectFailure.DNS
    assert str(failure).startswith("cannot resolve host")


def test_a_resolver_that_hangs_is_abandoned_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()
    started = threading.Event()

    def stuck_resolver(*args: Any) -> Any:
        started.set()
        release.wait(WAIT)
        raise socket.gaierror(socket.EAI_AGAIN, "gave up")

    monkeypatch.setattr(connection, "_getaddrinfo", stuck_resolver)
    try:
        failure = connect_failure("ws://slow.example/ws", timeout=0.2)
    finally:
        release.set()
    assert started.is_set()
    assert failure.kind is ConnectFailure.TIMEOUT
    assert "resolving the host name" in str(failure)


# --- success ---------------------------------------------------------------------------


def test_upgrade_against_the_reference_server_then_a_frame() -> None:
    config = ServerConfig(api_keys=(KEY,), feed="none", max_lifetime=120)
    with ReferenceServer(config) as server:
        transport = open_connection(server.url, KEY, timeout=10)
        try:
            assert type(transport.sock) is socket.socket  # the handshake wrapper is gone
            assert transport.sock.gettimeout() == 0.0  # non-blocking: the driver polls
            opcode, data = Messages(transport).next()
            assert opcode == OPCODE_TEXT
            assert orjson.loads(data)["msg_type"] == spec.MSG_CONNECTED
        finally:
            transport.close()


def test_the_reference_server_rejecting_a_key_gives_its_reason() -> None:
    config = ServerConfig(api_keys=(KEY,), feed="none", max_lifetime=120)
    with ReferenceServer(config) as server, pytest.raises(HandshakeRejected) as rejected:
        open_connection(server.url, "not-the-key", timeout=10)
    assert rejected.value.status == spec.HTTP_UNAUTHORIZED
    assert rejected.value.reason


def test_frames_sent_with_the_101_are_not_lost() -> None:
    frames = [b'{"n":1}', b'{"n":2}']
    sent = answering(lambda r: switching_protocols(r) + b"".join(server_frame(f) for f in frames))
    with RawServer(sent) as server:
        transport = open_connection(server.url, KEY, timeout=10)
        try:
            assert transport.received
            messages = Messages(transport)
            assert [messages.next()[1] for _ in frames] == frames
        finally:
            transport.close()


# --- proxies from the environment ----------------------------------------------------------


def connect_proxy(seen: list[bytes], refuse: bool = False) -> Handler:
    """An HTTP CONNECT proxy: records the request, then pipes bytes both ways."""

    def handler(conn: socket.socket, server: RawServer) -> None:
        request = read_request(conn)
        seen.append(request)
        if refuse:
            conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
            return
        host, port = request.split()[1].decode().rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=WAIT) as upstream:
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            pipe(conn, upstream, server.stop)

    return handler


def pipe(a: socket.socket, b: socket.socket, stop: threading.Event) -> None:
    a.settimeout(None)
    b.settimeout(None)
    while not stop.is_set():
        readable, _, _ = select.select([a, b], [], [], 0.2)
        for source in readable:
            data = source.recv(65536)
            if not data:
                return
            (b if source is a else a).sendall(data)


@pytest.fixture
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                 "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_an_http_proxy_from_the_environment_is_tunnelled_through(
    no_proxy_settings: pytest.MonkeyPatch,
) -> None:
    seen: list[bytes] = []
    config = ServerConfig(api_keys=(KEY,), feed="none", max_lifetime=120)
    with ReferenceServer(config) as server, RawServer(connect_proxy(seen)) as proxy:
        no_proxy_settings.setenv("http_proxy", f"http://user:pa%40ss@127.0.0.1:{proxy.port}")
        transport = open_connection(server.url, KEY, timeout=10)
        try:
            _, data = Messages(transport).next()
            assert orjson.loads(data)["msg_type"] == spec.MSG_CONNECTED
        finally:
            transport.close()
    assert len(seen) == 1
    assert seen[0].startswith(f"CONNECT 127.0.0.1:{server.port} HTTP/1.1\r\n".encode())
    assert b"Proxy-Authorization: Basic " + base64.b64encode(b"user:pa@ss") in seen[0]
    assert KEY.encode() not in seen[0]  # the key travels inside the tunnel only


def test_a_proxy_refusing_the_tunnel_is_a_proxy_failure(
    no_proxy_settings: pytest.MonkeyPatch,
) -> None:
    seen: list[bytes] = []
    with RawServer(connect_proxy(seen, refuse=True)) as proxy:
        no_proxy_settings.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
        failure = connect_failure(f"ws://127.0.0.1:{free_port()}/ws")
    assert failure.kind is ConnectFailure.PROXY
    assert "HTTP 407" in str(failure)


def test_no_proxy_bypasses_the_proxy(no_proxy_settings: pytest.MonkeyPatch) -> None:
    seen: list[bytes] = []
    with RawServer(connect_proxy(seen)) as proxy:
        no_proxy_settings.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
        no_proxy_settings.setenv("no_proxy", "127.0.0.1")
        failure = connect_failure(f"ws://127.0.0.1:{free_port()}/ws")
    assert failure.kind is ConnectFailure.REFUSED
    assert seen == [] and proxy.accepted == 0


def test_all_proxy_is_used_when_the_schemes_own_variable_is_not_set(
    no_proxy_settings: pytest.MonkeyPatch,
) -> None:
    seen: list[bytes] = []
    config = ServerConfig(api_keys=(KEY,), feed="none", max_lifetime=120)
    with ReferenceServer(config) as server, RawServer(connect_proxy(seen)) as proxy:
        no_proxy_settings.setenv("ALL_PROXY", f"http://127.0.0.1:{proxy.port}")
        route = proxy_for(server.url)
        assert route is not None and route.used
        assert (route.variable, route.address) == ("ALL_PROXY", f"127.0.0.1:{proxy.port}")
        open_connection(server.url, KEY, timeout=10).close()
    assert len(seen) == 1 and seen[0].startswith(b"CONNECT 127.0.0.1:")


def test_the_schemes_own_variable_wins_over_all_proxy_and_no_proxy_applies_to_both(
    no_proxy_settings: pytest.MonkeyPatch,
) -> None:
    no_proxy_settings.setenv("all_proxy", "http://all.example:3128")
    no_proxy_settings.setenv("HTTP_PROXY", "http://user:secret@web.example:8080")
    route = proxy_for("ws://c2.example/ws")
    assert route is not None
    assert (route.variable, route.address, route.auth) == (
        "HTTP_PROXY", "web.example:8080", ("user", "secret"))
    secure = proxy_for("wss://c2.example/ws")  # https_proxy is not set: ALL_PROXY
    assert secure is not None and (secure.variable, secure.address) == (
        "all_proxy", "all.example:3128")
    no_proxy_settings.setenv("no_proxy", "c2.example")
    assert proxy_for("ws://c2.example/ws") is None
    assert proxy_for("wss://c2.example/ws") is None


def test_all_proxy_without_a_scheme_is_an_http_proxy_as_curl_has_it(
    no_proxy_settings: pytest.MonkeyPatch,
) -> None:
    no_proxy_settings.setenv("ALL_PROXY", "proxy.example:3128")
    route = proxy_for("wss://c2.example/ws")
    assert route is not None and route.used and route.address == "proxy.example:3128"


def test_a_socks_all_proxy_is_passed_over_and_the_connection_goes_direct(
    no_proxy_settings: pytest.MonkeyPatch,
) -> None:
    no_proxy_settings.setenv("ALL_PROXY", "socks5h://127.0.0.1:1080")
    route = proxy_for("wss://c2.example/ws")
    assert route is not None and not route.used and route.scheme == "socks5h"
    config = ServerConfig(api_keys=(KEY,), feed="none", max_lifetime=120)
    with ReferenceServer(config) as server:
        open_connection(server.url, KEY, timeout=10).close()


def test_a_malformed_all_proxy_is_a_proxy_failure(no_proxy_settings: pytest.MonkeyPatch) -> None:
    no_proxy_settings.setenv("ALL_PROXY", "http://127.0.0.1:99999")
    failure = connect_failure(f"ws://127.0.0.1:{free_port()}/ws")
    assert failure.kind is ConnectFailure.PROXY and "ALL_PROXY" in str(failure)


# --- TLS -----------------------------------------------------------------------------------


def test_a_self_signed_certificate_is_a_certificate_failure(
    self_signed: tuple[Path, Path],
) -> None:
    with RawServer(answering(switching_protocols), tls=server_tls(self_signed)) as server:
        failure = connect_failure(server.url)
    assert failure.kind is ConnectFailure.TLS_CERTIFICATE
    assert str(failure).startswith("TLS handshake failed: the server's certificate is not trusted")


def test_a_certificate_for_another_host_is_a_certificate_failure(
    self_signed: tuple[Path, Path],
) -> None:
    trusting = ssl.create_default_context(cafile=str(self_signed[0]))
    with RawServer(answering(switching_protocols), tls=server_tls(self_signed)) as server:
        failure = connect_failure(server.url.replace("127.0.0.1", "localhost"),
                                  ssl_context=trusting)
    assert failure.kind is ConnectFailure.TLS_CERTIFICATE


def test_a_server_not_speaking_tls_is_a_tls_failure() -> None:
    def plain_http(conn: socket.socket, server: RawServer) -> None:
        conn.recv(4096)  # a ClientHello, not a request
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    with RawServer(plain_http) as server:
        failure = connect_failure(server.url.replace("ws://", "wss://"))
    assert failure.kind is ConnectFailure.TLS
    assert str(failure).startswith("TLS handshake failed")


def test_a_trusted_tls_upgrade_then_a_frame(self_signed: tuple[Path, Path]) -> None:
    trusting = ssl.create_default_context(cafile=str(self_signed[0]))
    sent = answering(lambda r: switching_protocols(r) + server_frame(b'{"over":"tls"}'))
    with RawServer(sent, tls=server_tls(self_signed)) as server:
        transport = open_connection(server.url, KEY, timeout=10, ssl_context=trusting)
        try:
            assert isinstance(transport.sock, ssl.SSLSocket)
            assert Messages(transport).next()[1] == b'{"over":"tls"}'
        finally:
            transport.close()


def test_half_a_tls_record_then_silence_is_a_frame_timeout(
    self_signed: tuple[Path, Path],
) -> None:
    """poll() says readable, yet the TLS layer has nothing to hand out until the rest of
    the record comes: the frame deadline must cover that wait too."""
    half_sent = threading.Event()

    def half_record(conn: socket.socket, server: RawServer) -> None:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = server_tls(self_signed).wrap_bio(incoming, outgoing, server_side=True)

        def pump() -> None:
            conn.sendall(outgoing.read())
            data = conn.recv(65536)
            if not data:
                raise ConnectionError("client left")
            incoming.write(data)

        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pump()
        conn.sendall(outgoing.read())
        request = b""
        while b"\r\n\r\n" not in request:
            try:
                request += tls.read(65536)
            except ssl.SSLWantReadError:
                pump()
        tls.write(switching_protocols(request))
        conn.sendall(outgoing.read())
        tls.write(server_frame(b"x" * 1000))
        record = outgoing.read()
        conn.sendall(record[: len(record) // 2])
        half_sent.set()
        wait_until_closed_by_client(conn, server)

    trusting = ssl.create_default_context(cafile=str(self_signed[0]))
    with RawServer(half_record, tls=None) as server:
        transport = open_connection(server.url.replace("ws://", "wss://"), KEY, timeout=10,
                                    ssl_context=trusting)
        try:
            assert half_sent.wait(WAIT)
            assert select.select([transport.sock], [], [], WAIT)[0]  # what the driver polls
            end = Driver(transport, idle_session(), settings=DriverSettings(io_timeout=0.3)).run()
        finally:
            transport.close()
    assert end.reason is EndReason.FRAME_STALLED


# --- the API key never shows -----------------------------------------------------------


def echoing_server() -> Handler:
    """Answers with the Authorization value echoed in the place the path names."""

    def handler(conn: socket.socket, server: RawServer) -> None:
        request = read_request(conn)
        path = request.split()[1].decode()
        match = re.search(rb"Authorization: Bearer (\S+)", request)
        assert match is not None
        key = match.group(1)
        answers = {
            "/header": b"HTTP/1.1 401 Unauthorized\r\nX-WS-Error: Invalid API key: " + key
                       + b"\r\nContent-Length: 0\r\n\r\n",
            "/status": b"HTTP/1.1 403 Key " + key + b" is forbidden\r\n\r\n",
            "/body": b"HTTP/1.1 401 Unauthorized\r\nContent-Length: %d\r\n\r\n{\"key\":\"%s\"}"
                     % (len(key) + 10, key),
            "/redirect": b"HTTP/1.1 302 Found\r\nLocation: ws://127.0.0.1:9/?k=" + key
                         + b"\r\n\r\n",
            "/garbage": b"HTTP/1.1 101 Switching\r\n" + key + b"\r\n\r\n",
            "/accept": b"HTTP/1.1 101 Switching\r\nUpgrade: websocket\r\nConnection: Upgrade"
                       b"\r\nSec-WebSocket-Accept: " + key + b"\r\n\r\n",
        }
        conn.sendall(answers[path])
        wait_until_closed_by_client(conn, server)

    return handler


@pytest.fixture(scope="module")
def echo_server() -> Iterator[RawServer]:
    with RawServer(echoing_server()) as server:
        yield server


KEY_ALPHABET = string.ascii_letters + string.digits + "-_.~+/="


@settings(max_examples=60)
@given(
    key=st.text(KEY_ALPHABET, min_size=16, max_size=80),
    where=st.sampled_from(["header", "status", "body", "redirect", "garbage", "accept"]),
)
def test_the_key_never_appears_in_a_failure(echo_server: RawServer, key: str, where: str) -> None:
    with pytest.raises(ConnectFailed) as failed:
        open_connection(f"ws://127.0.0.1:{echo_server.port}/{where}", key, timeout=10)
    failure = failed.value
    texts = [str(failure), repr(failure)]
    if isinstance(failure, HandshakeRejected):
        texts += [failure.reason, failure.body.decode()]
    assert all(key not in text for text in texts)
    assert failure.kind is not ConnectFailure.TIMEOUT


# --- the upgraded socket ------------------------------------------------------------------


def idle_session(silence: float = 30.0) -> ClientSession:
    """A session with nothing to say and long deadlines: the socket decides how it ends."""
    return ClientSession(request_id_prefix="c2ws-test", stream_filter=StreamFilter([], {}),
                         now=time.monotonic(),
                         timeouts=SessionTimeouts(connected=silence, silence=silence))


def test_a_server_that_stops_reading_makes_sends_fail_with_send_blocked() -> None:
    def never_reads(conn: socket.socket, server: RawServer) -> None:
        conn.sendall(switching_protocols(read_request(conn)))
        server.stop.wait(60)

    with RawServer(never_reads) as server:
        transport = open_connection(server.url, KEY, timeout=10)
        frame = b"z" * 65536
        sent = 0
        try:
            with pytest.raises(SendBlocked, match=r"the server stopped reading: could not send "
                                                  r"for 0\.3 s"):
                for _ in range(10_000):  # 640 MB: far more than any kernel buffers
                    transport.send(frame, 0.3)
                    sent += 1
        finally:
            transport.close()
    assert sent > 0  # the buffers did take frames until they were full


def test_a_send_waiting_for_a_server_that_stopped_reading_ends_on_a_stop() -> None:
    """A send blocked on a full socket buffer wakes for a stop request at once (order of
    events: the stop is requested, then the send gives up; its timeout is an hour)."""
    ours, theirs = socket.socketpair()
    transport = SocketTransport(ours)
    stop = StopSignal()
    outcome: list[BaseException] = []
    filling = threading.Event()

    def fill() -> None:
        filling.set()
        try:
            while True:
                transport.send(b"z" * 65536, 3600.0, stop)
        except (SendStopped, SendBlocked) as exc:
            outcome.append(exc)

    sender = threading.Thread(target=fill, daemon=True)
    sender.start()
    assert filling.wait(WAIT)
    stop.set()
    sender.join(WAIT)
    try:
        assert not sender.is_alive()
        assert len(outcome) == 1 and isinstance(outcome[0], SendStopped)
    finally:
        transport.close()
        theirs.close()
        stop.close()


def test_a_malformed_proxy_setting_is_a_proxy_failure(
    no_proxy_settings: pytest.MonkeyPatch,
) -> None:
    no_proxy_settings.setenv("http_proxy", "http://127.0.0.1:99999")
    failure = connect_failure(f"ws://127.0.0.1:{free_port()}/ws")
    assert failure.kind is ConnectFailure.PROXY


# --- sending: our text frames are websocket-client's ---------------------------------------


@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.sampled_from([125, 126, 127, 65535, 65536, 70000]).map(lambda n: b"x" * n),
    ),
    mask_key=st.binary(min_size=4, max_size=4),
)
@settings(max_examples=300, deadline=None)
def test_client_text_frame_is_byte_for_byte_websocket_clients(data: bytes, mask_key: bytes) -> None:
    import websocket

    from c2ws.net.frames import OPCODE_PING, client_frame, client_text_frame

    expected = websocket.ABNF.create_frame(data, websocket.ABNF.OPCODE_TEXT)
    expected.get_mask_key = lambda _length: mask_key
    assert client_text_frame(data, mask_key) == expected.format()
    ping = websocket.ABNF.create_frame(data[:125], websocket.ABNF.OPCODE_PING)
    ping.get_mask_key = lambda _length: mask_key
    assert client_frame(OPCODE_PING, data[:125], mask_key) == ping.format()


def test_mask_keys_come_from_the_os_random_source_in_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    from c2ws.net import frames

    calls: list[int] = []
    real_urandom = os.urandom

    def urandom(size: int) -> bytes:
        calls.append(size)
        return real_urandom(size)

    monkeypatch.setattr(frames.os, "urandom", urandom)
    masks = frames.MaskKeys()
    keys = [masks.next() for _ in range(frames.MASK_KEY_BATCH * 2 + 1)]
    assert all(len(key) == 4 for key in keys)
    assert calls == [4 * frames.MASK_KEY_BATCH] * 3
    assert len(set(keys)) > len(keys) * 0.99  # 32 random bits each: collisions are rare
