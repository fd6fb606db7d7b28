"""The recording format (``--record FILE``): NDJSON, one JSON object per line, appended.

A run starts with a header line, then one line per frame received, exactly as it
arrived, with its receive time and connection, a line when a connection ends, and a line
for each positions snapshot taken from the REST API (so that a replay shows it too)::

    {"c2ws_recording":1,"started_at":"2026-11-02T14:30:00.000000Z","url":"wss://…/ws",
     "per_connection":100,"subscriptions":[{"strategy_id":12345678,"channel":"strategy.signal"}]}
    {"at":"2026-11-02T14:30:00.181234Z","connection":1,"frame":"{\"msg_type\":\"connection.connected\",…}"}
    {"at":"2026-11-02T14:31:12.004519Z","connection":1,"ended":"lost","detail":"connection lost: …"}
    {"at":"2026-11-02T14:31:14.120000Z","snapshot":{"msg_type":"positions.snapshot",…}}

``frame`` is the frame's text; a frame that is not UTF-8 is kept as ``frame_base64``.
Read back, a frame is its bytes either way (the text's UTF-8), exactly as it arrived.
Times are UTC with microseconds; ``connection`` counts from 1 (as stderr does).  The
header lists the subscriptions asked for, in order, so a replay can tell which request
each answer belongs to.  Readers also accept plain NDJSON output of c2ws (one envelope
per line): each such line is a :class:`BareMessage`.

Reading is total and bounded: any line is an entry, :class:`Unusable` when it is none
of the above, and a line longer than ``spec.RECORDING_MAX_LINE_BYTES`` is skipped
without being held in memory.
"""

from __future__ import annotations

import base64
import binascii
import datetime
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Final

import orjson

from c2ws import protocol, spec
from c2ws.events import SubscriptionKey

FORMAT_VERSION: Final = 1
HEADER_KEY: Final = "c2ws_recording"
_READ_CHUNK: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class RecordingHeader:
    keys: tuple[SubscriptionKey, ...]
    per_connection: int = spec.MAX_SUBSCRIPTIONS_PER_CONNECTION
    url: str = ""
    started_at: float | None = None


@dataclass(frozen=True, slots=True)
class RecordedFrame:
    at: float | None
    connection: int
    data: bytes | str


@dataclass(frozen=True, slots=True)
class RecordedEnd:
    at: float | None
    connection: int
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class RecordedSnapshot:
    """A positions snapshot the run took from the REST API: its ``positions.snapshot``
    line's object (strategy_id, timestamp, payload: the PositionDTO objects)."""

    at: float | None
    strategy_id: int
    positions: tuple[dict[str, object], ...]
    taken_at: str
    obj: dict[str, object]


@dataclass(frozen=True, slots=True)
class BareMessage:
    """A line that is an envelope itself (``c2ws subscribe -o ndjson`` output)."""

    data: bytes
    at: float | None


@dataclass(frozen=True, slots=True)
class Unusable:
    reason: str


Entry = RecordingHeader | RecordedFrame | RecordedEnd | RecordedSnapshot | BareMessage | Unusable


# --- writing --------------------------------------------------------------------------


def format_time(epoch: float) -> str:
    instant = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    return instant.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def header_line(
    keys: Iterable[SubscriptionKey], *, per_connection: int, url: str, started_at: float
) -> bytes:
    return orjson.dumps({
        HEADER_KEY: FORMAT_VERSION,
        "started_at": format_time(started_at),
        "url": url,
        "per_connection": per_connection,
        "subscriptions": [{"strategy_id": k.strategy_id, "channel": k.channel} for k in keys],
    }, option=orjson.OPT_APPEND_NEWLINE)


def frame_line(data: bytes | str, *, at: float, connection: int) -> bytes:
    line: dict[str, object] = {"at": format_time(at), "connection": connection}
    if isinstance(data, str):
        line["frame"] = data
    else:
        try:
            line["frame"] = data.decode("utf-8")
        except UnicodeDecodeError:
            line["frame_base64"] = base64.b64encode(data).decode("ascii")
    return orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE)


def snapshot_line(obj: object, *, at: float) -> bytes:
    """A positions snapshot's line object (see :class:`RecordedSnapshot`), recorded."""
    return orjson.dumps({"at": format_time(at), "snapshot": obj},
                        option=orjson.OPT_APPEND_NEWLINE)


def end_line(reason: str, detail: str, *, at: float, connection: int) -> bytes:
    return orjson.dumps({"at": format_time(at), "connection": connection, "ended": reason,
                         "detail": detail}, option=orjson.OPT_APPEND_NEWLINE)


# --- reading --------------------------------------------------------------------------


def _connection(value: object) -> int:
    number = protocol.parse_int(value)
    return number if number is not None and number >= 1 else 1


def _header(obj: dict[str, object]) -> Entry:
    if obj.get(HEADER_KEY) != FORMAT_VERSION:
        return Unusable(f"a recording header of an unknown version {obj.get(HEADER_KEY)!r:.20}")
    subscriptions = obj.get("subscriptions")
    if not isinstance(subscriptions, list):
        return Unusable("a recording header without its subscriptions")
    keys: list[SubscriptionKey] = []
    for item in subscriptions[: spec.MAX_SUBSCRIPTIONS_PER_KEY]:
        if not isinstance(item, dict):
            return Unusable("a recording header with a bad subscription")
        strategy_id = protocol.parse_int(item.get("strategy_id"))
        channel = item.get("channel")
        if (strategy_id is None or strategy_id <= 0 or not isinstance(channel, str)
                or channel not in spec.STREAM_MSG_TYPES):
            return Unusable("a recording header with a bad subscription")
        keys.append(SubscriptionKey(strategy_id, channel))
    per_connection = protocol.parse_int(obj.get("per_connection"))
    url = obj.get("url")
    return RecordingHeader(
        keys=tuple(keys),
        per_connection=per_connection if per_connection is not None and per_connection > 0
        else spec.MAX_SUBSCRIPTIONS_PER_CONNECTION,
        url=url if isinstance(url, str) else "",
        started_at=protocol.parse_timestamp(obj.get("started_at")),
    )


def parse_line(line: bytes) -> Entry | None:
    """One line of a recording (None for a blank line)."""
    if not line.strip():
        return None
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return Unusable("not JSON")
    if not isinstance(obj, dict):
        return Unusable("not a JSON object")
    if HEADER_KEY in obj:
        return _header(obj)
    at = protocol.parse_timestamp(obj.get("at"))
    if "frame" in obj or "frame_base64" in obj:
        frame = obj.get("frame")
        if isinstance(frame, str):
            # The frame's bytes as they arrived (a text frame is UTF-8, and orjson refuses
            # the lone surrogates that could not be encoded back): a replay hands them on
            # byte for byte, as the live run did, never re-encoded.
            return RecordedFrame(at, _connection(obj.get("connection")), frame.encode())
        encoded = obj.get("frame_base64")
        if isinstance(encoded, str):
            try:
                data = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                return Unusable("frame_base64 is not base64")
            return RecordedFrame(at, _connection(obj.get("connection")), data)
        return Unusable("a frame that is not text")
    if "ended" in obj:
        reason, detail = obj.get("ended"), obj.get("detail")
        return RecordedEnd(at, _connection(obj.get("connection")),
                           reason if isinstance(reason, str) else "",
                           detail if isinstance(detail, str) else "")
    if "snapshot" in obj:
        return _snapshot(at, obj["snapshot"])
    if isinstance(obj.get("msg_type"), str):
        # Only the line's end is cut: the rest is the frame as c2ws wrote it, spaces
        # included, and is written again as it is.
        return BareMessage(line.rstrip(b"\r\n"), protocol.parse_timestamp(obj.get("timestamp")))
    return Unusable("neither a recorded frame nor a c2ws envelope")


def _snapshot(at: float | None, snapshot: object) -> Entry:
    if not isinstance(snapshot, dict):
        return Unusable("a snapshot that is not an object")
    strategy_id = protocol.parse_int(snapshot.get("strategy_id"))
    positions, taken_at = snapshot.get("payload"), snapshot.get("timestamp")
    if (strategy_id is None or strategy_id <= 0 or not isinstance(taken_at, str)
            or not isinstance(positions, list)
            or not all(isinstance(item, dict) for item in positions)):
        return Unusable("a snapshot without its strategy, time or positions")
    return RecordedSnapshot(at, strategy_id, tuple(positions), taken_at, snapshot)


def bounded_lines(stream: IO[bytes], limit: int) -> Iterator[bytes | None]:
    """The lines of a binary file; None for a line longer than ``limit`` bytes, which is
    skipped without being held in memory."""
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) <= limit or line.endswith(b"\n"):
            yield line
            continue
        while line and not line.endswith(b"\n"):
            line = stream.readline(_READ_CHUNK)
        yield None


def read_entries(stream: IO[bytes]) -> Iterator[Entry]:
    """Every entry of a recording (or plain NDJSON output) in file order; blank lines are
    left out.  OSError from the stream propagates."""
    limit = spec.RECORDING_MAX_LINE_BYTES
    for line in bounded_lines(stream, limit):
        if line is None:
            yield Unusable(f"a line longer than {limit} bytes")
            continue
        entry = parse_line(line)
        if entry is not None:
            yield entry
