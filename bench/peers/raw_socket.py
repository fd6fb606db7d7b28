"""The raw-socket floor: the fastest a Python client of this feed can be.

    python bench/peers/raw_socket.py URL KEY STRATEGY_ID

No WebSocket library: a plain socket sends the upgrade, then one ``recv_into`` of up to
1 MiB at a time fills a buffer that a tight loop splits into frames (server frames are
unmasked: the header gives the length, the payload is a slice).  Every text frame read
in one ``recv_into`` goes out as its payload and a newline in one write to
``sys.stdout.buffer``, flushed once per read: a system call per read, none per message,
and nothing held back once the socket is drained (so it needs no trick to flush at a
pause, and its latency is a read's).

The protocol, as cheaply as the other peers (see bare_loop.py): the first frame must be
``connection.connected``, then the subscription goes out; ``"heartbeat"`` in a frame's
first 48 bytes makes it a heartbeat, answered with a masked ``heartbeat.ack``; pings get
pongs, a close frame ends it.  It checks nothing else: no UTF-8, no JSON, no reserved
bits, no fragmented messages (the feed server never fragments; one is an error here).
This is the floor, not a client anyone should run.
"""

from __future__ import annotations

import base64
import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import wire

HEARTBEAT = wire.HEARTBEAT_NAME
HEAD = wire.HEARTBEAT_HEAD_BYTES
READ_BYTES = 1 << 20


def send_frame(sock: socket.socket, payload: bytes, opcode: int = wire.OP_TEXT) -> None:
    sock.sendall(wire.masked_frame(payload, opcode, os.urandom(4)))


def upgrade(sock: socket.socket, url: str, key: str) -> bytes:
    """The HTTP upgrade; returns what arrived after the response's head."""
    parts = urlsplit(url)
    sock.sendall(
        f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
        f"Authorization: Bearer {key}\r\n\r\n".encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        if not chunk:
            sys.exit("the server closed during the upgrade")
        response += chunk
    head, _, rest = response.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        sys.exit(f"upgrade refused: {head[:80]!r}")
    return rest


def main() -> None:
    url, key, strategy_id = sys.argv[1], sys.argv[2], int(sys.argv[3])
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port or 80))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rest = upgrade(sock, url, key)
    out = sys.stdout.buffer
    write, flush = out.write, out.flush
    buffer = bytearray(max(READ_BYTES, len(rest)))
    buffer[: len(rest)] = rest
    filled = len(rest)
    subscribed = False
    while True:
        view = memoryview(buffer)
        lines: list[memoryview] = []
        position = 0
        while filled - position >= 2:
            length = buffer[position + 1]
            if length < 126:
                start = position + 2
            elif length == 126:
                if filled - position < 4:
                    break
                length = (buffer[position + 2] << 8) | buffer[position + 3]
                start = position + 4
            elif length == 127:
                if filled - position < 10:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 10], "big")
                start = position + 10
            else:
                sys.exit("a masked frame from the server")
            end = start + length
            if end > filled:
                break
            first = buffer[position]
            opcode = first & 0x0F
            if opcode in (wire.OP_TEXT, wire.OP_BINARY) and first & 0x80:
                if buffer.find(HEARTBEAT, start, min(start + HEAD, end)) >= 0:
                    send_frame(sock, wire.heartbeat_ack())
                elif subscribed:
                    lines.append(view[start:end])
                elif buffer.find(b"connection.connected", start, end) >= 0:
                    send_frame(sock, wire.subscription_request(strategy_id, "raw-1"))
                    subscribed = True
                else:
                    sys.exit(f"expected connection.connected, got {bytes(view[start:end])!r}")
            elif opcode == wire.OP_PING:
                send_frame(sock, bytes(view[start:end]), wire.OP_PONG)
            elif opcode == wire.OP_CLOSE:
                if lines:
                    write(b"\n".join(lines))
                    write(b"\n")
                flush()
                send_frame(sock, bytes(view[start : min(end, start + 2)]), wire.OP_CLOSE)
                return
            elif opcode != wire.OP_PONG:
                sys.exit(f"unsupported frame: opcode {opcode}, fin {first >> 7}")
            position = end
        if lines:
            write(b"\n".join(lines))
            write(b"\n")
            flush()
        del lines
        view.release()
        # What is left is a part of one frame: to the front (or a bigger buffer).
        remaining = filled - position
        if position:
            buffer[:remaining] = buffer[position:filled]
        filled = remaining
        if filled == len(buffer):
            buffer.extend(bytes(len(buffer)))
        view = memoryview(buffer)
        read = sock.recv_into(view[filled:])
        view.release()
        if not read:
            flush()
            return
        filled += read


if __name__ == "__main__":
    main()
