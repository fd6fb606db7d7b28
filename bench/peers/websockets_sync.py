"""The same loop on the ``websockets`` library's synchronous client.

    python bench/peers/websockets_sync.py URL KEY STRATEGY_ID

Tuned as websockets' documentation advises for throughput: ``compression=None`` (no
permessage-deflate to negotiate or inflate), ``max_size=None`` (no size check per
message), and text frames received as bytes, undecoded (``recv(decode=False)``, the
option websockets added for clients that pass text through): no per-message decode to
``str`` and back.  Each message is written with its newline to the buffered stdout,
flushed only when no further message is waiting (``recv(timeout=0)`` raises
``TimeoutError``: the library's background thread has read nothing more), never per
line.  The protocol as in bare_loop.py: a bounded substring test finds heartbeats,
nothing is decoded.
"""

from __future__ import annotations

import sys
from pathlib import Path

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import wire

HEARTBEAT = wire.HEARTBEAT_NAME
HEAD = wire.HEARTBEAT_HEAD_BYTES


def main() -> None:
    url, key, strategy_id = sys.argv[1], sys.argv[2], int(sys.argv[3])
    write, flush = sys.stdout.buffer.write, sys.stdout.buffer.flush
    with connect(
        url, additional_headers={"Authorization": f"Bearer {key}"}, compression=None, max_size=None
    ) as ws:
        first = ws.recv(decode=False)
        if b"connection.connected" not in first:
            sys.exit(f"expected connection.connected, got {first[:80]!r}")
        ws.send(wire.subscription_request(strategy_id, "websockets-1"), text=True)
        recv = ws.recv
        while True:
            try:
                try:
                    data = recv(timeout=0, decode=False)
                except TimeoutError:
                    flush()
                    data = recv(decode=False)
            except ConnectionClosed:
                break
            if data.find(HEARTBEAT, 0, HEAD) >= 0:
                flush()
                ws.send(wire.heartbeat_ack(), text=True)
            else:
                write(data + b"\n")
    flush()


if __name__ == "__main__":
    main()
