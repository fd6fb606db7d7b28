"""One definition of every C2 WebSocket message: encode, decode, validate.

Pure functions and small immutable classes, no I/O.  The client session and the
reference server both build and check messages only through this module.
"""

from __future__ import annotations

import calendar
import datetime
import re
import time
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from c2ws import spec

JsonObject = dict[str, Any]


class MalformedMessage(ValueError):
    """A frame that is not a valid C2 envelope (bad JSON, bad UTF-8, wrong field types)."""


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """One entry of an ``error`` message: top-level fields or one item of ``errors``."""

    code: str
    message: str
    field: str | None = None

    def to_json(self) -> JsonObject:
        return {"code": self.code, "field": self.field, "message": self.message}


# Not frozen: one is built per message received, and a frozen dataclass costs three times
# as much to build.  Treat it as immutable all the same.
@dataclass(slots=True)
class Envelope:
    """A decoded message.  ``raw`` is the object exactly as it arrived, unknown keys
    included; ``data`` the frame it was decoded from, byte for byte (None when built by
    hand)."""

    msg_type: str
    payload: JsonObject
    id: str | None = None
    seq_id: int | None = None
    request_id: str | None = None
    timestamp: str | None = None
    v: int | str | None = None
    raw: JsonObject = field(default_factory=dict, compare=False, repr=False)
    data: bytes | str | None = field(default=None, compare=False, repr=False)


# --- timestamps -------------------------------------------------------------------

# ASCII digits only ([0-9], not \d, which also matches fullwidth or Arabic-Indic
# digits); matched in full, so a trailing newline is no timestamp either.
_TIMESTAMP_RE: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?"
    r"(Z|[+-]00:?00)"
)
_MAX_TIMESTAMP_CHARS: Final = 40


def format_timestamp(epoch_seconds: float) -> str:
    """UTC ISO 8601 as the docs show it: ``2024-01-01T12:00:00Z``."""
    return time.strftime(spec.TIMESTAMP_FORMAT, time.gmtime(epoch_seconds))


def parse_timestamp(text: object) -> float | None:
    """Epoch seconds of a UTC ISO 8601 timestamp, or None when it is not one.

    Total: any value that is not such a string, or names no real instant (February 30,
    hour 24, second 60, year 0), is None.
    """
    parsed = _utc_instant(text)
    if parsed is None:
        return None
    instant, fraction = parsed
    return calendar.timegm(instant.utctimetuple()) + (float(fraction) if fraction else 0.0)


def parse_datetime(text: object) -> datetime.datetime | None:
    """The aware UTC ``datetime`` of a UTC ISO 8601 timestamp, or None when it is not one.

    Accepts exactly what :func:`parse_timestamp` accepts (total, never raises); a fraction
    finer than a microsecond is cut to whole microseconds, never rounded up into the next.
    """
    parsed = _utc_instant(text)
    if parsed is None:
        return None
    instant, fraction = parsed
    if not fraction:
        return instant
    return instant.replace(microsecond=int(fraction[1:7].ljust(6, "0")))


def _utc_instant(text: object) -> tuple[datetime.datetime, str | None] | None:
    """The whole seconds of a timestamp as an aware datetime, and its fraction's text
    (``.25``; None when it has none)."""
    if not isinstance(text, str) or len(text) > _MAX_TIMESTAMP_CHARS:
        return None
    match = _TIMESTAMP_RE.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    try:
        instant = datetime.datetime(
            year, month, day, hour, minute, second, tzinfo=datetime.timezone.utc
        )
    except ValueError:
        return None
    return instant, match.group(7)


# --- encode -----------------------------------------------------------------------


def encode(message: JsonObject) -> bytes:
    """Compact JSON bytes of a message object."""
    return orjson.dumps(message)


def envelope(
    msg_type: str,
    *,
    payload: JsonObject | None = None,
    message_id: str | None = None,
    seq_id: int | None = None,
    request_id: str | None = None,
    timestamp: str,
    version: int | None = None,
) -> JsonObject:
    """Build an envelope object; absent optional fields are left out, not sent as null."""
    message: JsonObject = {"msg_type": msg_type}
    if message_id is not None:
        message["id"] = message_id
    if seq_id is not None:
        message["seq_id"] = seq_id
    if request_id is not None:
        message["request_id"] = request_id
    message["timestamp"] = timestamp
    if version is not None:
        message["v"] = version
    if payload is not None:
        message["payload"] = payload
    return message


def resume_from_value(seq_id: int) -> str | int:
    """``resume_from`` as we send it (the documented type lives in spec)."""
    return str(seq_id) if spec.RESUME_FROM_AS_STRING else seq_id


def subscription_request(
    *,
    action: str,
    channel: str,
    strategy_id: int,
    request_id: str,
    timestamp: str,
    resume_from: int | None = None,
) -> JsonObject:
    payload: JsonObject = {"action": action, "channel": channel, "strategy_id": strategy_id}
    if resume_from is not None and resume_from > 0:
        payload["resume_from"] = resume_from_value(resume_from)
    return envelope(
        spec.MSG_SUBSCRIPTION_REQUEST, payload=payload, request_id=request_id, timestamp=timestamp
    )


def heartbeat_ack(*, timestamp: str) -> JsonObject:
    return envelope(spec.MSG_HEARTBEAT_ACK, timestamp=timestamp)


_HEARTBEAT_ACK_HEAD: Final = b'{"msg_type":"heartbeat.ack","timestamp":"'


def heartbeat_ack_bytes(wall: float) -> bytes:
    """``encode(heartbeat_ack(timestamp=format_timestamp(wall)))``, byte for byte (a
    test holds them together), in two C calls: the timestamp is ASCII digits and
    punctuation, which JSON holds as they are."""
    return b"%s%s\"}" % (
        _HEARTBEAT_ACK_HEAD, time.strftime(spec.TIMESTAMP_FORMAT, time.gmtime(wall)).encode()
    )


def server_message(
    msg_type: str,
    *,
    message_id: str,
    timestamp: str,
    payload: JsonObject | None = None,
    seq_id: int | None = None,
    request_id: str | None = None,
) -> JsonObject:
    """A server -> client envelope: always carries ``id`` and ``v``."""
    return envelope(
        msg_type,
        payload=payload,
        message_id=message_id,
        seq_id=seq_id,
        request_id=request_id,
        timestamp=timestamp,
        version=spec.PROTOCOL_VERSION,
    )


def error_payload(details: list[ErrorDetail]) -> JsonObject:
    """One error as top-level fields; several as an ``errors`` array, as the docs say."""
    if len(details) == 1:
        return details[0].to_json()
    return {"errors": [detail.to_json() for detail in details]}


def gap_payload(*, strategy_id: int, from_seq: int, message: str) -> JsonObject:
    """The ``gap`` payload exactly as the docs show it (strategy_id null, from a string)."""
    return {
        "strategy_id": None,
        "channel": f"{spec.CHANNEL_SIGNAL}:{strategy_id}",
        "from": str(from_seq),
        "message": message,
    }


# --- decode -----------------------------------------------------------------------


def _optional_str(obj: JsonObject, key: str) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise MalformedMessage(f"'{key}' must be a string, not {type(value).__name__}")


# An optional '-' and 1 to 19 ASCII digits, nothing around them (no '+', whitespace or
# '_', all of which int() would accept): the string form of a signed 64-bit integer.
_INT_TEXT_RE: Final = re.compile(r"-?[0-9]{1,19}")


def parse_int(value: object) -> int | None:
    """A signed 64-bit integer given as a JSON integer or its string form; else None.

    Total: never raises.  Accepted: an ``int`` (not a ``bool``) within
    ``spec.MIN_WIRE_INT``..``spec.MAX_WIRE_INT``; a ``str`` that is exactly an optional
    ``-`` followed by 1 to 19 ASCII digits (leading zeros allowed) with a value in that
    range.  Everything else is None: floats (even ``5.0``), ``"+5"``, ``" 5"``, ``"1_000"``,
    ``"--5"``, ``"5."``, non-ASCII digits (fullwidth, superscript, Arabic-Indic), empty
    or longer strings, ``None``, lists, objects.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _INT_TEXT_RE.fullmatch(value):
        number = int(value)
    else:
        return None
    return number if spec.MIN_WIRE_INT <= number <= spec.MAX_WIRE_INT else None


def strategy_id_of(payload: object) -> int | None:
    """The strategy a stream payload names (the envelope itself does not say).

    The first of ``spec.STRATEGY_ID_KEYS`` that holds a positive integer (see
    ``parse_int``); None when none does or ``payload`` is not an object.
    """
    if not isinstance(payload, dict):
        return None
    for key in spec.STRATEGY_ID_KEYS:
        value = parse_int(payload.get(key))
        if value is not None and value > 0:
            return value
    return None


def decode(data: bytes | str) -> Envelope:
    """Decode one text frame into an Envelope; raise MalformedMessage for anything else.

    MalformedMessage is the only exception, whatever ``data`` holds (or whatever type it
    is).  A str is limited to ``spec.MAX_FRAME_BYTES`` characters.
    """
    if not isinstance(data, (bytes, bytearray, memoryview, str)):
        raise MalformedMessage(f"a frame is bytes or text, not {type(data).__name__}")
    if len(data) > spec.MAX_FRAME_BYTES:
        raise MalformedMessage(f"frame of {len(data)} bytes exceeds {spec.MAX_FRAME_BYTES}")
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"not JSON: {exc}") from None
    if type(obj) is dict:
        # The common case, checked with as few calls as possible (it runs per message):
        # every field absent or of exactly its usual type.  Anything else takes the
        # slower path below, which accepts or refuses it with a reason.
        get = obj.get
        msg_type, payload, seq_id = get("msg_type"), get("payload"), get("seq_id")
        message_id, request_id, timestamp, version = (
            get("id"), get("request_id"), get("timestamp"), get("v")
        )
        if payload is None:
            payload = {}  # heartbeats and acks may carry none
        if (
            type(msg_type) is str and msg_type
            and type(payload) is dict
            and (seq_id is None or (type(seq_id) is int and _MIN_INT <= seq_id <= _MAX_INT))
            and (message_id is None or type(message_id) is str)
            and (request_id is None or type(request_id) is str)
            and (timestamp is None or type(timestamp) is str)
            and (version is None or type(version) is int or type(version) is str)
        ):
            return Envelope(
                msg_type, payload, message_id, seq_id, request_id, timestamp, version, obj, data
            )
    return _decode_checked(obj, data)


_MIN_INT: Final = spec.MIN_WIRE_INT
_MAX_INT: Final = spec.MAX_WIRE_INT


def is_heartbeat(data: bytes) -> bool:
    """``decode(data).msg_type == "heartbeat"`` (False where decode raises), without
    building the Envelope: the usual heartbeat takes decode's own checks of its common
    case, anything else decode's slower path (a hypothesis test holds the two together).
    """
    if len(data) > spec.MAX_FRAME_BYTES:
        return False
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    if type(obj) is not dict or obj.get("msg_type") != spec.MSG_HEARTBEAT:
        return False  # not a heartbeat, whether decode takes it or not
    get = obj.get
    payload, seq_id, version = get("payload"), get("seq_id"), get("v")
    message_id, request_id, timestamp = get("id"), get("request_id"), get("timestamp")
    if (
        (payload is None or type(payload) is dict)
        and (seq_id is None or (type(seq_id) is int and _MIN_INT <= seq_id <= _MAX_INT))
        and (message_id is None or type(message_id) is str)
        and (request_id is None or type(request_id) is str)
        and (timestamp is None or type(timestamp) is str)
        and (version is None or type(version) is int or type(version) is str)
    ):
        return True
    try:
        _decode_checked(obj, data)
    except MalformedMessage:
        return False
    return True


def _decode_checked(obj: object, data: bytes | str) -> Envelope:
    if not isinstance(obj, dict):
        raise MalformedMessage(f"envelope must be a JSON object, not {type(obj).__name__}")
    msg_type = obj.get("msg_type")
    if not isinstance(msg_type, str) or not msg_type:
        raise MalformedMessage("'msg_type' is missing or not a string")
    payload = obj.get("payload")
    if payload is None:
        payload = {}
    elif not isinstance(payload, dict):
        raise MalformedMessage(f"'payload' must be an object, not {type(payload).__name__}")
    raw_seq = obj.get("seq_id")
    seq_id = parse_int(raw_seq)
    if raw_seq is not None and seq_id is None:
        raise MalformedMessage(f"'seq_id' must be an integer, not {raw_seq!r:.40}")
    version = obj.get("v")
    if version is not None and (isinstance(version, bool) or not isinstance(version, (int, str))):
        raise MalformedMessage("'v' must be a number or a string")
    return Envelope(
        msg_type=msg_type,
        payload=payload,
        id=_optional_str(obj, "id"),
        seq_id=seq_id,
        request_id=_optional_str(obj, "request_id"),
        timestamp=_optional_str(obj, "timestamp"),
        v=version,
        raw=obj,
        data=data,
    )


def error_details(payload: object) -> list[ErrorDetail]:
    """Normalise an ``error`` payload (single or ``errors`` array) to a list.

    Total: fields of the wrong type read as ``code`` "UNKNOWN", ``message`` "" and
    ``field`` None; a payload that is not an object gives one such detail.  At most
    ``spec.MAX_ERROR_DETAILS`` details are returned.  Texts are not shortened here (a cut
    could split an echoed API key where redaction would no longer recognise it).
    """
    if not isinstance(payload, dict):
        return [ErrorDetail(code="UNKNOWN", message="")]
    items = payload.get("errors")
    sources = [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []
    if not sources:
        sources = [payload]
    details = []
    for item in sources[: spec.MAX_ERROR_DETAILS]:
        code = item.get("code")
        message = item.get("message")
        field_name = item.get("field")
        details.append(
            ErrorDetail(
                code=code if isinstance(code, str) else "UNKNOWN",
                message=message if isinstance(message, str) else "",
                field=field_name if isinstance(field_name, str) else None,
            )
        )
    return details


# --- validation of client requests (used by the server) ------------------------------


@dataclass(frozen=True, slots=True)
class SubscriptionRequest:
    action: str
    channel: str
    strategy_id: int
    request_id: str | None
    resume_from: int  # 0 = live only


def _invalid(field_name: str, message: str) -> ErrorDetail:
    return ErrorDetail(code=spec.ERROR_INVALID_PARAMETER, field=field_name, message=message)


def validate_subscription_request(
    message: Envelope, *, now: float
) -> SubscriptionRequest | list[ErrorDetail]:
    """Check a ``subscription.request`` as the server does; every problem is reported."""
    problems: list[ErrorDetail] = []
    request_id = message.request_id
    if request_id is not None and len(request_id) > spec.MAX_REQUEST_ID_LENGTH:
        problems.append(
            _invalid("RequestId", f"request_id longer than {spec.MAX_REQUEST_ID_LENGTH} characters")
        )
    sent_at = parse_timestamp(message.timestamp) if message.timestamp is not None else None
    if sent_at is None:
        problems.append(_invalid("Timestamp", "timestamp missing or not UTC ISO 8601"))
    elif abs(sent_at - now) > spec.MAX_CLOCK_SKEW_SECONDS:
        problems.append(_invalid("Timestamp", "timestamp is not within 1 minute of UTC"))
    payload = message.payload
    action = payload.get("action")
    if action not in spec.ACTIONS:
        problems.append(_invalid("Action", "action must be 'subscribe' or 'unsubscribe'"))
    channel = payload.get("channel")
    if channel not in spec.CHANNELS:
        problems.append(
            _invalid("Channel", "channel must be strategy.signal or strategy.positions")
        )
    strategy_id = payload.get("strategy_id")
    if isinstance(strategy_id, bool) or not isinstance(strategy_id, int) or strategy_id <= 0:
        problems.append(_invalid("StrategyId", "strategy_id must be a positive integer"))
    raw_resume = payload.get("resume_from")
    resume_from = 0
    if raw_resume is not None:
        parsed = parse_int(raw_resume)
        if parsed is None or parsed < 0:
            problems.append(_invalid("ResumeFrom", "resume_from must be a non-negative seq_id"))
        elif parsed > 0 and channel != spec.CHANNEL_SIGNAL:
            problems.append(_invalid("ResumeFrom", "resume_from applies to strategy.signal only"))
        else:
            resume_from = parsed
    if problems:
        return problems
    assert isinstance(action, str) and isinstance(channel, str) and isinstance(strategy_id, int)
    return SubscriptionRequest(
        action=action,
        channel=channel,
        strategy_id=strategy_id,
        request_id=request_id,
        resume_from=resume_from,
    )
