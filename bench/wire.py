"""What the feed server puts on the wire, and what the harness looks for in a client's output.

Stdlib only: the feed server and the harness both import it, and neither may depend on
the package under test.

Every stream message is a ``strategy.signal`` envelope of 400-1200 bytes whose payload
mirrors C2's ``OrderStatusDTO`` (the shape ``c2ws/server/feed.py`` publishes, see
shared/reference/c2-ws-protocol.md "Likely payload shapes"), plus one bench field:

* ``BenchSentNs``: a 19-digit string, CLOCK_MONOTONIC nanoseconds at the server's send in
  the paced (latency) mode, all zeros otherwise.  A fixed-width string so the server can
  stamp a pre-encoded frame in place, and the harness can find it with one regex in any
  client's output (NDJSON, a raw echo, a ``< `` prefix) without parsing JSON.

The last message of a stream names the symbol ``END_MARKER``, so the harness can tell
when a client that prints no JSON (the table renderer) has shown the whole stream.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import struct
import time
from array import array
from dataclasses import dataclass
from typing import Any, Final

STAMP_FIELD: Final = "BenchSentNs"
STAMP_WIDTH: Final = 19
STAMP_PLACEHOLDER: Final = b"0" * STAMP_WIDTH
STAMP_KEY: Final = b'"BenchSentNs":"'
# Tolerates a space after the colon, in case a client re-encodes with json.dumps defaults.
STAMP_PATTERN: Final = re.compile(rb'"BenchSentNs": ?"(\d{19})"')
COUNT_TOKEN: Final = b'"BenchSentNs"'
END_MARKER: Final = b"ZZEND"

MIN_ENVELOPE_BYTES: Final = 400
MAX_ENVELOPE_BYTES: Final = 1200
PAYLOAD_POOL_SIZE: Final = 1000

WS_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION: Final = 0x0
OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA

HEARTBEAT_TYPE: Final = b'"msg_type":"heartbeat"'
# How the peers tell a heartbeat without parsing JSON: the quoted name within a frame's
# first bytes (msg_type leads every server envelope; "heartbeat.ack" is never sent by a
# server; a stream message starts with {"msg_type":"strategy.signal"...).
HEARTBEAT_NAME: Final = b'"heartbeat"'
HEARTBEAT_HEAD_BYTES: Final = 48


def utc_stamp(now: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now is None else now))


def accept_key(client_key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(client_key.strip() + WS_GUID).digest())


def server_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """An unmasked, final server frame."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, length)
    return header + payload


def masked_frame(payload: bytes, opcode: int = OP_TEXT, mask: bytes = b"\x11\x22\x33\x44") -> bytes:
    """A client frame (clients must mask), for the discard reader's subscription."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return header + mask + masked


@dataclass(frozen=True, slots=True)
class ClientFrame:
    opcode: int
    payload: bytes


class ClientFrameReader:
    """Incremental parser of masked client frames (low volume: acks and requests)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self._fragment_opcode = OP_TEXT

    def feed(self, data: bytes) -> list[ClientFrame]:
        self._buffer += data
        frames: list[ClientFrame] = []
        while True:
            parsed = self._next()
            if parsed is None:
                return frames
            frames.append(parsed)

    def _next(self) -> ClientFrame | None:
        while True:
            buffer = self._buffer
            if len(buffer) < 2:
                return None
            first, second = buffer[0], buffer[1]
            length = second & 0x7F
            offset = 2
            if length == 126:
                if len(buffer) < 4:
                    return None
                length = struct.unpack_from("!H", buffer, 2)[0]
                offset = 4
            elif length == 127:
                if len(buffer) < 10:
                    return None
                length = struct.unpack_from("!Q", buffer, 2)[0]
                offset = 10
            mask = b""
            if second & 0x80:
                if len(buffer) < offset + 4:
                    return None
                mask = bytes(buffer[offset : offset + 4])
                offset += 4
            if len(buffer) < offset + length:
                return None
            data = bytes(buffer[offset : offset + length])
            del buffer[: offset + length]
            if mask:
                data = _unmask(data, mask)
            fin, opcode = bool(first & 0x80), first & 0x0F
            if opcode >= OP_CLOSE:  # control frames are never fragmented
                return ClientFrame(opcode, data)
            if opcode != OP_CONTINUATION:
                self._fragment_opcode = opcode
            self._fragments.append(data)
            if fin:
                whole = b"".join(self._fragments)
                self._fragments = []
                return ClientFrame(self._fragment_opcode, whole)


def _unmask(data: bytes, mask: bytes) -> bytes:
    repeated = (mask * (len(data) // 4 + 1))[: len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(data), "big"
    )


# --- stream content -------------------------------------------------------------------

_NAMES: Final = (
    "Alpha Momentum",
    "Index Mean Reversion",
    "Global Macro FX",
    "Tech Swing",
    "Commodity Trend",
    "Volatility Harvest",
    "Overnight Gap Fader ES",
    "Quiet Carry",
)
_INSTRUMENTS: Final = (
    # FullSymbol, SymbolType, Underlying, Description, Expiry, Exchange, SecType, Ccy, Mult
    ("@ESZ6", "future", "ES", "E-mini S&P 500 Dec 2026", "202612", "CME", "FUT", "USD", 50),
    ("@NQZ6", "future", "NQ", "E-mini Nasdaq-100 Dec 2026", "202612", "CME", "FUT", "USD", 20),
    ("@CLF7", "future", "CL", "Crude Oil WTI Jan 2027", "202701", "NYMEX", "FUT", "USD", 1000),
    ("@GCG7", "future", "GC", "Gold Feb 2027", "202702", "COMEX", "FUT", "USD", 100),
    ("AAPL", "stock", "AAPL", "Apple Inc.", None, "NASDAQ", "STK", "USD", 1),
    ("MSFT", "stock", "MSFT", "Microsoft Corporation", None, "NASDAQ", "STK", "USD", 1),
    ("NVDA", "stock", "NVDA", "NVIDIA Corporation", None, "NASDAQ", "STK", "USD", 1),
    ("EURUSD", "forex", "EUR", "Euro / US Dollar", None, "IDEALPRO", "CASH", "USD", 1),
    ("USDJPY", "forex", "USD", "US Dollar / Japanese Yen", None, "IDEALPRO", "CASH", "JPY", 1),
)
_WORDS: Final = (
    "order",
    "replaced",
    "by",
    "strategy",
    "manager",
    "trailing",
    "stop",
    "adjusted",
    "after",
    "partial",
    "fill",
    "at",
    "exchange",
    "session",
    "close",
    "risk",
    "limit",
    "reached",
)


def _order_payload(
    rng: random.Random, strategy_id: int, symbol_override: str | None
) -> dict[str, Any]:
    symbol, kind, underlying, description, expiry, exchange, sec_type, currency, mult = rng.choice(
        _INSTRUMENTS
    )
    if symbol_override is not None:
        symbol = underlying = symbol_override
    price = round(rng.uniform(1.0, 25_000.0), 2)
    order_type = rng.choice(("1", "2", "3"))
    status = rng.choice(("0", "2", "2", "4"))
    quantity = rng.choice((1, 2, 5, 10, 100, 25_000))
    return {
        "StrategyId": strategy_id,
        "StrategyName": rng.choice(_NAMES),
        "SignalId": rng.randrange(150_000_000, 160_000_000),
        "OrderId": rng.randrange(7_000_000_000, 7_100_000_000),
        "OrderType": order_type,
        "Side": rng.choice(("1", "2")),
        "OpenClose": rng.choice(("O", "C")),
        "OrderQuantity": quantity,
        "Limit": price if order_type == "2" else None,
        "Stop": price if order_type == "3" else None,
        "TIF": rng.choice(("0", "1")),
        "ProfitTarget": None,
        "StopLoss": None,
        "ParentSignalId": None,
        "CancelReplaceSignalId": None,
        "OrderStatus": status,
        "FilledQuantity": quantity if status == "2" else 0,
        "AvgFillPrice": price if status == "2" else None,
        "PostedDate": utc_stamp(),
        "SignalType": rng.choice((1, 1, 1, 4)),
        "C2Symbol": {
            "FullSymbol": symbol,
            "SymbolType": kind,
            "Underlying": underlying,
            "Expiry": expiry,
            "PutOrCall": None,
            "StrikePrice": None,
            "Description": description,
        },
        "ExchangeSymbol": {
            "Symbol": underlying,
            "Currency": currency,
            "SecurityExchange": exchange,
            "SecurityType": sec_type,
            "MaturityMonthYear": expiry,
            "PutOrCall": None,
            "StrikePrice": None,
            "PriceMultiplier": mult,
        },
        "RejectMessage": None,
        "Info": None,
        STAMP_FIELD: STAMP_PLACEHOLDER.decode(),
    }


# Dropped in this order until a payload fits its drawn size: the REST objects carry every
# key, a terser feed would omit the nulls and the nested details first.
_SHRINK_ORDER: Final = (
    ("ExchangeSymbol",),
    ("ProfitTarget",),
    ("StopLoss",),
    ("ParentSignalId",),
    ("CancelReplaceSignalId",),
    ("RejectMessage",),
    ("Info",),
    ("C2Symbol", "Description"),
    ("C2Symbol", "PutOrCall"),
    ("C2Symbol", "StrikePrice"),
    ("C2Symbol", "Expiry"),
    ("Stop",),
    ("Limit",),
    ("AvgFillPrice",),
    ("SignalType",),
    ("PostedDate",),
)


def _encode(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def envelope_prefix(seq_id: int, timestamp: str) -> bytes:
    return (
        b'{"msg_type":"strategy.signal","id":"msg_%032x","seq_id":%d,"timestamp":"%s","v":4,'
        b'"payload":' % (seq_id, seq_id, timestamp.encode())
    )


ENVELOPE_OVERHEAD: Final = len(envelope_prefix(10**6, utc_stamp())) + 1  # + closing brace


def payload_pool(
    strategy_id: int, size: int = PAYLOAD_POOL_SIZE, seed: int = 15, end_symbol: str | None = None
) -> list[bytes]:
    """Encoded payloads whose envelopes spread evenly over 400-1200 bytes."""
    rng = random.Random(seed)
    pool: list[bytes] = []
    for _ in range(size):
        target = rng.randint(MIN_ENVELOPE_BYTES, MAX_ENVELOPE_BYTES) - ENVELOPE_OVERHEAD
        payload = _order_payload(rng, strategy_id, end_symbol)
        encoded = _encode(payload)
        for path in _SHRINK_ORDER:
            if len(encoded) <= target:
                break
            holder = payload if len(path) == 1 else payload[path[0]]
            if holder.get(path[-1], 0) is None or path[0] in ("ExchangeSymbol", "C2Symbol"):
                holder.pop(path[-1], None)
                encoded = _encode(payload)
        if len(encoded) < target:
            words: list[str] = []
            while len(encoded) < target:
                words.append(rng.choice(_WORDS))
                payload["Info"] = " ".join(words)
                encoded = _encode(payload)
        pool.append(encoded)
    return pool


@dataclass(frozen=True, slots=True)
class Stream:
    """``count`` pre-encoded frames: one blob, the frame boundaries, where each stamp is."""

    blob: bytes
    boundaries: array[int]  # offset where frame i starts; one more entry: len(blob)
    stamp_offsets: array[int]  # absolute offset of frame i's stamp digits in blob
    envelope_bytes: int  # sum of the frames' text (what a client prints, give or take)


def build_stream(count: int, strategy_id: int) -> Stream:
    pool = payload_pool(strategy_id)
    end_payload = payload_pool(strategy_id, size=1, seed=16, end_symbol=END_MARKER.decode())[0]
    timestamp = utc_stamp()
    frames: list[bytes] = []
    boundaries: array[int] = array("Q")
    stamp_offsets: array[int] = array("Q")
    position = envelope_bytes = 0
    for index in range(count):
        payload = end_payload if index == count - 1 else pool[index % len(pool)]
        text = envelope_prefix(index + 1, timestamp) + payload + b"}"
        frame = server_frame(text)
        boundaries.append(position)
        stamp_at = frame.index(STAMP_KEY, len(frame) - len(text)) + len(STAMP_KEY)
        stamp_offsets.append(position + stamp_at)
        frames.append(frame)
        position += len(frame)
        envelope_bytes += len(text)
    boundaries.append(position)
    return Stream(b"".join(frames), boundaries, stamp_offsets, envelope_bytes)


def control_message(msg_type: str, number: int, **fields: object) -> bytes:
    envelope: dict[str, object] = {
        "msg_type": msg_type,
        "id": f"msg_{number:032x}",
        "timestamp": utc_stamp(),
        "v": 4,
    }
    envelope.update(fields)
    return _encode(envelope)


def subscription_request(strategy_id: int, request_id: str = "bench-1") -> bytes:
    return _encode(
        {
            "msg_type": "subscription.request",
            "request_id": request_id,
            "timestamp": utc_stamp(),
            "payload": {
                "action": "subscribe",
                "channel": "strategy.signal",
                "strategy_id": strategy_id,
            },
        }
    )


def heartbeat_ack() -> bytes:
    return _encode({"msg_type": "heartbeat.ack", "timestamp": utc_stamp()})
