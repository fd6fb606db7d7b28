"""Per-message cost of the ``-o csv|tsv`` output path on runs of signal frames, in ns.

    python bench/csv_micro.py                  # 20,000 frames in runs of 64, best of 7
    python bench/csv_micro.py --count 2000 --repeat 1 --json

No network and no threads: it times ``DelimitedRenderer.handle_events`` and ``flush``
(to an in-memory file) on ``StreamRun`` events as a session passing frames through
hands them over (``--run`` frames each, the size of a socket read's burst), from the
harness's order frames (``wire.payload_pool``, cycled; each frame its own seq_id), all
17 columns, after one untimed pass (the cells' memos warm, as in a long run):

- ``csv_one_stamp`` / ``tsv_one_stamp``: every frame the same timestamp (as the bench
  feed server sends them);
- ``csv_stamp_each``: a timestamp per frame (a live feed: each one new to the memos).

Each figure is the fastest of ``--repeat`` runs (the least disturbed by other load).
Which c2ws is timed: the one on ``sys.path`` (printed; ``PYTHONPATH=...`` to choose).
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import wire

import c2ws
from c2ws import events as ev
from c2ws import spec, speedups
from c2ws.events import SubscriptionKey
from c2ws.render.records import COMBINED_COLUMNS
from c2ws.render.tabular import DelimitedRenderer

STRATEGY_ID = 12345678
KEY = SubscriptionKey(STRATEGY_ID, spec.CHANNEL_SIGNAL)


def runs(count: int, size: int, stamp_each: bool) -> list[ev.StreamRun]:
    pool = wire.payload_pool(STRATEGY_ID)
    stamp = wire.utc_stamp(1_800_000_000)
    lines = [wire.envelope_prefix(
        seq_id, f"2027-01-15T08:{seq_id // 60 % 60:02d}:{seq_id % 60:02d}.{seq_id:06d}Z"
        if stamp_each else stamp) + pool[seq_id % len(pool)] + b"}"
        for seq_id in range(1, count + 1)]
    return [ev.StreamRun(KEY, b"".join(line + b"\n" for line in lines[at:at + size]),
                         len(lines[at:at + size]), at + len(lines[at:at + size]))
            for at in range(0, count, size)]


def ns_per_message(events: list[ev.StreamRun], delimiter: str, repeat: int) -> float:
    count = sum(run.count for run in events)
    out = io.BytesIO()
    renderer = DelimitedRenderer(out, COMBINED_COLUMNS, delimiter=delimiter)
    renderer.handle_events(events)  # warm: the memos hold the feed's codes and symbols
    renderer.flush()
    best = float("inf")
    gc.collect()
    for _ in range(repeat):
        out.seek(0)
        out.truncate()
        start = time.perf_counter_ns()
        renderer.handle_events(events)
        renderer.flush()
        best = min(best, (time.perf_counter_ns() - start) / count)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--run", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    one = runs(args.count, args.run, stamp_each=False)
    each = runs(args.count, args.run, stamp_each=True)
    figures = {
        "csv_one_stamp": ns_per_message(one, ",", args.repeat),
        "tsv_one_stamp": ns_per_message(one, "\t", args.repeat),
        "csv_stamp_each": ns_per_message(each, ",", args.repeat),
    }
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"c2ws from {Path(c2ws.__file__).parent} (compiled: {speedups.COMPILED})")
        for name, value in figures.items():
            print(f"{name:16} {value:8.0f} ns/message")
    return 0


if __name__ == "__main__":
    sys.exit(main())
