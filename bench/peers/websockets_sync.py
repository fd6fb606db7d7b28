"""The same loop on the ``websockets`` library's synchronous client.

    python bench/peers/websockets_sync.py URL KEY STRATEGY_ID

Frames as bytes (``decode=False``: orjson validates), orjson for ``msg_type``, each
stream message written as a line to the buffered stdout, flushed only when no further
message is waiting (``recv(timeout=0)`` raises ``TimeoutError``).
"""

from __future__ import annotations

import sys
import time

import orjson
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

STREAM_TYPES = ("strategy.signal", "strategy.positions")


def stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def main() -> None:
    url, key, strategy_id = sys.argv[1], sys.argv[2], int(sys.argv[3])
    write, flush = sys.stdout.buffer.write, sys.stdout.buffer.flush
    with connect(
        url, additional_headers={"Authorization": f"Bearer {key}"}, compression=None, max_size=None
    ) as ws:
        while True:
            try:
                try:
                    data = ws.recv(timeout=0, decode=False)
                except TimeoutError:
                    flush()
                    data = ws.recv(decode=False)
            except ConnectionClosed:
                break
            kind = orjson.loads(data).get("msg_type")
            if kind in STREAM_TYPES:
                write(data + b"\n")
            elif kind == "heartbeat":
                ws.send(
                    orjson.dumps({"msg_type": "heartbeat.ack", "timestamp": stamp()}), text=True
                )
            elif kind == "connection.connected":
                ws.send(
                    orjson.dumps(
                        {
                            "msg_type": "subscription.request",
                            "request_id": "websockets-1",
                            "timestamp": stamp(),
                            "payload": {
                                "action": "subscribe",
                                "channel": "strategy.signal",
                                "strategy_id": strategy_id,
                            },
                        }
                    ),
                    text=True,
                )
    flush()


if __name__ == "__main__":
    main()
