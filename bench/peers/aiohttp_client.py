"""The same loop on aiohttp's asyncio WebSocket client.

    python bench/peers/aiohttp_client.py URL KEY STRATEGY_ID

aiohttp hands text frames over as ``str`` (it decodes them), so each line is encoded
back to bytes for the buffered stdout.  The flush is scheduled with ``call_soon`` once per
burst: it runs when the reading task next waits, that is when no message is queued.
"""

from __future__ import annotations

import asyncio
import sys
import time

import aiohttp
import orjson

STREAM_TYPES = ("strategy.signal", "strategy.positions")


def stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


async def main() -> None:
    url, key, strategy_id = sys.argv[1], sys.argv[2], int(sys.argv[3])
    out = sys.stdout.buffer
    write = out.write
    loop = asyncio.get_running_loop()
    flush_scheduled = False

    def flush() -> None:
        nonlocal flush_scheduled
        flush_scheduled = False
        out.flush()

    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            url, headers={"Authorization": f"Bearer {key}"}, max_msg_size=0, compress=0
        ) as ws,
    ):
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            data: str = message.data
            kind = orjson.loads(data).get("msg_type")
            if kind in STREAM_TYPES:
                write(data.encode() + b"\n")
                if not flush_scheduled:
                    flush_scheduled = True
                    loop.call_soon(flush)
            elif kind == "heartbeat":
                await ws.send_str(
                    orjson.dumps({"msg_type": "heartbeat.ack", "timestamp": stamp()}).decode()
                )
            elif kind == "connection.connected":
                await ws.send_str(
                    orjson.dumps(
                        {
                            "msg_type": "subscription.request",
                            "request_id": "aiohttp-1",
                            "timestamp": stamp(),
                            "payload": {
                                "action": "subscribe",
                                "channel": "strategy.signal",
                                "strategy_id": strategy_id,
                            },
                        }
                    ).decode()
                )
    out.flush()


if __name__ == "__main__":
    asyncio.run(main())
