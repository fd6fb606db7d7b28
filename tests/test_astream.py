"""``c2ws.astream()`` on a real event loop against the reference server: the loop keeps
running while the stream waits, acknowledgements are awaited, and cancelling the
consuming task ends the stream cleanly."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import c2ws
from c2ws.server.app import ReferenceServer, ServerConfig
from c2ws.streaming import StreamEnd

KEY = "astream-e2e-key-1234"
STRATEGY = 7654321


@pytest.fixture
def server() -> Iterator[ReferenceServer]:
    config = ServerConfig(api_keys=(KEY,), feed="none", strategies=(STRATEGY,),
                          heartbeat_interval=0.5, heartbeat_grace=1.0, max_lifetime=120)
    with ReferenceServer(config) as running:
        yield running


def subscribed(server: ReferenceServer) -> Any:
    def ready() -> Any:
        records = server.connections(open_only=True)
        return records and records[-1].subscriptions and records[-1]
    return server.wait_for(ready, timeout=15)


def open_astream(server: ReferenceServer, **options: Any) -> c2ws.AsyncStream:
    return c2ws.astream([STRATEGY], "signal", api_key=KEY, url=server.url, **options)


def test_the_loop_runs_on_while_the_stream_waits(server: ReferenceServer) -> None:
    ticks = 0

    def publish_once_the_loop_ticked() -> None:
        # Only once the ticker has run while the stream waits for its first message: a
        # blocked loop would never tick, nothing would be published, and the stream would
        # end by its timeout with nothing.
        subscribed(server)
        server.wait_for(lambda: ticks >= 10, timeout=30)
        for n in range(3):
            server.publish_signal(STRATEGY, {"StrategyId": STRATEGY, "n": n})

    async def main() -> list[int]:
        nonlocal ticks
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.005)

        ticking = asyncio.create_task(ticker())
        got = []
        async with open_astream(server, count=3, timeout=30) as s:
            async for msg in s:
                got.append(msg.raw["payload"]["n"])
        stop.set()
        await ticking
        assert s.end_reason is StreamEnd.COUNT and s.delivered == 3
        return got

    publisher = threading.Thread(target=publish_once_the_loop_ticked, daemon=True)
    publisher.start()
    assert asyncio.run(main()) == [0, 1, 2]
    publisher.join(10)


def test_acknowledgements_are_awaited_and_batches_come_async(server: ReferenceServer) -> None:
    def publish() -> None:
        subscribed(server)
        for n in range(4):
            server.publish_signal(STRATEGY, {"StrategyId": STRATEGY, "n": n})

    async def main() -> tuple[list[int], Any]:
        got: list[int] = []
        async with open_astream(server, auto_ack=False, count=4, timeout=30) as s:
            async for batch in s.batches():
                got += [msg.raw["payload"]["n"] for msg in batch]
                await s.ack(batch)
        return got, s.cursors

    threading.Thread(target=publish, daemon=True).start()
    got, cursors = asyncio.run(main())
    assert got == [0, 1, 2, 3]
    assert list(cursors.values()) == [server.last_seq(STRATEGY)]


def test_cancelling_the_consumer_ends_the_stream_cleanly(server: ReferenceServer) -> None:
    async def main() -> c2ws.AsyncStream:
        s = open_astream(server, timeout=120)

        async def consume() -> None:
            async with s:
                async for _ in s:
                    pass

        task = asyncio.create_task(consume())
        await asyncio.to_thread(subscribed, server)  # the consumer waits for a message now
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 15)
        return s

    s = asyncio.run(main())
    assert s.end_reason is StreamEnd.CLOSED
    record = server.wait_for(lambda: (r := server.connections()[-1]) and not r.open and r,
                             timeout=10)
    assert record.client_close_code == 1000
    assert any(m.get("msg_type") == "subscription.request"
               and m["payload"]["action"] == "unsubscribe" for m in record.received)
