"""The bare loop, the reference of every ratio: the lean websocket-client loop.

    python bench/peers/bare_loop.py URL KEY STRATEGY_ID [--flush-each-line]

What a trader writes with websocket-client when speed matters, and nothing else:
``create_connection(..., skip_utf8_validation=True)`` (the library's own UTF-8 check is
pure Python and the slowest part of a receive), a ``recv_data`` loop, each message
written with its newline to the buffered ``sys.stdout.buffer``.  No JSON decoding, no
system call per message: the buffer goes out when it fills (8 KiB).

The protocol, as cheaply as it can be done (it does less than c2ws, never more, so the
reference is never slowed by a check c2ws would skip):

* the first frame must be ``connection.connected`` (a substring test); the subscription
  goes out after it, as the protocol asks;
* a frame with ``"heartbeat"`` in its first 48 bytes is a heartbeat (``msg_type`` leads
  every envelope C2 and the feed server send; a stream message starts with
  ``{"msg_type":"strategy.signal"``, so it never matches, and ``"heartbeat.ack"`` is
  never sent by a server): the output is flushed, then a ``heartbeat.ack`` goes out.
  One bounded ``bytes.find`` per frame, where c2ws parses and validates the envelope.
  The flush is this loop's only way to notice a pause without a system call per
  message: the feed server ends every blast with a heartbeat, so the last block of a
  stream is not held until C2's next one, 30 s later;
* every other frame is written (the ``subscription.ack`` included: one line, which the
  harness does not count); pings are answered by websocket-client; a close frame ends
  the loop.

``--flush-each-line`` (the latency runs only): a flush after every line.  Block
buffering would hold a line until 8 KiB had gathered (about ten messages: 10 ms at
1,000 msg/s), which nobody watching latency would accept; a write per line is the
lowest latency any loop can have, so the latency added by another client is measured
against the floor.
"""

from __future__ import annotations

import sys
from pathlib import Path

from websocket import ABNF, create_connection

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import wire

HEARTBEAT = wire.HEARTBEAT_NAME
HEAD = wire.HEARTBEAT_HEAD_BYTES


def main() -> None:
    url, key, strategy_id = sys.argv[1], sys.argv[2], int(sys.argv[3])
    flush_each_line = "--flush-each-line" in sys.argv[4:]
    ws = create_connection(url, header=[f"Authorization: Bearer {key}"], skip_utf8_validation=True)
    _, first = ws.recv_data()
    if b"connection.connected" not in first:
        sys.exit(f"expected connection.connected, got {first[:80]!r}")
    ws.send(wire.subscription_request(strategy_id, "bare-1"))
    out = sys.stdout.buffer
    flush = out.flush
    if flush_each_line:

        def write(line: bytes) -> None:
            out.write(line)
            flush()

    else:
        write = out.write  # type: ignore[assignment]
    recv_data = ws.recv_data
    close = ABNF.OPCODE_CLOSE
    while True:
        opcode, data = recv_data()
        if opcode == close:
            break
        if data.find(HEARTBEAT, 0, HEAD) >= 0:
            flush()
            ws.send(wire.heartbeat_ack())
        else:
            write(data + b"\n")
    flush()


if __name__ == "__main__":
    main()
