"""The library as a trader would use it: ``for msg in c2ws.stream(...)``.

    python bench/peers/library_loop.py URL KEY STRATEGY_ID line|fields COUNT

``line``: each message's ``.line`` written to the buffered ``sys.stdout.buffer``.
``fields``: ``.symbol``, ``.side`` and ``.quantity`` read from each message (decoding
its payload), then its line written.  The stream ends after COUNT messages (``count=``),
and the buffer is flushed once at the end (the harness reads the lines from a pipe).

``max_buffer`` holds the whole blast: a consumer slower than the feed would otherwise
make the engine close and resume past max_buffer (its design for slow readers), which
the harness's blast job does not serve; this measures the per-message cost instead.
"""

from __future__ import annotations

import sys

import c2ws


def main() -> None:
    url, key, strategy_id, mode, count = sys.argv[1:6]
    write = sys.stdout.buffer.write
    with c2ws.stream([int(strategy_id)], "signal", api_key=key, url=url,
                     count=int(count), max_buffer=int(count) + 1000) as s:
        if mode == "line":
            for msg in s:
                write(msg.line + b"\n")
        else:
            for msg in s:
                msg.symbol, msg.side, msg.quantity  # type: ignore[union-attr]  # noqa: B018
                write(msg.line + b"\n")
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
