"""The baseline c2ws is measured against: the hand-rolled websocket-client loop a
trader would otherwise write (connect, subscribe, ack heartbeats, print signals)."""

from __future__ import annotations

import json
import sys
import time

import websocket


def main() -> None:
    url, key, strategy_id = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ws = websocket.create_connection(url, header=[f"Authorization: Bearer {key}"])
    for raw in ws:
        message = json.loads(raw)
        kind = message.get("msg_type")
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if kind == "connection.connected":
            ws.send(json.dumps({
                "msg_type": "subscription.request", "request_id": "bench-1", "timestamp": stamp,
                "payload": {"action": "subscribe", "channel": "strategy.signal",
                            "strategy_id": strategy_id},
            }))
        elif kind == "heartbeat":
            ws.send(json.dumps({"msg_type": "heartbeat.ack", "timestamp": stamp}))
        elif kind == "strategy.signal":
            print(json.dumps(message, separators=(",", ":")), flush=True)


if __name__ == "__main__":
    main()
