"""The shared message definitions: encode, decode, validate (no network)."""

from __future__ import annotations

import contextlib
import time

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from c2ws import protocol, spec
from c2ws.protocol import MalformedMessage


def request(**overrides: object) -> protocol.Envelope:
    message = protocol.subscription_request(
        action="subscribe",
        channel=spec.CHANNEL_SIGNAL,
        strategy_id=12345678,
        request_id="req-1",
        timestamp=protocol.format_timestamp(time.time()),
    )
    payload_overrides = {k: v for k, v in overrides.items() if k in ("action", "channel",
                                                                     "strategy_id", "resume_from")}
    message["payload"].update(payload_overrides)
    for key in ("request_id", "timestamp"):
        if key in overrides:
            message[key] = overrides[key]
    return protocol.decode(protocol.encode(message))


def test_subscription_request_matches_the_documented_shape() -> None:
    message = protocol.subscription_request(
        action="subscribe", channel="strategy.signal", strategy_id=12345678,
        request_id="my-sub-001", timestamp="2024-01-01T12:00:00Z", resume_from=98765,
    )
    assert message == {
        "msg_type": "subscription.request",
        "request_id": "my-sub-001",
        "timestamp": "2024-01-01T12:00:00Z",
        "payload": {"action": "subscribe", "channel": "strategy.signal",
                    "strategy_id": 12345678, "resume_from": "98765"},
    }


def test_resume_from_zero_is_left_out() -> None:
    message = protocol.subscription_request(
        action="subscribe", channel="strategy.signal", strategy_id=1,
        request_id="r", timestamp="2024-01-01T12:00:00Z", resume_from=0,
    )
    assert "resume_from" not in message["payload"]


def test_timestamps_round_trip_and_reject_non_utc() -> None:
    assert protocol.format_timestamp(1704110400) == "2024-01-01T12:00:00Z"
    assert protocol.parse_timestamp("2024-01-01T12:00:00Z") == 1704110400
    assert protocol.parse_timestamp("2024-01-01T12:00:00.5+00:00") == 1704110400.5
    assert protocol.parse_timestamp("2024-01-01T12:00:00+02:00") is None
    assert protocol.parse_timestamp("2024-13-45T99:00:00Z") is None
    assert protocol.parse_timestamp("yesterday") is None


def test_decode_keeps_unknown_fields_in_raw() -> None:
    message = protocol.decode(b'{"msg_type":"strategy.signal","seq_id":7,"extra":[1],"v":"4"}')
    assert message.seq_id == 7
    assert message.v == "4"
    assert message.payload == {}
    assert message.raw["extra"] == [1]


@pytest.mark.parametrize(
    "frame",
    [
        b"not json",
        b"[1,2]",
        b'{"payload":{}}',
        b'{"msg_type":5}',
        b'{"msg_type":""}',
        b'{"msg_type":"x","payload":[]}',
        b'{"msg_type":"x","seq_id":"abc"}',
        b'{"msg_type":"x","seq_id":true}',
        b'{"msg_type":"x","id":5}',
        b'{"msg_type":"x","v":{}}',
        b'{"msg_type":"\xff\xfe"}',
        b"",
    ],
)
def test_decode_rejects_what_is_not_an_envelope(frame: bytes) -> None:
    with pytest.raises(MalformedMessage):
        protocol.decode(frame)


def test_decode_refuses_oversized_frames_before_parsing() -> None:
    with pytest.raises(MalformedMessage, match="exceeds"):
        protocol.decode(b" " * (spec.MAX_FRAME_BYTES + 1))


@given(st.binary(max_size=300))
def test_decode_raises_only_malformed_message(data: bytes) -> None:
    with contextlib.suppress(MalformedMessage):
        protocol.decode(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=10,
)


@given(st.dictionaries(st.sampled_from(["msg_type", "id", "seq_id", "request_id", "timestamp",
                                        "v", "payload", "other"]), json_values))
def test_decode_of_any_json_object_raises_only_malformed_message(obj: dict[str, object]) -> None:
    try:
        message = protocol.decode(orjson.dumps(obj))
    except MalformedMessage:
        return
    assert isinstance(message.msg_type, str) and isinstance(message.payload, dict)


def test_error_details_single_and_array() -> None:
    single = protocol.error_details({"code": "FORBIDDEN", "field": "StrategyId", "message": "no"})
    assert single == [protocol.ErrorDetail("FORBIDDEN", "no", "StrategyId")]
    many = protocol.error_details({"errors": [
        {"code": "INVALID_PARAMETER", "field": "Channel", "message": "bad"},
        {"code": "INVALID_PARAMETER", "field": "Action", "message": "bad"},
    ]})
    assert [d.field for d in many] == ["Channel", "Action"]
    assert protocol.error_details({}) == [protocol.ErrorDetail("UNKNOWN", "", None)]
    assert protocol.error_payload(single) == {"code": "FORBIDDEN", "field": "StrategyId",
                                              "message": "no"}


def test_valid_subscription_request_passes() -> None:
    result = protocol.validate_subscription_request(request(resume_from="42"), now=time.time())
    assert result == protocol.SubscriptionRequest(
        action="subscribe", channel="strategy.signal", strategy_id=12345678,
        request_id="req-1", resume_from=42,
    )


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"action": "listen"}, "Action"),
        ({"channel": "strategy.orders"}, "Channel"),
        ({"strategy_id": 0}, "StrategyId"),
        ({"strategy_id": -5}, "StrategyId"),
        ({"strategy_id": "12345678"}, "StrategyId"),
        ({"strategy_id": True}, "StrategyId"),
        ({"request_id": "x" * 51}, "RequestId"),
        ({"timestamp": "2024-01-01T12:00:00Z"}, "Timestamp"),
        ({"timestamp": "soon"}, "Timestamp"),
        ({"resume_from": "abc"}, "ResumeFrom"),
        ({"resume_from": -1}, "ResumeFrom"),
        ({"channel": spec.CHANNEL_POSITIONS, "resume_from": 5}, "ResumeFrom"),
    ],
)
def test_invalid_subscription_request_names_the_field(overrides: dict[str, object],
                                                      field: str) -> None:
    result = protocol.validate_subscription_request(request(**overrides), now=time.time())
    assert isinstance(result, list)
    assert [(d.code, d.field) for d in result] == [("INVALID_PARAMETER", field)]


def test_request_id_of_exactly_fifty_characters_is_fine() -> None:
    result = protocol.validate_subscription_request(request(request_id="x" * 50), now=time.time())
    assert isinstance(result, protocol.SubscriptionRequest)


def test_timestamp_skew_limit_is_one_minute() -> None:
    now = 1_800_000_000.0
    inside = request(timestamp=protocol.format_timestamp(now - 59))
    outside = request(timestamp=protocol.format_timestamp(now + 61))
    assert isinstance(protocol.validate_subscription_request(inside, now=now),
                      protocol.SubscriptionRequest)
    assert isinstance(protocol.validate_subscription_request(outside, now=now), list)


def test_several_problems_are_all_reported() -> None:
    result = protocol.validate_subscription_request(
        request(action="x", channel="y", strategy_id=0), now=time.time()
    )
    assert isinstance(result, list)
    assert {d.field for d in result} == {"Action", "Channel", "StrategyId"}


def test_gap_payload_is_exactly_the_documented_shape() -> None:
    assert protocol.gap_payload(strategy_id=12345678, from_seq=98765,
                                message="Replay limit of 1000 messages exceeded") == {
        "strategy_id": None,
        "channel": "strategy.signal:12345678",
        "from": "98765",
        "message": "Replay limit of 1000 messages exceeded",
    }


def test_parse_int_refuses_absurdly_long_digit_strings() -> None:
    assert protocol.parse_int("12345678") == 12345678
    assert protocol.parse_int("-3") == -3
    assert protocol.parse_int("1" * 5000) is None
    with pytest.raises(MalformedMessage):
        protocol.decode(orjson.dumps({"msg_type": "x", "seq_id": "9" * 5000}))
