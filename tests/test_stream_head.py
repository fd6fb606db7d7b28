"""Reading a stream frame's header without its payload (c2ws.stream_head): the same
header fields as the full decode, for exactly the frames that are plainly fine, and
never a frame that is not valid JSON."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from json_strategies import json_values

from c2ws import protocol, spec
from c2ws.stream_head import read_stream_head

HEADER_FIELDS = ("msg_type", "id", "seq_id", "request_id", "timestamp", "v")


def order_frame(**overrides: Any) -> bytes:
    envelope: dict[str, Any] = {
        "msg_type": spec.CHANNEL_SIGNAL, "id": "msg_0001", "seq_id": 41,
        "timestamp": "2027-01-15T08:00:00Z", "v": 4,
        "payload": {"StrategyId": 12345678, "Side": "1", "Quantity": 2.5,
                    "C2Symbol": {"FullSymbol": "@ESZ6", "SymbolType": "future"},
                    "Notes": None, "Fills": [{"Price": 4012.25, "Qty": 1}]},
    }
    envelope.update(overrides)
    return orjson.dumps(envelope)


def header_of(message: protocol.Envelope) -> tuple[Any, ...]:
    return tuple(getattr(message, name) for name in HEADER_FIELDS)


@pytest.mark.parametrize("data", [
    order_frame(),
    order_frame().replace(b",", b",\n ").replace(b"{\"", b"{\r\n \""),  # whitespace only
])
def test_an_order_frame_gives_the_full_decodes_header_and_keeps_its_bytes(data: bytes) -> None:
    head = read_stream_head(data)
    assert head is not None
    message, strategy_id = head
    full = protocol.decode(data)
    assert header_of(message) == header_of(full)
    assert strategy_id == 12345678
    assert message.data is data
    assert message.payload == {} and message.raw == {}


@pytest.mark.parametrize(("why", "data"), [
    ("text, not bytes", order_frame().decode()),
    ("not ASCII (msgspec does not check skipped UTF-8)", order_frame(id="msg_é")),
    ("invalid UTF-8 in a skipped string", order_frame().replace(b"future", b"fut\xff\xfe")),
    ("over the size bound", order_frame(pad="x" * spec.MAX_FRAME_BYTES)),
    ("not JSON", b'{"msg_type": "strategy.signal", nope'),
    ("trailing bytes", order_frame() + b" x"),
    ("an invalid escape in a skipped string", order_frame().replace(b"future", b"fu\\qture")),
    ("a control character in a skipped string", order_frame().replace(b"future", b"fu\x01")),
    ("NaN in a skipped field", order_frame().replace(b"2.5", b"NaN")),
    ("a leading zero in a skipped number", order_frame().replace(b"2.5", b"02.5")),
    ("no seq_id", order_frame(seq_id=None)),
    ("seq_id a float", order_frame(seq_id=41.0)),
    ("seq_id a bool", order_frame(seq_id=True)),
    ("seq_id out of range", order_frame(seq_id=spec.MAX_WIRE_INT + 1)),
    ("StrategyId a string", order_frame(payload={"StrategyId": "12345678"})),
    ("no StrategyId", order_frame(payload={"strategy_id": 12345678})),
    ("payload null", order_frame(payload=None)),
    ("payload a list", order_frame(payload=[1])),
    ("msg_type a number", order_frame(msg_type=5)),
    ("timestamp a number", order_frame(timestamp=5)),
    ("v a bool", order_frame(v=False)),
    ("nested too deep", b'{"msg_type":"strategy.signal","x":' + b"[" * 5000 + b"]" * 5000 + b"}"),
    ("not an object", b"[1, 2]"),
])
def test_anything_not_plainly_fine_is_left_to_the_full_decode(why: str, data: bytes | str) -> None:
    assert read_stream_head(data) is None, why


# Mostly the usual types (so frames are read), sometimes anything at all.
usual_header = {
    "msg_type": st.sampled_from([spec.CHANNEL_SIGNAL, spec.CHANNEL_POSITIONS, "heartbeat", ""]),
    "id": st.text(max_size=8),
    "seq_id": st.integers(min_value=-(2**66), max_value=2**66),
    "request_id": st.text(max_size=8),
    "timestamp": st.sampled_from(["2027-01-15T08:00:00Z", "yesterday"]),
    "v": st.one_of(st.integers(-5, 5), st.text(max_size=3)),
}


@st.composite
def envelopes(draw: st.DrawFn) -> dict[str, Any]:
    envelope: dict[str, Any] = {}
    for name, usual in usual_header.items():
        odds = draw(st.integers(0, 9))
        if odds == 0:
            continue  # absent
        envelope[name] = draw(json_values if odds == 1 else usual)
    payload = draw(st.dictionaries(st.text(max_size=6), json_values, max_size=3))
    if draw(st.integers(0, 9)):
        payload["StrategyId"] = draw(
            json_values if draw(st.integers(0, 9)) == 0 else st.integers(1, 10**9)
        )
    envelope["payload"] = payload if draw(st.integers(0, 9)) else draw(json_values)
    if draw(st.booleans()):
        envelope["extra"] = draw(json_values)
    return envelope


@settings(max_examples=400)
@given(envelopes(), st.booleans())
def test_whatever_it_reads_the_full_decode_reads_the_same(
    envelope: dict[str, Any], ascii_only: bool
) -> None:
    # The standard library's encoder: integers beyond 64 bits, escaped or raw non-ASCII.
    data = json.dumps(envelope, separators=(",", ":"), ensure_ascii=ascii_only).encode()
    head = read_stream_head(data)
    if head is None:
        return
    message, strategy_id = head
    full = protocol.decode(data)
    assert header_of(message) == header_of(full)
    assert strategy_id == full.payload["StrategyId"]
    assert message.data is data


@given(st.data())
def test_on_any_bytes_it_never_raises_and_reads_only_valid_json(data: st.DataObject) -> None:
    frame = bytearray(order_frame())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(frame)))
        cut = data.draw(st.integers(0, 3))
        frame[at:at + cut] = data.draw(st.binary(max_size=3))
    raw = bytes(frame)
    head = read_stream_head(raw)
    if head is None:
        return
    # The standard library's strict RFC 8259 parser agrees: valid JSON, same header.
    parsed = json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
    message, strategy_id = head
    assert header_of(message) == tuple(parsed.get(name) for name in HEADER_FIELDS)
    assert strategy_id == parsed["payload"]["StrategyId"]


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


@pytest.mark.parametrize("version", [-(2**63) - 1, 2**64, 2**70])
def test_a_version_beyond_64_bits_is_left_to_the_full_decoder(version: int) -> None:
    # orjson reads such an integer as a float, which the envelope refuses: the header
    # reader must not accept what the full decoder calls malformed (found by hypothesis).
    data = json.dumps({"msg_type": "strategy.signal", "seq_id": 1, "v": version,
                       "payload": {"StrategyId": 5}}, separators=(",", ":")).encode()
    assert read_stream_head(data) is None
    with pytest.raises(protocol.MalformedMessage):
        protocol.decode(data)
