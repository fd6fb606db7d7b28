"""The shared message definitions: encode, decode, validate (no network)."""

from __future__ import annotations

import contextlib
import datetime
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


# --- total parsers: any input gives a value or None (issue 12, item 1) -------------------------

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (7, 7),
        (-3, -3),
        (INT64_MAX, INT64_MAX),
        (INT64_MIN, INT64_MIN),
        (INT64_MAX + 1, None),
        (INT64_MIN - 1, None),
        (2**64, None),
        (True, None),
        (False, None),
        (5.0, None),
        (float("nan"), None),
        (float("inf"), None),
        (None, None),
        ([5], None),
        ({"a": 5}, None),
        (b"5", None),
        ("5", 5),
        ("-5", -5),
        ("-0", 0),
        ("007", 7),
        ("9223372036854775807", INT64_MAX),
        ("-9223372036854775808", INT64_MIN),
        ("9223372036854775808", None),
        ("-9223372036854775809", None),
        ("99999999999999999999", None),
        ("00000000000000000001", None),  # 20 digits: longer than any int64
        ("--5", None),
        ("-", None),
        ("", None),
        ("+5", None),
        (" 5", None),
        ("5 ", None),
        ("5\n", None),
        ("\t5", None),
        ("1_000", None),
        ("5.0", None),
        ("1e3", None),
        ("0x10", None),
        ("NaN", None),
        ("\uff15", None),  # fullwidth 5
        ("\u00b2", None),  # superscript 2
        ("\u0663", None),  # Arabic-Indic 3
        ("1\u00b2", None),
        ("9" * 5000, None),
        ("-" * 5000 + "5", None),
    ],
)
def test_parse_int_accepts_only_int64_json_integers_and_their_plain_digit_strings(
    value: object, expected: int | None
) -> None:
    assert protocol.parse_int(value) == expected


# Strings made of the pieces that fool digit checks: signs, spaces, underscores, non-ASCII digits.
hostile_numeric_text = st.lists(
    st.sampled_from(["-", "--", "+", " ", "\t", "\n", "_", ".", "e", "0", "5", "9" * 19,
                     "\uff15", "\u00b2", "\u0663"]),
    max_size=6,
).map("".join)

any_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()  # unbounded: beyond int64 too
    | st.floats()  # nan and infinities included
    | st.text()
    | hostile_numeric_text,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner,
                                                                  max_size=5),
    max_leaves=20,
)

any_input = st.one_of(st.text(), st.binary(), hostile_numeric_text, any_json)


@given(any_input)
def test_parse_int_is_total_and_only_returns_what_the_rule_allows(value: object) -> None:
    parsed = protocol.parse_int(value)
    if parsed is None:
        return
    assert INT64_MIN <= parsed <= INT64_MAX
    if isinstance(value, str):
        digits = value.removeprefix("-")
        assert digits and len(digits) <= 19
        assert all(c in "0123456789" for c in digits)
        assert int(value) == parsed
    else:
        assert type(value) is int and value == parsed


@given(st.integers())
def test_parse_int_reads_back_every_int64_written_as_a_string(number: int) -> None:
    in_range = INT64_MIN <= number <= INT64_MAX
    assert protocol.parse_int(str(number)) == (number if in_range else None)
    assert protocol.parse_int(number) == (number if in_range else None)


@given(any_input)
def test_strategy_id_of_is_total(value: object) -> None:
    for payload in (value, {"StrategyId": value}, {"strategy_id": value, "strategyId": value}):
        found = protocol.strategy_id_of(payload)
        assert found is None or 0 < found <= INT64_MAX


def test_strategy_id_of_takes_the_first_key_that_holds_a_positive_id() -> None:
    assert protocol.strategy_id_of({"StrategyId": "--5", "strategy_id": "12"}) == 12
    assert protocol.strategy_id_of({"StrategyId": 0, "strategyId": 7}) == 7
    assert protocol.strategy_id_of({"StrategyId": 2**63}) is None
    assert protocol.strategy_id_of([{"StrategyId": 5}]) is None  # type: ignore[arg-type]


@given(any_input)
def test_parse_timestamp_is_total(value: object) -> None:
    parsed = protocol.parse_timestamp(value)
    assert parsed is None or isinstance(parsed, float | int)


@given(st.datetimes(min_value=datetime.datetime(1970, 1, 1)))
def test_parse_timestamp_reads_every_formatted_instant(moment: datetime.datetime) -> None:
    epoch = moment.replace(tzinfo=datetime.timezone.utc).timestamp()
    assert protocol.parse_timestamp(protocol.format_timestamp(epoch)) == int(epoch)


@pytest.mark.parametrize(
    "text",
    [
        "2024-02-30T12:00:00Z",  # no such day
        "2023-02-29T12:00:00Z",  # not a leap year
        "2024-01-01T24:00:00Z",
        "2024-01-01T12:60:00Z",
        "2024-01-01T12:00:60Z",
        "0000-01-01T00:00:00Z",
        "2024-01-01T12:00:00Z\n",
        " 2024-01-01T12:00:00Z",
        "\uff12\uff10\uff12\uff14-01-01T12:00:00Z",  # fullwidth digits
        "2024-01-01T12:00:00.Z",
        "2024-01-01T12:00:00.1234567890Z",
    ],
)
def test_parse_timestamp_refuses_what_names_no_real_utc_instant(text: str) -> None:
    assert protocol.parse_timestamp(text) is None


def test_parse_timestamp_of_what_is_not_a_string_is_none() -> None:
    for value in (None, 1704110400, 1704110400.0, ["2024-01-01T12:00:00Z"], b"x"):
        assert protocol.parse_timestamp(value) is None


timestamp_like = st.from_regex(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,10})?(Z|[+-]00:?00)",
    fullmatch=True,
)


@given(st.one_of(any_input, timestamp_like))
def test_parse_datetime_accepts_exactly_what_parse_timestamp_accepts(value: object) -> None:
    moment = protocol.parse_datetime(value)
    epoch = protocol.parse_timestamp(value)
    assert (moment is None) == (epoch is None)
    if moment is not None and epoch is not None:
        assert moment.tzinfo is datetime.timezone.utc
        assert abs(moment.timestamp() - epoch) < 1e-6


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-01T12:00:00Z", datetime.datetime(2024, 1, 1, 12, tzinfo=datetime.timezone.utc)),
        ("2024-01-01T12:00:00.5+00:00",
         datetime.datetime(2024, 1, 1, 12, 0, 0, 500_000, tzinfo=datetime.timezone.utc)),
        # Every microsecond kept exactly (a float epoch would round some of them) and a
        # finer fraction cut, never carried into the next second.
        ("2024-01-01T12:00:00.123457Z",
         datetime.datetime(2024, 1, 1, 12, 0, 0, 123_457, tzinfo=datetime.timezone.utc)),
        ("2024-12-31T23:59:59.999999999Z",
         datetime.datetime(2024, 12, 31, 23, 59, 59, 999_999, tzinfo=datetime.timezone.utc)),
    ],
)
def test_parse_datetime_is_exact_to_the_microsecond(
    text: str, expected: datetime.datetime
) -> None:
    assert protocol.parse_datetime(text) == expected


@given(any_input)
def test_error_details_is_total(value: object) -> None:
    for payload in (value, {"errors": value}, {"code": value, "message": value, "field": value},
                    {"errors": [value, {"code": value}]}):
        details = protocol.error_details(payload)  # type: ignore[arg-type]
        assert 1 <= len(details) <= spec.MAX_ERROR_DETAILS
        for detail in details:
            assert isinstance(detail.code, str) and isinstance(detail.message, str)
            assert detail.field is None or isinstance(detail.field, str)


def test_error_details_keeps_at_most_the_first_few() -> None:
    many = [{"code": "INVALID_PARAMETER", "field": f"F{n}", "message": "bad"}
            for n in range(10_000)]
    details = protocol.error_details({"errors": many})
    assert [d.field for d in details] == [f"F{n}" for n in range(spec.MAX_ERROR_DETAILS)]


@given(st.one_of(st.text(), st.binary()))
def test_decode_of_any_text_or_bytes_raises_only_malformed_message(data: str | bytes) -> None:
    with contextlib.suppress(MalformedMessage):
        protocol.decode(data)


@given(any_json)
def test_decode_of_any_json_value_raises_only_malformed_message(value: object) -> None:
    try:
        data = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return  # not representable as JSON (an int beyond 64 bits, nan): not a frame
    with contextlib.suppress(MalformedMessage):
        protocol.decode(data)
        protocol.decode(data.decode())


@given(st.dictionaries(st.sampled_from(["msg_type", "id", "seq_id", "request_id", "timestamp",
                                        "v", "payload"]), any_json))
def test_decoded_envelopes_hold_only_well_typed_fields(obj: dict[str, object]) -> None:
    obj.setdefault("msg_type", "x")
    try:
        message = protocol.decode(orjson.dumps(obj))
    except (TypeError, orjson.JSONEncodeError, MalformedMessage):
        return
    assert message.seq_id is None or INT64_MIN <= message.seq_id <= INT64_MAX
    for text in (message.id, message.request_id, message.timestamp):
        assert text is None or isinstance(text, str)


@pytest.mark.parametrize(
    "seq_id",
    ["--5", "-", "+5", " 5", "1_000", "\uff15", "5.5", 2**63, 5.0, "99999999999999999999"],
)
def test_decode_refuses_a_seq_id_that_is_not_an_int64(seq_id: object) -> None:
    frame = orjson.dumps({"msg_type": "strategy.signal", "seq_id": seq_id})
    with pytest.raises(MalformedMessage, match="seq_id"):
        protocol.decode(frame)


@pytest.mark.parametrize("data", [None, 5, ["{}"], {"msg_type": "x"}])
def test_decode_of_what_is_not_a_frame_is_malformed(data: object) -> None:
    with pytest.raises(MalformedMessage):
        protocol.decode(data)  # type: ignore[arg-type]
