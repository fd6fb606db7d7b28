"""The header of a stream frame, read without decoding its payload.

When the output is the frame itself (NDJSON passes it through byte for byte), c2ws needs
only the envelope's header fields and the payload's ``StrategyId`` to route, dedupe and
resume; decoding the whole payload into Python objects just to free them again was over
half the cost of a message.  msgspec decodes those few fields into a typed struct and
*skips* the rest, while still checking the whole frame's JSON syntax (2.6x faster than
``orjson.loads`` on 800-byte order frames).

A frame is read here only when it is plainly fine: bytes, within the size bound, ASCII
(so it is valid UTF-8: msgspec does not check the UTF-8 of skipped strings), valid JSON,
a header of exactly the usual types, a ``seq_id`` and an integer ``StrategyId``.
Anything else returns None and takes :func:`c2ws.protocol.decode`, which has the last
word on it.  A frame read here is valid JSON for the standard library's RFC 8259 parser
too (tests check this on arbitrary input).
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Annotated, Final

import msgspec

from c2ws import spec
from c2ws.protocol import Envelope
from c2ws.speedups import RunSummary, text_kind


class _PayloadHead(msgspec.Struct, gc=False):
    StrategyId: int | None = None  # the field's name on the wire


class _StreamHead(msgspec.Struct, gc=False):
    msg_type: Annotated[str, msgspec.Meta(min_length=1)]
    payload: _PayloadHead | None = None
    seq_id: int | None = None
    id: str | None = None
    request_id: str | None = None
    timestamp: str | None = None
    # Within 64 bits: beyond them the full decoder (orjson) gives a float, which the
    # envelope refuses, and the two readers must agree (a frame refused here takes the
    # full decoder).
    v: Annotated[int, msgspec.Meta(ge=spec.MIN_WIRE_INT, le=spec.MAX_WIRE_INT)] | str | None = None


# What read_stream_heads and read_burst_heads give (c2ws.events.StreamHead's shape).
StreamHead = _StreamHead

_decoder: Final = msgspec.json.Decoder(_StreamHead)
_decode_head: Final = _decoder.decode
_decode_lines: Final = _decoder.decode_lines
_MAX_FRAME_BYTES: Final = spec.MAX_FRAME_BYTES
_MIN_INT: Final = spec.MIN_WIRE_INT
_MAX_INT: Final = spec.MAX_WIRE_INT
_ONE_LINE: Final = 2  # text_kind: ASCII, no line break
# Header fields of a burst, read in C (map over the headers).
_MSG_TYPE: Final = attrgetter("msg_type")
_SEQ_ID: Final = attrgetter("seq_id")
_STRATEGY_ID: Final = attrgetter("payload.StrategyId")


def read_stream_head(data: bytes | str) -> tuple[Envelope, int] | None:
    """The frame's envelope with ``payload`` and ``raw`` left empty (``data`` keeps the
    frame), and its payload's ``StrategyId``; None unless the frame is plainly fine (see
    the module docstring).  Total: never raises."""
    if type(data) is not bytes or len(data) > _MAX_FRAME_BYTES or not data.isascii():
        return None
    try:
        head = _decode_head(data)
    except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError
        return None
    payload, seq_id = head.payload, head.seq_id
    if payload is None or seq_id is None or not _MIN_INT <= seq_id <= _MAX_INT:
        return None
    strategy_id = payload.StrategyId
    if strategy_id is None:
        return None
    return Envelope(
        head.msg_type, {}, head.id, seq_id, head.request_id, head.timestamp, head.v, {}, data
    ), strategy_id


def read_stream_heads(frames: Sequence[bytes | str]) -> list[_StreamHead] | None:
    """The headers of a burst of frames, read as :func:`read_stream_head` reads each, in a
    few calls for the whole burst; None unless every frame is bytes, within the size
    bound, ASCII, without line breaks (CR or LF) and valid JSON with a header of the usual
    types (then the caller takes them one by one).  What else read_stream_head requires
    of a frame (a payload, a seq_id in range, an integer StrategyId) the caller checks on
    the headers.  Total: never raises."""
    if not frames:
        return None
    kind = text_kind(frames if type(frames) is list else list(frames))  # type: ignore[arg-type]
    if kind != _ONE_LINE or max(map(len, frames)) > _MAX_FRAME_BYTES:
        return None
    try:
        return list(map(_decode_head, frames))
    except (msgspec.DecodeError, RecursionError):
        return None


def run_of_heads(heads: list[_StreamHead]) -> RunSummary | None:
    """What :func:`c2ws.speedups.run_summary` finds, read from the headers of a burst:
    the stream's msg_type and strategy id, the first seq_id and the last header's
    timestamp, when every header is of the same stream (msg_type and integer StrategyId)
    and the seq_ids follow one another from an integer in range; None otherwise."""
    try:
        strategy_ids = set(map(_STRATEGY_ID, heads))
    except AttributeError:  # a frame without a payload object
        return None
    msg_types = set(map(_MSG_TYPE, heads))
    if len(strategy_ids) != 1 or len(msg_types) != 1:
        return None
    (strategy_id,), (msg_type,) = strategy_ids, msg_types
    seq_ids = list(map(_SEQ_ID, heads))
    first = seq_ids[0]
    if type(strategy_id) is not int or type(first) is not int:
        return None
    last = first + len(seq_ids) - 1
    if first < _MIN_INT or last > _MAX_INT or seq_ids != list(range(first, last + 1)):
        return None
    return msg_type, strategy_id, first, heads[-1].timestamp


def read_burst_heads(ndjson: bytes, count: int) -> list[_StreamHead] | None:
    """The headers of ``count`` frames given as the lines of ``ndjson``, as
    :func:`c2ws.speedups.ndjson_burst` cuts them (each line a frame of at most 64 KiB,
    ASCII, a JSON object's braces at both ends): read as :func:`read_stream_heads` reads
    them, in one call.  That call reads whitespace-separated JSON values, not lines, but
    on such lines it is the same: no string spans a line break (JSON forbids a raw one
    in a string), so each line's closing brace closes a value; the next line opens one
    with its brace, which no open object or array would accept; each line is therefore
    one value or more, and ``count`` values mean exactly one each (else None).  Total:
    never raises."""
    try:
        heads = _decode_lines(ndjson)
    except (msgspec.DecodeError, RecursionError):
        return None
    return heads if len(heads) == count else None
