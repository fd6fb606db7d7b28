"""Opening a connection and reading it: deadlines, bounds and failure classes, against
raw-socket servers written here (they share no code with c2ws) and the reference server."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import select
import shutil
import socket
import ssl
import string
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson
import pytest
import websocket
from hypothesis import given, settings
from hypothesis import strategies as st
from websocket import ABNF

from c2ws import spec
from c2ws.net import connection
from c2ws.net.connection import (
    BufferedWebSocket,
    ConnectFailed,
    ConnectFailure,
    FrameTimeout,
    FrameTooLarge,
    HandshakeRejected,
    SendBlocked,
    TooManyFragments,
    open_connection,
    proxy_for,
    retry_after_seconds,
)
from c2ws.server.app import ReferenceServer, ServerConfig

KEY = "connection-test-secret-key-0123"
WAIT = 10.0  # generous bound on any wait for another thread

Handler = Callable[[socket.socket, "RawServer"], None]


# --- raw servers ---------------------------------------------------------------------


class RawServer:
    """Listens on 127.0.0.1, runs ``handler(connection, server)`` for each connection in a
    daemon thread, and stops (closing everything) on exit."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.stop = threading.Event()
        self.accepted = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)  # the accept loop looks at ``stop`` this often
        self.port: int = self.listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._connections: list[socket.socket] = []
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)

    @property
    def url(self) -> str:
        scheme = "wss" if self.tls else "ws"
        return f"{scheme}://127.0.0.1:{self.port}/ws"

    def __enter__(self) -> RawServer:
        self._acceptor.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop.set()
        self._acceptor.join(WAIT)
        for conn in self._connections:
            conn.close()
        for thread in self._threads:
            thread.join(WAIT)
        self.listener.close()

    def _accept_loop(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            self._connections.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(WAIT)
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            self.handler(conn, self)
        except (OSError, ValueError):
            pass  # the client went away: that is what most of these tests provoke
        finally:
            conn.close()


def read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionError("client closed before sending its request")
        data += chunk
    return data


def accept_value(request: bytes) -> str:
    match = re.search(rb"Sec-WebSocket-Key: *(\S+)", request)
    assert match is not None
    digest = hashlib.sha1(match.group(1) + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
    return base64.b64encode(digest).decode()


def switching_protocols(request: bytes) -> bytes:
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_value(request)}\r\n\r\n"
    ).encode()


def server_frame(data: bytes, opcode: int = ABNF.OPCODE_TEXT, fin: int = 1) -> bytes:
    return ABNF(fin, 0, 0, 0, opcode, 0, data).format()  # server frames are not masked


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def connect_failure(url: str, *, timeout: float = 5.0, **kwargs: Any) -> ConnectFailed:
    with pytest.raises(ConnectFailed) as failed:
        open_connection(url, KEY, timeout=timeout, **kwargs)
    assert KEY not in str(failed.value) and KEY not in repr(failed.value)
    assert "\n" not in str(failed.value)
    return failed.value


def wait_until_closed_by_client(conn: socket.socket, server: RawServer) -> None:
    """Block until the client closes (or the test ends), reading and dropping its bytes."""
    conn.settimeout(0.2)
    while not server.stop.is_set():
        try:
            if not conn.recv(65536):
                return
        except TimeoutError:
            continue


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


def answering(answer: bytes | Callable[[bytes], bytes]) -> Handler:
    def handler(conn: socket.socket, server: RawServer) -> None:
        request = read_request(conn)
        conn.sendall(answer(request) if callable(answer) else answer)
        wait_until_closed_by_client(conn, server)

    return handler


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
        ws = open_connection(server.url, KEY, timeout=10)
        try:
            assert type(ws.sock) is socket.socket  # the handshake wrapper is gone
            assert ws.sock.gettimeout() is None
            ws.sock.settimeout(WAIT)
            opcode, frame = ws.recv_data_frame(control_frame=True)
            assert opcode == ABNF.OPCODE_TEXT
            assert orjson.loads(frame.data)["msg_type"] == spec.MSG_CONNECTED
        finally:
            ws.close(timeout=2)


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
        ws = open_connection(server.url, KEY, timeout=10)
        try:
            assert ws.has_buffered_data()
            ws.sock.settimeout(WAIT)
            assert [ws.recv_data_frame()[1].data for _ in frames] == frames
        finally:
            ws.shutdown()


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
        ws = open_connection(server.url, KEY, timeout=10)
        try:
            ws.sock.settimeout(WAIT)
            _, frame = ws.recv_data_frame()
            assert orjson.loads(frame.data)["msg_type"] == spec.MSG_CONNECTED
        finally:
            ws.close(timeout=2)
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
        ws = open_connection(server.url, KEY, timeout=10)
        ws.close(timeout=2)
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
        ws = open_connection(server.url, KEY, timeout=10)
        ws.close(timeout=2)


def test_a_malformed_all_proxy_is_a_proxy_failure(no_proxy_settings: pytest.MonkeyPatch) -> None:
    no_proxy_settings.setenv("ALL_PROXY", "http://127.0.0.1:99999")
    failure = connect_failure(f"ws://127.0.0.1:{free_port()}/ws")
    assert failure.kind is ConnectFailure.PROXY and "ALL_PROXY" in str(failure)


# --- TLS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: cannot make a self-signed certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


def server_tls(cert_and_key: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*cert_and_key)
    return context


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
        ws = open_connection(server.url, KEY, timeout=10, ssl_context=trusting)
        try:
            assert isinstance(ws.sock, ssl.SSLSocket)
            ws.sock.settimeout(WAIT)
            assert ws.recv_data_frame()[1].data == b'{"over":"tls"}'
        finally:
            ws.shutdown()


def test_half_a_tls_record_then_silence_is_a_frame_timeout(
    self_signed: tuple[Path, Path],
) -> None:
    """select() says readable, yet the TLS layer blocks for the rest of the record: the
    frame deadline must cover that read too."""
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
        ws = open_connection(server.url.replace("ws://", "wss://"), KEY, timeout=10,
                             ssl_context=trusting)
        try:
            assert half_sent.wait(WAIT)
            assert select.select([ws.sock], [], [], WAIT)[0]  # what the socket thread waits on
            ws.frame_timeout = 0.3
            with pytest.raises(FrameTimeout):
                ws.recv_data_frame()
        finally:
            ws.shutdown()


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


# --- reading frames ------------------------------------------------------------------------


class CountingSocket:
    """Wraps a real socket and counts the recv calls websocket-client makes."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.recv_calls = 0

    def recv(self, bufsize: int) -> bytes:
        self.recv_calls += 1
        return self._sock.recv(bufsize)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def connected_pair(**kwargs: Any) -> tuple[BufferedWebSocket, socket.socket]:
    ours, theirs = socket.socketpair()
    ws = BufferedWebSocket(skip_utf8_validation=True, **kwargs)
    ws.sock = ours
    ws.connected = True
    return ws, theirs


def send_in_background(sock: socket.socket, data: bytes) -> threading.Thread:
    """sendall from a thread; the test ends it by closing the sockets."""

    def send() -> None:
        with contextlib.suppress(OSError):
            sock.sendall(data)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def test_a_burst_of_frames_is_read_with_one_recv() -> None:
    ours, theirs = socket.socketpair()
    counting = CountingSocket(ours)
    ws = BufferedWebSocket()
    ws.sock = counting  # type: ignore[assignment]
    ws.connected = True
    texts = [f'{{"msg_type":"strategy.signal","seq_id":{i}}}' for i in range(50)]
    theirs.sendall(b"".join(server_frame(t.encode()) for t in texts))
    received = []
    for _ in texts:
        opcode, frame = ws.recv_data_frame()
        assert opcode == ABNF.OPCODE_TEXT
        received.append(frame.data.decode())
    assert received == texts
    # websocket-client alone would make at least 3 reads per frame (150 here).
    assert counting.recv_calls == 1
    assert not ws.has_buffered_data()
    ours.close()
    theirs.close()


def test_a_frame_split_across_reads_is_reassembled() -> None:
    ws, theirs = connected_pair()
    data = server_frame(b"x" * 70_000)  # 64-bit length, larger than one read chunk
    result: list[bytes] = []
    reader = threading.Thread(target=lambda: result.append(ws.recv_data_frame()[1].data))
    reader.start()
    for start in range(0, len(data), 1000):
        theirs.sendall(data[start : start + 1000])
    reader.join(WAIT)
    assert result == [b"x" * 70_000]
    ws.shutdown()
    theirs.close()


def test_a_frame_announcing_more_than_the_limit_is_refused_unread() -> None:
    ws, theirs = connected_pair()
    # FIN + text, 64-bit length of 1 TiB; not one payload byte follows.
    theirs.sendall(bytes([0x81, 127]) + (1 << 40).to_bytes(8, "big"))
    with pytest.raises(FrameTooLarge, match="exceeds the limit"):
        ws.recv_data_frame()
    theirs.close()


def test_a_fragmented_message_over_the_limit_is_refused() -> None:
    ws, theirs = connected_pair()
    half = spec.MAX_FRAME_BYTES // 2 + 1
    first = server_frame(b"x" * half, fin=0)
    rest = server_frame(b"x" * half, ABNF.OPCODE_CONT)
    sender = send_in_background(theirs, first + rest)
    with pytest.raises(FrameTooLarge, match="fragmented"):
        ws.recv_data_frame()
    sender.join(WAIT)
    theirs.close()


def test_invalid_utf8_is_left_to_the_decoder() -> None:
    ws, theirs = connected_pair()
    theirs.sendall(server_frame(b'{"msg_type":"\xff"}'))
    opcode, frame = ws.recv_data_frame()
    assert (opcode, frame.data) == (ABNF.OPCODE_TEXT, b'{"msg_type":"\xff"}')
    theirs.close()


def test_a_frame_dripping_a_byte_at_a_time_times_out() -> None:
    ws, theirs = connected_pair(frame_timeout=0.5)
    ws.settimeout(30)  # a per-read timeout, as callers set: each drip resets it
    payload = b"d" * 200
    frame = server_frame(payload)
    stop = threading.Event()
    dripped: list[int] = []

    def drip() -> None:
        count = 0
        try:
            theirs.sendall(frame[:2])
            for byte in frame[2:]:
                if stop.wait(0.1):
                    break
                theirs.sendall(bytes([byte]))
                count += 1
        except OSError:
            pass
        dripped.append(count)

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    with pytest.raises(FrameTimeout, match=r"part of a frame but not the rest within 0\.5 s"):
        ws.recv_data_frame()
    stop.set()
    dripper.join(WAIT)
    assert dripped and dripped[0] < len(payload)
    assert isinstance(FrameTimeout("x"), websocket.WebSocketException)
    ws.shutdown()
    theirs.close()


def scripted_clock(*times: float) -> Callable[[], float]:
    values = iter(times)
    last = [0.0]

    def clock() -> float:
        last[0] = next(values, last[0])
        return last[0]

    return clock


def test_the_frame_deadline_counts_from_the_first_byte_not_per_read() -> None:
    # First read at t=0 brings part of the frame; the second read starts at t=11.
    ws, theirs = connected_pair(frame_timeout=10.0, clock=scripted_clock(0.0, 11.0))
    ws.settimeout(WAIT)
    ws.sock = ChunkedSocket(ws.sock, [50])  # type: ignore[arg-type, assignment]
    theirs.sendall(server_frame(b"p" * 100))  # all there, but the second read is 11 s late
    with pytest.raises(FrameTimeout):
        ws.recv_data_frame()
    theirs.close()


def test_a_frame_completed_just_within_the_deadline_is_read() -> None:
    ws, theirs = connected_pair(frame_timeout=10.0, clock=scripted_clock(0.0, 9.9, 9.9, 9.9))
    frame = server_frame(b"q" * 100)
    result: list[bytes] = []
    ws.settimeout(WAIT)
    split = ChunkedSocket(ws.sock, [50])  # type: ignore[arg-type]
    ws.sock = split  # type: ignore[assignment]
    theirs.sendall(frame)
    reader = threading.Thread(target=lambda: result.append(ws.recv_data_frame()[1].data))
    reader.start()
    reader.join(WAIT)
    assert result == [b"q" * 100]
    assert split.reads >= 2  # it did span two reads
    theirs.close()


def test_a_slow_consumer_does_not_make_the_next_frame_late() -> None:
    """A burst read at t=0 holds the first frame and the head of the second; the caller
    comes back for the second at t=100, its rest long since in the kernel: no timeout."""
    first, second = server_frame(b"first"), server_frame(b"s" * 100)
    ws, theirs = connected_pair(frame_timeout=10.0, clock=scripted_clock(0.0, 100.0))
    ws.settimeout(WAIT)
    ws.sock = ChunkedSocket(ws.sock, [len(first) + 10])  # type: ignore[arg-type, assignment]
    theirs.sendall(first + second)
    assert ws.recv_data_frame()[1].data == b"first"
    assert ws.recv_data_frame()[1].data == b"s" * 100
    theirs.close()


class ChunkedSocket:
    """Hands out the first reads in the given sizes, to split a frame across reads."""

    def __init__(self, sock: socket.socket, sizes: list[int]) -> None:
        self._sock = sock
        self._sizes = list(sizes)
        self.reads = 0

    def recv(self, bufsize: int) -> bytes:
        self.reads += 1
        if self._sizes:
            bufsize = min(bufsize, self._sizes.pop(0))
        return self._sock.recv(bufsize)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def test_idle_between_frames_has_no_deadline_from_the_connection() -> None:
    """After a complete frame, waiting for the next one is the caller's business: the
    caller's own timeout applies, not the frame deadline."""
    clock = scripted_clock(0.0, 1000.0)
    ws, theirs = connected_pair(frame_timeout=1.0, clock=clock)
    theirs.sendall(server_frame(b"one"))
    assert ws.recv_data_frame()[1].data == b"one"
    ws.settimeout(0.05)
    with pytest.raises(websocket.WebSocketTimeoutException) as waited:
        ws.recv_data_frame()
    assert not isinstance(waited.value, FrameTimeout)
    theirs.sendall(server_frame(b"two"))
    ws.settimeout(WAIT)
    assert ws.recv_data_frame()[1].data == b"two"
    theirs.close()


class CountingFrames(BufferedWebSocket):
    frames = 0

    def recv_frame(self) -> ABNF:
        self.frames += 1
        return super().recv_frame()


def test_a_flood_of_one_byte_fragments_is_refused_after_the_fragment_limit() -> None:
    ours, theirs = socket.socketpair()
    ws = CountingFrames(skip_utf8_validation=True)
    ws.sock = ours
    ws.connected = True
    fragments = spec.MAX_FRAME_BYTES - 1  # under the size limit: only the count can stop it
    one = server_frame(b"y", ABNF.OPCODE_CONT, fin=0)
    flood = server_frame(b"y", fin=0) + one * (fragments - 2) + server_frame(
        b"y", ABNF.OPCODE_CONT)
    sender = send_in_background(theirs, flood)
    with pytest.raises(TooManyFragments) as refused:
        ws.recv_data_frame()
    assert isinstance(refused.value, FrameTooLarge)  # so the caller closes with 1009
    assert ws.frames == spec.MAX_FRAGMENTS_PER_MESSAGE + 1
    ours.close()
    theirs.close()
    sender.join(WAIT)


def test_fragments_within_the_limits_are_joined_with_pings_between() -> None:
    ws, theirs = connected_pair()
    parts = [f"part{i};".encode() for i in range(spec.MAX_FRAGMENTS_PER_MESSAGE)]
    data = server_frame(parts[0], fin=0)
    for part in parts[1:-1]:
        data += server_frame(part, ABNF.OPCODE_CONT, fin=0)
        if part in (b"part7;", b"part517;"):
            data += server_frame(b"hi", ABNF.OPCODE_PING)
    data += server_frame(parts[-1], ABNF.OPCODE_CONT)
    sender = send_in_background(theirs, data)
    opcode, frame = ws.recv_data_frame()
    assert (opcode, frame.data) == (ABNF.OPCODE_TEXT, b"".join(parts))
    sender.join(WAIT)
    theirs.settimeout(WAIT)
    pong = theirs.recv(2)  # websocket-client answered the pings meanwhile
    assert pong[0] == 0x80 | ABNF.OPCODE_PONG
    ws.shutdown()
    theirs.close()


def test_a_continuation_without_a_start_is_a_protocol_error() -> None:
    ws, theirs = connected_pair()
    theirs.sendall(server_frame(b"orphan", ABNF.OPCODE_CONT))
    with pytest.raises(websocket.WebSocketProtocolException):
        ws.recv_data_frame()
    theirs.close()


# --- sending -------------------------------------------------------------------------------


def test_a_server_that_stops_reading_makes_sends_fail_with_send_blocked() -> None:
    def never_reads(conn: socket.socket, server: RawServer) -> None:
        conn.sendall(switching_protocols(read_request(conn)))
        server.stop.wait(60)

    with RawServer(never_reads) as server:
        ws = open_connection(server.url, KEY, timeout=10)
        ws.send_timeout = 0.3
        message = b'{"msg_type":"heartbeat.ack","pad":"' + b"z" * 65536 + b'"}'
        sent = 0
        try:
            with pytest.raises(SendBlocked, match=r"the server stopped reading: could not send "
                                                  r"for 0\.3 s"):
                for _ in range(10_000):  # 640 MB: far more than any kernel buffers
                    ws.send_text(message)
                    sent += 1
        finally:
            ws.shutdown()
    assert sent > 0  # the buffers did take frames until they were full


def test_send_text_writes_one_unfragmented_text_frame() -> None:
    ws, theirs = connected_pair()
    written = ws.send_text(b'{"msg_type":"heartbeat.ack"}')
    theirs.settimeout(WAIT)
    data = theirs.recv(65536)
    assert written == len(data)
    assert data[0] == 0x80 | ABNF.OPCODE_TEXT  # FIN, text
    mask, payload = data[2:6], data[6:]
    assert bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) == (
        b'{"msg_type":"heartbeat.ack"}')
    ws.shutdown()
    theirs.close()


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
    from c2ws.net.connection import client_text_frame

    expected = websocket.ABNF.create_frame(data, websocket.ABNF.OPCODE_TEXT)
    expected.get_mask_key = lambda _length: mask_key
    assert client_text_frame(data, mask_key) == expected.format()


def test_mask_keys_come_from_the_os_random_source_in_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    from c2ws.net import connection

    calls: list[int] = []
    real_urandom = os.urandom

    def urandom(size: int) -> bytes:
        calls.append(size)
        return real_urandom(size)

    monkeypatch.setattr(connection.os, "urandom", urandom)
    ws = connection.BufferedWebSocket()
    keys = [ws._next_mask_key() for _ in range(connection.MASK_KEY_BATCH * 2 + 1)]
    assert all(len(key) == 4 for key in keys)
    assert calls == [4 * connection.MASK_KEY_BATCH] * 3
    assert len(set(keys)) > len(keys) * 0.99  # 32 random bits each: collisions are rare
