"""Raw-socket WebSocket servers for tests: written here on plain sockets (sharing no
code with c2ws), to script exactly what a hostile or broken server sends, byte by byte."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import select
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

WAIT = 10.0  # generous bound on any wait for another thread

Handler = Callable[[socket.socket, "RawServer"], None]

OPCODE_CONT, OPCODE_TEXT, OPCODE_BINARY = 0x0, 0x1, 0x2
OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG = 0x8, 0x9, 0xA


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
        # Shut down, not closed, while handlers run: a handler still gets what the client
        # sent before it left (in the kernel's buffer), then the end of the stream; a
        # close would take that from under a handler the scheduler has not run yet.
        for conn in self._connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(WAIT)
        for conn in self._connections:
            conn.close()
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


def server_tls(cert_and_key: tuple[Path, Path]) -> ssl.SSLContext:
    """A server's TLS context with this certificate and key (the self_signed fixture)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*cert_and_key)
    return context


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


def server_frame(data: bytes, opcode: int = OPCODE_TEXT, fin: int = 1) -> bytes:
    """One unmasked frame, as a server sends it (RFC 6455 5.2)."""
    length = len(data)
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        header = bytes((first, length))
    elif length < 1 << 16:
        header = bytes((first, 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((first, 127)) + length.to_bytes(8, "big")
    return header + data


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def wait_until_closed_by_client(conn: socket.socket, server: RawServer) -> None:
    """Block until the client closes (or the test ends), reading and dropping its bytes."""
    conn.settimeout(0.2)
    while not server.stop.is_set():
        try:
            if not conn.recv(65536):
                return
        except TimeoutError:
            continue


def answering(answer: bytes | Callable[[bytes], bytes]) -> Handler:
    def handler(conn: socket.socket, server: RawServer) -> None:
        request = read_request(conn)
        conn.sendall(answer(request) if callable(answer) else answer)
        wait_until_closed_by_client(conn, server)

    return handler


def recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the client closed the connection")
        data += chunk
    return data


def read_client_frame(conn: socket.socket) -> tuple[int, bytes]:
    """One frame from the client: (opcode, payload unmasked)."""
    head = recv_exactly(conn, 2)
    length = head[1] & 0x7F
    if length == 126:
        length = int.from_bytes(recv_exactly(conn, 2), "big")
    elif length == 127:
        length = int.from_bytes(recv_exactly(conn, 8), "big")
    mask = recv_exactly(conn, 4) if head[1] & 0x80 else b"\0\0\0\0"
    payload = recv_exactly(conn, length)
    return head[0] & 0x0F, bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))


def client_left(conn: socket.socket) -> bool:
    """The client has closed its end, seen without consuming what it sent before."""
    readable, _, _ = select.select([conn], [], [], 0)
    if not readable:
        return False
    try:
        return conn.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True
