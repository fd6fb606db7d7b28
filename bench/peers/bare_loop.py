"""The bare loop: what a trader writes with websocket-client in a dozen lines, tuned.

    python bench/peers/bare_loop.py URL KEY STRATEGY_ID

``recv_data`` frames with ``skip_utf8_validation=True`` (orjson validates), ``orjson``
to find ``msg_type``, subscribe on ``connection.connected``, answer every ``heartbeat``,
write each stream message as one line to the buffered ``sys.stdout.buffer``.  It flushes
only when the socket has nothing more to read (a ``poll(0)``; websocket-client reads
frames straight from the socket, nothing is held back in user space), never per line.
"""

from __future__ import annotations

import select
import sys
import time

import orjson
from websocket import ABNF, create_connection

STREAM_TYPES = ("strategy.signal", "strategy.positions")


def stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def main() -> None:
    url, key, strategy_id = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ws = create_connection(url, header=[f"Authorization: Bearer {key}"], skip_utf8_validation=True)
    idle = select.poll()
    idle.register(ws.sock, select.POLLIN)
    write, flush = sys.stdout.buffer.write, sys.stdout.buffer.flush
    while True:
        opcode, data = ws.recv_data()
        if opcode == ABNF.OPCODE_CLOSE:
            break
        kind = orjson.loads(data).get("msg_type")
        if kind in STREAM_TYPES:
            write(data + b"\n")
            if not idle.poll(0):
                flush()
        elif kind == "heartbeat":
            ws.send(orjson.dumps({"msg_type": "heartbeat.ack", "timestamp": stamp()}))
        elif kind == "connection.connected":
            ws.send(
                orjson.dumps(
                    {
                        "msg_type": "subscription.request",
                        "request_id": "bare-1",
                        "timestamp": stamp(),
                        "payload": {
                            "action": "subscribe",
                            "channel": "strategy.signal",
                            "strategy_id": strategy_id,
                        },
                    }
                )
            )
    flush()


if __name__ == "__main__":
    main()
