"""c2ws against a hand-rolled websocket-client loop (bench/baseline_client.py), both
measured in the same run on this machine and reported as ratios.

    .venv/bin/python bench/run.py [--samples 400] [--burst 30000] [--idle 20] [--repeat 3]

- latency: a minimal server sends one signal every 5 ms; each payload carries its send
  time (CLOCK_MONOTONIC, shared by processes); the time until the line is read from
  the client's stdout is the latency (loopback TCP + client + pipe).
- idle CPU: with nothing published, the client's CPU time (user + system, from /proc)
  per heartbeat, over ``--idle`` seconds of heartbeats only.
- throughput: a minimal blast server answers the subscription and then writes
  ``--burst`` pre-encoded signal frames as fast as it can; the time from the first to
  the last line on stdout gives messages per second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import orjson
from websockets.asyncio.server import ServerConnection, serve

from c2ws import protocol, spec
from c2ws.server.app import ReferenceServer, ServerConfig

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-key"
STRATEGY = 12345678
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}

Launcher = Callable[[str], subprocess.Popen[bytes]]


def c2ws_client(url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "c2ws", "subscribe", str(STRATEGY), "-c", "signal",
         "-o", "ndjson", "--api-key", KEY, "--url", url],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT, env=ENV,
    )


def baseline_client(url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "baseline_client.py"), url, KEY, str(STRATEGY)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT, env=ENV,
    )


CLIENTS: dict[str, Launcher] = {"baseline": baseline_client, "c2ws": c2ws_client}


def signal_payload(sent_ns: int, index: int) -> dict[str, object]:
    return {"StrategyId": STRATEGY, "SignalId": 150_000_000 + index, "Side": "1",
            "OrderType": "2", "OrderQuantity": 2, "Limit": 6844.25, "TIF": "0",
            "C2Symbol": {"FullSymbol": "@ESZ6", "SymbolType": "future"}, "sent_ns": sent_ns}


Feed = Callable[[ServerConnection], Awaitable[None]]


async def serve_one_subscription(connection: ServerConnection, feed: Feed) -> None:
    """Just enough of the protocol to subscribe a client, then ``feed`` takes over."""
    stamp = protocol.format_timestamp(time.time())
    await connection.send(protocol.encode(protocol.server_message(
        spec.MSG_CONNECTED, message_id="msg_0", timestamp=stamp)), text=True)
    request = protocol.decode(await connection.recv())
    await connection.send(protocol.encode(protocol.server_message(
        spec.MSG_SUBSCRIPTION_ACK, message_id="msg_1", timestamp=stamp,
        request_id=request.request_id, payload=request.payload)), text=True)
    await feed(connection)
    await connection.wait_closed()


@contextlib.contextmanager
def bench_server(feed: Feed) -> Iterator[str]:
    """A minimal WebSocket server in a thread, so the measurement is the client's."""
    ready = threading.Event()
    url: list[str] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        async with serve(lambda c: serve_one_subscription(c, feed), "127.0.0.1", 0,
                         ping_interval=None, compression=None) as server:
            url.append(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/ws")
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield url[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


def signal_frame(index: int, sent_ns: int = 0) -> bytes:
    return protocol.encode(protocol.server_message(
        spec.CHANNEL_SIGNAL, message_id=f"msg_{index:032x}", seq_id=index,
        timestamp=protocol.format_timestamp(time.time()),
        payload=signal_payload(sent_ns, index)))


def measure_latency(launch: Launcher, samples: int) -> list[float]:
    """Milliseconds from the server's send to the line on the client's stdout."""

    async def paced(connection: ServerConnection) -> None:
        for index in range(1, samples + 1):
            await connection.send(signal_frame(index, time.monotonic_ns()), text=True)
            await asyncio.sleep(0.005)

    with bench_server(paced) as url:
        client = launch(url)
        assert client.stdout is not None
        latencies: list[float] = []
        for line in client.stdout:
            arrived = time.monotonic_ns()
            latencies.append((arrived - orjson.loads(line)["payload"]["sent_ns"]) / 1e6)
            if len(latencies) == samples:
                break
        client.terminate()
        client.wait(10)
    return latencies


def measure_throughput(launch: Launcher, burst: int) -> float:
    frames = [signal_frame(index) for index in range(1, burst + 1)]

    async def blast(connection: ServerConnection) -> None:
        for frame in frames:
            await connection.send(frame, text=True)

    with bench_server(blast) as url:
        client = launch(url)
        assert client.stdout is not None
        count = 1 if client.stdout.readline() else 0
        started = time.perf_counter()
        for _ in client.stdout:
            count += 1
            if count == burst:
                break
        elapsed = time.perf_counter() - started
        client.terminate()
        client.wait(10)
    assert count == burst, f"received {count} of {burst}"
    return (burst - 1) / elapsed


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


HEARTBEATS_PER_SECOND = 20


def measure_heartbeat_cpu(launch: Launcher, seconds: float) -> float:
    """CPU microseconds an idle subscription spends per heartbeat (all it does when idle).

    Heartbeats come 20 times a second so the kernel's 10 ms accounting ticks add up to
    a usable figure; the real server sends one every 30 s."""
    config = ServerConfig(api_keys=(KEY,), feed="none", strategies=(STRATEGY,),
                          heartbeat_interval=1 / HEARTBEATS_PER_SECOND, max_lifetime=600)
    with ReferenceServer(config) as server:
        client = launch(server.url)
        server.wait_for(lambda: any(r.subscriptions for r in server.connections()), 20)
        time.sleep(1.0)  # start-up (imports, connect) is not idle time
        before = cpu_seconds(client.pid)
        time.sleep(seconds)
        used = cpu_seconds(client.pid) - before
        client.terminate()
        client.wait(10)
    return used * 1e6 / (seconds * HEARTBEATS_PER_SECOND)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--burst", type=int, default=30_000)
    parser.add_argument("--idle", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=3, help="throughput runs (median)")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    for name, launch in CLIENTS.items():
        latencies = measure_latency(launch, args.samples)
        results[name] = {
            "median_ms": statistics.median(latencies),
            "p99_ms": percentile(latencies, 0.99),
            "msgs_per_s": statistics.median(
                measure_throughput(launch, args.burst) for _ in range(args.repeat)
            ),
            "idle_cpu_us_per_heartbeat": measure_heartbeat_cpu(launch, args.idle),
        }
    base, ours = results["baseline"], results["c2ws"]
    print(f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"{args.samples} latency samples, burst of {args.burst}")
    print("| metric | baseline | c2ws | c2ws / baseline |")
    print("|---|---|---|---|")
    for metric in ("median_ms", "p99_ms", "msgs_per_s", "idle_cpu_us_per_heartbeat"):
        ratio = f"{ours[metric] / base[metric]:.2f}" if base[metric] else "n/a (baseline 0)"
        print(f"| {metric} | {base[metric]:.3f} | {ours[metric]:.3f} | {ratio} |")


if __name__ == "__main__":
    main()
