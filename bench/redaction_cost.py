"""What redacting the API key costs the socket thread, per frame (README, "Security").

Every frame a socket read brings passes through ``KeyRedactor.redact_frames`` before the
session sees it.  This times that on the benchmark's frames (``wire.payload_pool``:
``strategy.signal`` envelopes of 400-1200 bytes, mean ~810), next to the session's own
work on them in NDJSON mode, and the cost of a frame that does hold the key.

    .venv/bin/python bench/redaction_cost.py

Best of several repeats (the least disturbed by anything else running); figures in ns.
"""

from __future__ import annotations

import random
import string
import timeit

import wire

from c2ws import protocol, spec
from c2ws.delivery.dedupe import StreamFilter
from c2ws.events import SubscriptionKey
from c2ws.redaction import KeyRedactor
from c2ws.session import ClientSession

STRATEGY = 12345678
BURST = 80  # frames of about one 64 KiB socket read
BURSTS = 250
REPEATS = 7


def bursts() -> list[list[bytes]]:
    pool = wire.payload_pool(STRATEGY)
    stamp = wire.utc_stamp()
    seq = 0
    result = []
    for _ in range(BURSTS):
        burst = []
        for _ in range(BURST):
            seq += 1
            burst.append(wire.envelope_prefix(seq, stamp) + pool[seq % len(pool)] + b"}")
        result.append(burst)
    return result


def subscribed_session() -> ClientSession:
    key = SubscriptionKey(STRATEGY, spec.CHANNEL_SIGNAL)
    session = ClientSession(request_id_prefix="c2ws-bench", stream_filter=StreamFilter([key], {}),
                            now=0.0, decoded_payloads=False)
    session.subscribe(key, now=0.0, wall=0.0)
    stamp = protocol.format_timestamp(0)
    session.receive(protocol.encode(protocol.server_message(
        spec.MSG_CONNECTED, message_id="m0", timestamp=stamp, payload={})), now=0.0, wall=0.0)
    request_id = protocol.decode(session.data_to_send()[0]).request_id
    session.receive(protocol.encode(protocol.server_message(
        spec.MSG_SUBSCRIPTION_ACK, message_id="m1", timestamp=stamp, request_id=request_id,
        payload={"action": spec.ACTION_SUBSCRIBE, "channel": key.channel,
                 "strategy_id": STRATEGY})), now=0.0, wall=0.0)
    session.events_received()
    return session


def per_frame_ns(run: object, frames: int) -> float:
    seconds = min(timeit.repeat(run, number=1, repeat=REPEATS))  # type: ignore[arg-type]
    return seconds / frames * 1e9


def main() -> None:
    data = bursts()
    frames = BURST * BURSTS
    mean = sum(map(len, (f for burst in data for f in burst))) / frames
    print(f"{frames} frames, mean {mean:.0f} bytes, bursts of {BURST}")

    def session_work() -> None:
        session = subscribed_session()  # a fresh one: each repeat sends seq_ids from 1
        for burst in data:
            session.receive_frames(burst, now=0.0, wall=0.0)
            session.events_received()

    print(f"session.receive_frames (NDJSON mode): {per_frame_ns(session_work, frames):.0f} ns "
          "per frame")
    rng = random.Random(1)
    for length in (8, 20, 32, 64):
        key = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(length))
        redactor = KeyRedactor(key)
        cost = per_frame_ns(lambda r=redactor: [r.redact_frames(b) for b in data], frames)
        print(f"redact_frames, a {length}-character key in no frame: {cost:.0f} ns per frame")
    redactor = KeyRedactor("".join(rng.choice(string.ascii_letters) for _ in range(32)))
    holding = data[0][0][:-2] + b',"Note":"' + redactor.api_key.encode() + b'"}}'
    cost = min(timeit.repeat(lambda: redactor.redact_frame(holding), number=1000,
                             repeat=REPEATS)) / 1000 * 1e9
    print(f"redact_frame of a {len(holding)}-byte frame holding the key: {cost:.0f} ns")


if __name__ == "__main__":
    main()
