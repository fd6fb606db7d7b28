"""The scale run's floor: N idle connections in one thread, as cheap as Python gets.

    python bench/peers/raw_many.py URL KEY FIRST_STRATEGY_ID STRATEGIES [PER_CONNECTION]

What ``c2ws subscribe`` does with STRATEGIES strategies (one subscription each, at most
PER_CONNECTION, default 100 (C2's limit), on a connection; as many connections as that
takes), with none of its work: raw sockets upgraded as raw_socket.py does, every
connection in ONE thread blocked in ``selectors`` (epoll) for ever, a heartbeat found
by a substring test and answered with a masked ``heartbeat.ack``.  It writes nothing and
checks nothing else.  The bench's scale section runs it with one strategy and with the
many, side by side with c2ws's two runs over the same window: its many / one ratio is
what a single-threaded poller costs for the same heartbeats (the server sends one to
every connection every 30 s, and each must be answered), the floor for any client.
"""

from __future__ import annotations

import selectors
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import wire
from raw_socket import HEAD, HEARTBEAT, send_frame, upgrade


class Link:
    """One connection: its buffer, and the strategies it subscribes once connected."""

    def __init__(self, sock: socket.socket, strategies: list[int], rest: bytes) -> None:
        self.sock = sock
        self.strategies = strategies
        self.buffer = bytearray(rest)
        self.subscribed = False

    def frames(self) -> bool:
        """Handle every whole frame buffered; False once the server closed."""
        buffer = self.buffer
        position = 0
        while len(buffer) - position >= 2:
            length = buffer[position + 1]
            start = position + 2
            if length == 126:
                if len(buffer) - position < 4:
                    break
                length = int.from_bytes(buffer[position + 2:position + 4], "big")
                start = position + 4
            elif length == 127:
                if len(buffer) - position < 10:
                    break
                length = int.from_bytes(buffer[position + 2:position + 10], "big")
                start = position + 10
            end = start + length
            if end > len(buffer):
                break
            opcode = buffer[position] & 0x0F
            if opcode == wire.OP_TEXT:
                if buffer.find(HEARTBEAT, start, min(start + HEAD, end)) >= 0:
                    send_frame(self.sock, wire.heartbeat_ack())
                elif not self.subscribed and buffer.find(b"connection.connected", start, end) >= 0:
                    for number, strategy in enumerate(self.strategies):
                        send_frame(self.sock, wire.subscription_request(strategy, f"raw-{number}"))
                    self.subscribed = True
            elif opcode == wire.OP_PING:
                send_frame(self.sock, bytes(buffer[start:end]), wire.OP_PONG)
            elif opcode == wire.OP_CLOSE:
                return False
            position = end
        del buffer[:position]
        return True


def main() -> None:
    url, key = sys.argv[1], sys.argv[2]
    first, count = int(sys.argv[3]), int(sys.argv[4])
    per_connection = int(sys.argv[5]) if len(sys.argv) > 5 else 100
    parts = urlsplit(url)
    strategies = [first + index for index in range(count)]
    selector = selectors.DefaultSelector()
    for begin in range(0, count, per_connection):
        sock = socket.create_connection((parts.hostname, parts.port or 80))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = Link(sock, strategies[begin:begin + per_connection], upgrade(sock, url, key))
        if not link.frames():
            return
        selector.register(sock, selectors.EVENT_READ, link)
    while selector.get_map():
        for selected, _ in selector.select():
            link = selected.data
            chunk = link.sock.recv(1 << 16)
            link.buffer += chunk
            if not chunk or not link.frames():
                selector.unregister(link.sock)
                link.sock.close()


if __name__ == "__main__":
    main()
