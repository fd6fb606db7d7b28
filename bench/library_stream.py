"""``for msg in c2ws.stream(...)`` against the bare websocket-client loop, through the
harness's feed server and its pipe-throughput measurement (bench/measure.py).

    python bench/library_stream.py --count 100000 --rounds 3

Clients, in rotating order each round: ``bare`` (peers/bare_loop.py), ``c2ws``
(the CLI, -o ndjson), ``library-line`` (peers/library_loop.py: each message's ``.line``)
and ``library-fields`` (the same, reading ``.symbol``, ``.side`` and ``.quantity``
first).  Prints msg/s per run and the median of the per-round ratios to ``bare``.  A
quick look on its own: bench/run.py measures the library in every round ("library"), with
the issue's targets (line >= 1.0x, fields >= 0.5x).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import clients
import measure
from feedctl import FeedServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settle", type=float, default=0.3)
    args = parser.parse_args()
    names = ["bare", "c2ws", "library-line", "library-fields"]
    rates: dict[str, list[float]] = {name: [] for name in names}
    with FeedServer() as server:
        for round_ in range(args.rounds):
            order = names[round_ % len(names):] + names[:round_ % len(names)]
            for name in order:
                if name in ("bare", "c2ws"):
                    launch = clients.ALL[name].launch(server.url, "pipe")
                else:
                    launch = clients.library_launch(name.split("-")[1], args.count)(
                        server.url, "pipe")
                result = measure.throughput(server, launch, "pipe", args.count, args.settle)
                rate = result.get("msgs_per_s")
                print(f"round {round_ + 1}: {name:15} "
                      + (f"{rate:10,.0f} msg/s" if rate else f"failed: {result}"), flush=True)
                rates[name].append(rate or 0.0)
    print()
    for name in names[1:]:
        ratios = [r / b for r, b in zip(rates[name], rates["bare"], strict=True) if b]
        print(f"{name:15} x bare: median {statistics.median(ratios):.2f} "
              f"[{min(ratios):.2f}-{max(ratios):.2f}]")


if __name__ == "__main__":
    main()
