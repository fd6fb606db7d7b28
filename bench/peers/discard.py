"""The feed server's own speed test: subscribe, then read and discard bytes until EOF.

    python bench/peers/discard.py URL STRATEGY_ID

No frame parsing, no JSON: one ``recv_into`` of 1 MiB at a time, so whatever rate the
server reaches against it is the server's ceiling.  Prints one JSON line at the end:
bytes read and CLOCK_MONOTONIC nanoseconds of the first byte and of EOF.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import wire


def main() -> None:
    url, strategy_id = urlsplit(sys.argv[1]), int(sys.argv[2])
    sock = socket.create_connection((url.hostname, url.port or 80))
    key = base64.b64encode(os.urandom(16))
    sock.sendall(
        b"GET "
        + (url.path or "/").encode()
        + b" HTTP/1.1\r\nHost: "
        + url.netloc.encode()
        + b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nAuthorization: Bearer discard\r\n\r\n"
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(4096)
    if not response.startswith(b"HTTP/1.1 101"):
        sys.exit(f"upgrade refused: {response[:80]!r}")
    sock.sendall(wire.masked_frame(wire.subscription_request(strategy_id)))
    buffer = bytearray(1 << 20)
    total = len(response.split(b"\r\n\r\n", 1)[1])
    first_ns = 0
    while True:
        read = sock.recv_into(buffer)
        if not read:
            break
        if not first_ns and total + read > 4096:  # past the connected/ack frames
            first_ns = time.monotonic_ns()
        total += read
    print(json.dumps({"bytes": total, "first_ns": first_ns, "eof_ns": time.monotonic_ns()}))


if __name__ == "__main__":
    main()
