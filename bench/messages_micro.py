"""Per-message cost of the library's typed messages (c2ws/messages.py), in nanoseconds.

    python bench/messages_micro.py                 # 200,000 messages, best of 5
    python bench/messages_micro.py --count 2000 --repeat 1 --json

No network and no threads: it times what the library adds on top of the engine.  The
events are built beforehand, as the engine hands them over (``StreamMessage``), from the
harness's order frames (``wire.payload_pool``: 1000 OrderStatusDTO-like payloads of
400-1200 bytes, cycled; each frame its own seq_id), on both engine paths:

- ``head``: the NDJSON fast path (``decoded_payloads=False``): the engine read only the
  frame's header (``c2ws.stream_head``); a message decodes the frame itself on the first
  payload field read.
- ``decoded``: the engine decoded the whole frame (``protocol.decode``).

Timed per message, each a plain ``for`` loop over the events, loop included:

- ``cli_line``: what the CLI's NDJSON renderer does per message (the frame is the line):
  the floor the library is compared with.
- ``line``: ``message_of(event).line``.
- ``fields``: ``message_of(event)``, then ``.symbol``, ``.side`` and ``.quantity``.
- ``orjson_loads`` (for scale): decoding the frame, which the bare websocket-client loop
  of bench/ pays per message.

Each figure is the fastest of ``--repeat`` runs (the least disturbed by other load).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import wire

from c2ws import protocol, spec
from c2ws.events import StreamMessage, SubscriptionKey
from c2ws.lines import is_one_line, line_of
from c2ws.messages import message_of
from c2ws.stream_head import read_stream_head

STRATEGY_ID = 12345678
KEY = SubscriptionKey(STRATEGY_ID, spec.CHANNEL_SIGNAL)


def frames(count: int) -> list[bytes]:
    """``count`` order frames with ascending seq_ids over the harness's payload pool."""
    pool = wire.payload_pool(STRATEGY_ID)
    stamp = wire.utc_stamp()
    return [
        wire.envelope_prefix(seq_id, stamp) + pool[seq_id % len(pool)] + b"}"
        for seq_id in range(1, count + 1)
    ]


def head_events(data: Sequence[bytes]) -> list[StreamMessage]:
    events = []
    for frame in data:
        head = read_stream_head(frame)
        assert head is not None, "a bench frame the header reader refused"
        events.append(StreamMessage(KEY, head[0], head[0].seq_id))
    return events


def decoded_events(data: Sequence[bytes]) -> list[StreamMessage]:
    return [StreamMessage(KEY, envelope := protocol.decode(frame), envelope.seq_id)
            for frame in data]


def cli_line(events: Sequence[StreamMessage]) -> None:
    # NdjsonRenderer.handle_messages, without collecting the lines.
    for event in events:
        data = event.message.data
        if not is_one_line(data):
            line_of(event.message)


def library_line(events: Sequence[StreamMessage]) -> None:
    for event in events:
        message_of(event).line  # noqa: B018  (reading it is what is timed)


def library_fields(events: Sequence[StreamMessage]) -> None:
    for event in events:
        message = message_of(event)
        message.symbol  # noqa: B018
        message.side  # noqa: B018
        message.quantity  # noqa: B018


def decode_frames(data: Sequence[bytes]) -> None:
    loads = orjson.loads
    for frame in data:
        loads(frame)


def best_ns_per_item(run: Callable[[], None], items: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter_ns()
        run()
        best = min(best, time.perf_counter_ns() - started)
    return best / items


def measure(count: int, repeat: int) -> dict[str, float]:
    data = frames(count)
    results: dict[str, float] = {
        "orjson_loads": best_ns_per_item(lambda: decode_frames(data), count, repeat),
    }
    for path, build in (("head", head_events), ("decoded", decoded_events)):
        events = build(data)
        for name, run in (("cli_line", cli_line), ("line", library_line),
                          ("fields", library_fields)):
            results[f"{path}.{name}"] = best_ns_per_item(
                lambda run=run, events=events: run(events), count, repeat  # type: ignore[misc]
            )
        del events
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=200_000, help="messages (default 200000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each; the best counts")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    options = parser.parse_args(argv)
    results = measure(options.count, options.repeat)
    if options.json:
        print(json.dumps({"count": options.count, "repeat": options.repeat,
                          "ns_per_message": results}))
        return 0
    print(f"{options.count:,} messages, best of {options.repeat}; ns per message")
    print(f"  orjson.loads of the frame (the bare loop pays this): {results['orjson_loads']:7.0f}")
    for path in ("head", "decoded"):
        floor = results[f"{path}.cli_line"]
        print(f"  {path} path:")
        print(f"    CLI line                      {floor:7.0f}")
        for name, label in (("line", "message_of(e).line"),
                            ("fields", "message_of(e).symbol/.side/.quantity")):
            value = results[f"{path}.{name}"]
            print(f"    {label:<38}{value:7.0f}  (+{value - floor:.0f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
