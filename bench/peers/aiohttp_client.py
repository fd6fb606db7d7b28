"""The same loop on aiohttp's asyncio WebSocket client.

    python bench/peers/aiohttp_client.py URL KEY STRATEGY_ID

Tuned as aiohttp's documentation advises: ``decode_text=False`` (aiohttp >= 3.14 hands
text frames over as the bytes they arrived as, for clients that pass them on or parse
them with orjson: no decode to ``str`` and no encode back), ``compress=0`` (no deflate),
``max_msg_size=0`` (no size check), aiohttp's C reader (the wheels' default).  Each
message is written with its newline to the buffered stdout; the flush is scheduled with
``call_soon`` once per burst, so it runs when the reading task next waits, that is when
no message is queued.  The protocol as in bare_loop.py: a bounded substring test finds
heartbeats, nothing is decoded.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import wire

HEARTBEAT = wire.HEARTBEAT_NAME
HEAD = wire.HEARTBEAT_HEAD_BYTES
DATA_TYPES = (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY)


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
            url,
            headers={"Authorization": f"Bearer {key}"},
            max_msg_size=0,
            compress=0,
            decode_text=False,
        ) as ws,
    ):
        first = await ws.receive()
        if first.type not in DATA_TYPES or b"connection.connected" not in first.data:
            sys.exit(f"expected connection.connected, got {first!r:.80}")
        await ws.send_frame(
            wire.subscription_request(strategy_id, "aiohttp-1"), aiohttp.WSMsgType.TEXT
        )
        async for message in ws:
            if message.type not in DATA_TYPES:
                break
            data: bytes = message.data
            if data.find(HEARTBEAT, 0, HEAD) >= 0:
                out.flush()
                await ws.send_frame(wire.heartbeat_ack(), aiohttp.WSMsgType.TEXT)
            else:
                write(data + b"\n")
                if not flush_scheduled:
                    flush_scheduled = True
                    loop.call_soon(flush)
    out.flush()


if __name__ == "__main__":
    asyncio.run(main())
