"""The same loop on picows, the Cython WebSocket library for asyncio.

    python bench/peers/picows_client.py URL KEY STRATEGY_ID

Tuned as picows' documentation advises for its fast path: the callback API
(``WSListener.on_ws_frame`` is called synchronously from the data-received path, no
future or task per message), the payload read zero-copy (``get_payload_as_memoryview``;
the view is only valid during the callback, so it is written at once), aiofastnet for
the socket (picows' default when installed, as it is with picows 2), and the flush when
``frame.last_in_buffer`` says no further frame is waiting in what has been read: one
flush per read, never per line.  The plain asyncio event loop: picows 2 gets its socket
speed from aiofastnet whatever the loop.  The protocol as in bare_loop.py: a bounded
substring test on the frame's first 48 bytes finds heartbeats, nothing is decoded;
picows answers pings itself.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import wire

HEARTBEAT = wire.HEARTBEAT_NAME
HEAD = wire.HEARTBEAT_HEAD_BYTES


class Listener(WSListener):  # type: ignore[misc]
    def __init__(self, strategy_id: int) -> None:
        self.strategy_id = strategy_id
        self.subscribed = False
        self.problem: str | None = None
        out = sys.stdout.buffer
        self.write, self.flush = out.write, out.flush

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
            payload = frame.get_payload_as_memoryview()
            if HEARTBEAT in bytes(payload[:HEAD]):
                self.flush()
                transport.send(WSMsgType.TEXT, wire.heartbeat_ack())
            elif self.subscribed:
                self.write(payload)
                self.write(b"\n")
            elif b"connection.connected" in bytes(payload):
                transport.send(
                    WSMsgType.TEXT, wire.subscription_request(self.strategy_id, "picows-1")
                )
                self.subscribed = True
            else:
                self.problem = f"expected connection.connected, got {bytes(payload[:80])!r}"
                transport.disconnect()
                return
            if frame.last_in_buffer:
                self.flush()
        elif kind is WSMsgType.CLOSE:
            self.flush()
            transport.send_close(frame.get_close_code())
            transport.disconnect()


async def main() -> None:
    url, key, strategy_id = sys.argv[1], sys.argv[2], int(sys.argv[3])
    transport, listener = await ws_connect(
        lambda: Listener(strategy_id),
        url,
        extra_headers={"Authorization": f"Bearer {key}"},
        max_frame_size=1 << 30,
    )
    await transport.wait_disconnected()
    sys.stdout.buffer.flush()
    if listener.problem:
        sys.exit(listener.problem)


if __name__ == "__main__":
    asyncio.run(main())
