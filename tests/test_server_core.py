"""The reference server's sans-I/O core and feeds: no sockets, a fake clock."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from c2ws import protocol, spec
from c2ws.server.core import (
    FORBIDDEN_MESSAGE,
    Admission,
    Rejection,
    ServerSession,
    StreamStore,
    bearer_key,
    random_message_id,
    sequential_message_ids,
)
from c2ws.server.feed import (
    DEFAULT_STRATEGIES,
    INSTRUMENTS,
    FeedEvent,
    FileFeed,
    SyntheticFeed,
    parse_recorded_line,
)

NOW = 1_700_000_000.0
VISIBLE = 12345678
HIDDEN = 99999999
MESSAGE_ID = re.compile(r"^msg_[0-9a-f]{32}$")


def make_session(
    store: StreamStore | None = None,
    *,
    visible: Callable[[int], bool] = lambda strategy_id: strategy_id != HIDDEN,
    **options: Any,
) -> ServerSession:
    session = ServerSession(store=store or StreamStore(), authorizer=visible, **options)
    session.start(NOW)
    return session


def request(
    *,
    action: Any = "subscribe",
    channel: Any = spec.CHANNEL_SIGNAL,
    strategy_id: Any = VISIBLE,
    request_id: Any = "req-1",
    timestamp: Any = None,
    resume_from: Any = None,
    drop: tuple[str, ...] = (),
) -> bytes:
    """A subscription.request built field by field, so any field can be made wrong."""
    payload: dict[str, Any] = {"action": action, "channel": channel, "strategy_id": strategy_id}
    if resume_from is not None:
        payload["resume_from"] = resume_from
    message: dict[str, Any] = {
        "msg_type": spec.MSG_SUBSCRIPTION_REQUEST,
        "request_id": request_id,
        "timestamp": protocol.format_timestamp(NOW) if timestamp is None else timestamp,
        "payload": payload,
    }
    for key in drop:
        message.pop(key, None)
        payload.pop(key, None)
    return orjson.dumps(message)


def heartbeat_ack(at: float = NOW, **fields: Any) -> bytes:
    return orjson.dumps(
        {"msg_type": spec.MSG_HEARTBEAT_ACK, "timestamp": protocol.format_timestamp(at), **fields}
    )


def decoded(frames: list[bytes]) -> list[dict[str, Any]]:
    return [orjson.loads(frame) for frame in frames]


def only(frames: list[bytes]) -> dict[str, Any]:
    assert len(frames) == 1, decoded(frames)
    message: dict[str, Any] = orjson.loads(frames[0])
    return message


def publish_signals(store: StreamStore, strategy_id: int, count: int) -> list[dict[str, Any]]:
    return [store.publish_signal(strategy_id, {"SignalId": n}, NOW) for n in range(count)]


# --- StreamStore ------------------------------------------------------------------------


def test_seq_ids_start_at_one_and_are_contiguous_per_strategy_and_channel() -> None:
    store = StreamStore()
    signals = publish_signals(store, 1, 3)
    other = store.publish_signal(2, {}, NOW)
    positions = [store.publish_position(1, {"Quantity": q}, NOW) for q in (1, 2)]
    assert [m["seq_id"] for m in signals] == [1, 2, 3]
    assert other["seq_id"] == 1
    assert [m["seq_id"] for m in positions] == [1, 2]
    assert store.last_seq(1) == 3
    assert store.last_seq(1, spec.CHANNEL_POSITIONS) == 2
    assert store.last_seq(3) == 0


def test_published_envelopes_have_the_documented_shape() -> None:
    store = StreamStore()
    message = store.publish_signal(7, {"Side": "1"}, NOW)
    assert message == {
        "msg_type": spec.CHANNEL_SIGNAL,
        "id": message["id"],
        "seq_id": 1,
        "timestamp": protocol.format_timestamp(NOW),
        "v": spec.PROTOCOL_VERSION,
        "payload": {"Side": "1"},
    }
    assert MESSAGE_ID.match(message["id"])
    assert len({random_message_id() for _ in range(100)}) == 100


def test_the_id_factory_is_used_for_every_message() -> None:
    store = StreamStore(id_factory=sequential_message_ids())
    first, second = publish_signals(store, 1, 2)
    assert first["id"] == "msg_" + "0" * 31 + "1"
    assert second["id"] == "msg_" + "0" * 31 + "2"


def test_replay_returns_the_signals_after_a_seq_id_up_to_the_limit() -> None:
    store = StreamStore()
    publish_signals(store, 1, 12)
    replay = store.replay(1, after_seq=2, limit=5)
    assert [m.seq_id for m in replay.messages] == [3, 4, 5, 6, 7]
    assert replay.truncated and not replay.history_lost
    rest = store.replay(1, after_seq=7, limit=5)
    assert [m.seq_id for m in rest.messages] == [8, 9, 10, 11, 12]
    assert not rest.truncated
    assert store.replay(1, after_seq=12).messages == ()
    assert store.replay(1, after_seq=50).messages == ()
    assert store.replay(2, after_seq=1).messages == ()


def test_replay_reports_history_that_is_no_longer_retained() -> None:
    store = StreamStore(history=5)
    publish_signals(store, 1, 8)
    replay = store.replay(1, after_seq=1)
    assert [m.seq_id for m in replay.messages] == [4, 5, 6, 7, 8]
    assert replay.history_lost and replay.oldest_retained == 4
    assert not store.replay(1, after_seq=3).history_lost


def test_positions_are_not_replayable_and_bad_arguments_are_refused() -> None:
    store = StreamStore()
    store.publish_position(1, {}, NOW)
    assert store.replay(1, after_seq=0).messages == ()
    with pytest.raises(ValueError):
        store.publish(spec.MSG_HEARTBEAT, 1, {}, NOW)
    with pytest.raises(ValueError):
        StreamStore(history=0)


# --- ServerSession: connection and subscriptions -------------------------------------------


def test_start_sends_connection_connected() -> None:
    session = ServerSession(store=StreamStore(), authorizer=lambda _: True)
    message = only(session.start(NOW))
    assert message["msg_type"] == spec.MSG_CONNECTED
    assert MESSAGE_ID.match(message["id"])
    assert message["v"] == spec.PROTOCOL_VERSION
    assert message["timestamp"] == protocol.format_timestamp(NOW)
    assert "seq_id" not in message


def test_subscribe_is_acked_with_the_request_id_and_the_subscription() -> None:
    session = make_session()
    ack = only(session.receive(request(request_id="my-sub-001"), NOW))
    assert ack["msg_type"] == spec.MSG_SUBSCRIPTION_ACK
    assert ack["request_id"] == "my-sub-001"
    assert ack["payload"] == {
        "action": "subscribe",
        "channel": spec.CHANNEL_SIGNAL,
        "strategy_id": VISIBLE,
    }
    assert "seq_id" not in ack
    assert session.subscriptions == {(VISIBLE, spec.CHANNEL_SIGNAL)}
    assert session.wants(VISIBLE, spec.CHANNEL_SIGNAL)
    assert not session.wants(VISIBLE, spec.CHANNEL_POSITIONS)


def test_text_frames_are_accepted_like_bytes() -> None:
    session = make_session()
    ack = only(session.receive(request().decode(), NOW))
    assert ack["msg_type"] == spec.MSG_SUBSCRIPTION_ACK


def test_subscribe_and_unsubscribe_are_idempotent() -> None:
    session = make_session()
    session.receive(request(), NOW)
    again = only(session.receive(request(request_id="again"), NOW))
    assert again["msg_type"] == spec.MSG_SUBSCRIPTION_ACK and again["request_id"] == "again"
    assert len(session.subscriptions) == 1
    off = only(session.receive(request(action="unsubscribe", request_id="off"), NOW))
    assert off["msg_type"] == spec.MSG_SUBSCRIPTION_ACK
    assert off["payload"]["action"] == "unsubscribe"
    assert not session.wants(VISIBLE, spec.CHANNEL_SIGNAL)
    never = only(session.receive(request(action="unsubscribe", strategy_id=5), NOW))
    assert never["msg_type"] == spec.MSG_SUBSCRIPTION_ACK
    assert session.subscriptions == frozenset()


def test_a_request_without_request_id_is_acked_without_one() -> None:
    session = make_session()
    ack = only(session.receive(request(drop=("request_id",)), NOW))
    assert ack["msg_type"] == spec.MSG_SUBSCRIPTION_ACK
    assert "request_id" not in ack


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"action": "watch"}, "Action"),
        ({"action": None}, "Action"),
        ({"drop": ("action",)}, "Action"),
        ({"channel": "strategy.orders"}, "Channel"),
        ({"channel": 5}, "Channel"),
        ({"drop": ("channel",)}, "Channel"),
        ({"strategy_id": 0}, "StrategyId"),
        ({"strategy_id": -4}, "StrategyId"),
        ({"strategy_id": "12345678"}, "StrategyId"),
        ({"strategy_id": True}, "StrategyId"),
        ({"strategy_id": 1.5}, "StrategyId"),
        ({"strategy_id": 1e40}, "StrategyId"),
        ({"drop": ("strategy_id",)}, "StrategyId"),
        ({"resume_from": "abc"}, "ResumeFrom"),
        ({"resume_from": -1}, "ResumeFrom"),
        ({"resume_from": "5", "channel": spec.CHANNEL_POSITIONS}, "ResumeFrom"),
        ({"request_id": "x" * (spec.MAX_REQUEST_ID_LENGTH + 1)}, "RequestId"),
        ({"timestamp": "yesterday"}, "Timestamp"),
        ({"timestamp": protocol.format_timestamp(NOW - 61)}, "Timestamp"),
        ({"timestamp": protocol.format_timestamp(NOW + 61)}, "Timestamp"),
        ({"drop": ("timestamp",)}, "Timestamp"),
    ],
)
def test_each_invalid_field_is_reported_as_invalid_parameter(
    overrides: dict[str, Any], field: str
) -> None:
    session = make_session()
    error = only(session.receive(request(**overrides), NOW))
    assert error["msg_type"] == spec.MSG_ERROR
    assert error["payload"]["code"] == spec.ERROR_INVALID_PARAMETER
    assert error["payload"]["field"] == field
    assert error["payload"]["message"]
    assert "errors" not in error["payload"]
    assert error["request_id"] == overrides.get("request_id", "req-1")
    assert session.subscriptions == frozenset()


def test_a_timestamp_just_within_one_minute_is_accepted() -> None:
    session = make_session()
    ack = only(session.receive(request(timestamp=protocol.format_timestamp(NOW - 59)), NOW))
    assert ack["msg_type"] == spec.MSG_SUBSCRIPTION_ACK


def test_several_invalid_fields_are_reported_together_in_an_errors_array() -> None:
    session = make_session()
    error = only(
        session.receive(request(action="x", channel="y", strategy_id=-1, request_id="many"), NOW)
    )
    assert error["msg_type"] == spec.MSG_ERROR
    assert error["request_id"] == "many"
    assert "code" not in error["payload"]
    fields = [item["field"] for item in error["payload"]["errors"]]
    assert fields == ["Action", "Channel", "StrategyId"]
    assert {item["code"] for item in error["payload"]["errors"]} == {spec.ERROR_INVALID_PARAMETER}


def test_a_strategy_the_key_may_not_see_is_forbidden() -> None:
    session = make_session()
    error = only(session.receive(request(strategy_id=HIDDEN, request_id="nope"), NOW))
    assert error["msg_type"] == spec.MSG_ERROR
    assert error["request_id"] == "nope"
    assert error["payload"] == {
        "code": spec.ERROR_FORBIDDEN,
        "field": "StrategyId",
        "message": FORBIDDEN_MESSAGE,
    }
    assert FORBIDDEN_MESSAGE == "Not authorized to subscribe to Strategy"
    assert session.subscriptions == frozenset()
    # Unsubscribing needs no authorization: it is acked like any unsubscribe.
    off = only(session.receive(request(action="unsubscribe", strategy_id=HIDDEN), NOW))
    assert off["msg_type"] == spec.MSG_SUBSCRIPTION_ACK


def test_more_than_one_hundred_live_subscriptions_exceed_the_limit() -> None:
    session = make_session()
    limit = spec.MAX_SUBSCRIPTIONS_PER_CONNECTION
    for n in range(limit // 2):
        for channel in spec.CHANNELS:
            reply = only(session.receive(request(strategy_id=n + 1, channel=channel), NOW))
            assert reply["msg_type"] == spec.MSG_SUBSCRIPTION_ACK
    assert len(session.subscriptions) == limit
    error = only(session.receive(request(strategy_id=limit + 1, request_id="101st"), NOW))
    assert error["msg_type"] == spec.MSG_ERROR
    assert error["request_id"] == "101st"
    assert error["payload"]["code"] == spec.ERROR_LIMIT_EXCEEDED
    assert len(session.subscriptions) == limit
    # Re-subscribing to a live subscription does not count again.
    assert (
        only(session.receive(request(strategy_id=1), NOW))["msg_type"] == spec.MSG_SUBSCRIPTION_ACK
    )
    session.receive(request(action="unsubscribe", strategy_id=1), NOW)
    reply = only(session.receive(request(strategy_id=limit + 1), NOW))
    assert reply["msg_type"] == spec.MSG_SUBSCRIPTION_ACK


@pytest.mark.parametrize(
    "msg_type",
    [
        spec.MSG_HEARTBEAT,
        spec.MSG_SUBSCRIPTION_ACK,
        spec.CHANNEL_SIGNAL,
        spec.MSG_CONNECTED,
        "ping",
    ],
)
def test_anything_but_the_two_client_types_is_an_unknown_message_type(msg_type: str) -> None:
    session = make_session()
    frame = orjson.dumps({"msg_type": msg_type, "request_id": "r-9", "timestamp": "x"})
    error = only(session.receive(frame, NOW))
    assert error["msg_type"] == spec.MSG_ERROR
    assert error["request_id"] == "r-9"
    assert error["payload"]["code"] == spec.ERROR_UNKNOWN_MESSAGE_TYPE
    assert error["payload"]["field"] == "MsgType"


@pytest.mark.parametrize(
    "frame",
    [
        b"{not json",
        b"",
        b"[1, 2]",
        b'"text"',
        b"\xff\xfe\x00garbage",
        "\ud800",
        b'{"payload": {}}',
        b'{"msg_type": 5}',
        b'{"msg_type": "subscription.request", "payload": [1]}',
        b'{"msg_type": "heartbeat.ack", "seq_id": "soon"}',
        b" " * (spec.MAX_FRAME_BYTES + 1),
        b"[" * 5000 + b"]" * 5000,
    ],
)
def test_malformed_frames_get_an_error_message_not_an_exception(frame: bytes | str) -> None:
    session = make_session()
    error = only(session.receive(frame, NOW))
    assert error["msg_type"] == spec.MSG_ERROR
    assert error["payload"]["code"] == spec.ERROR_INVALID_PARAMETER
    assert error["payload"]["message"].startswith("Malformed message")


def test_the_request_id_of_a_malformed_envelope_is_still_echoed() -> None:
    session = make_session()
    frame = b'{"msg_type": "subscription.request", "request_id": "keep-me", "payload": "x"}'
    assert only(session.receive(frame, NOW))["request_id"] == "keep-me"


# --- ServerSession: replay and gaps --------------------------------------------------------


def test_resume_from_replays_missed_signals_byte_identically_after_the_ack() -> None:
    store = StreamStore()
    originals = publish_signals(store, VISIBLE, 5)
    session = make_session(store)
    frames = session.receive(request(resume_from="2", request_id="resume"), NOW)
    assert orjson.loads(frames[0])["msg_type"] == spec.MSG_SUBSCRIPTION_ACK
    assert orjson.loads(frames[0])["request_id"] == "resume"
    assert frames[1:] == [protocol.encode(message) for message in originals[2:]]


@pytest.mark.parametrize(
    "resume_from",
    ["--5", "-", "+5", " 5", "5 ", "1_000", "\uff15", "\u00b2", "5.0", 5.5, "9" * 30, 2**63,
     "9223372036854775808", [], {}, True, "", "-0x1"],
)
def test_a_resume_from_that_is_no_seq_id_is_invalid_parameter_not_an_exception(
    resume_from: object,
) -> None:
    store = StreamStore()
    publish_signals(store, VISIBLE, 3)
    session = make_session(store)
    error = only(session.receive(request(resume_from=resume_from), NOW))
    assert error["msg_type"] == spec.MSG_ERROR
    assert (error["payload"]["code"], error["payload"]["field"]) == (
        spec.ERROR_INVALID_PARAMETER, "ResumeFrom")
    assert session.subscriptions == frozenset()


def test_receive_of_what_is_not_a_frame_is_an_error_reply() -> None:
    session = make_session()
    for data in (None, 5, ["x"]):
        error = only(session.receive(data, NOW))  # type: ignore[arg-type]
        assert error["payload"]["code"] == spec.ERROR_INVALID_PARAMETER


def test_resume_from_is_accepted_as_an_integer_too() -> None:
    store = StreamStore()
    publish_signals(store, VISIBLE, 3)
    frames = make_session(store).receive(request(resume_from=1), NOW)
    assert [orjson.loads(f).get("seq_id") for f in frames] == [None, 2, 3]


def test_resume_from_zero_or_beyond_the_newest_signal_replays_nothing() -> None:
    store = StreamStore()
    publish_signals(store, VISIBLE, 3)
    session = make_session(store)
    assert (
        only(session.receive(request(resume_from="0"), NOW))["msg_type"]
        == spec.MSG_SUBSCRIPTION_ACK
    )
    assert (
        only(session.receive(request(resume_from="3"), NOW))["msg_type"]
        == spec.MSG_SUBSCRIPTION_ACK
    )
    assert (
        only(session.receive(request(resume_from="40"), NOW))["msg_type"]
        == spec.MSG_SUBSCRIPTION_ACK
    )


def test_more_than_the_replay_limit_missed_ends_the_replay_with_a_gap() -> None:
    store = StreamStore()
    publish_signals(store, VISIBLE, spec.REPLAY_LIMIT + 5)
    frames = decoded(make_session(store).receive(request(resume_from="2"), NOW))
    assert frames[0]["msg_type"] == spec.MSG_SUBSCRIPTION_ACK
    replayed = frames[1:-1]
    assert [m["seq_id"] for m in replayed] == list(range(3, spec.REPLAY_LIMIT + 3))
    gap = frames[-1]
    assert gap["msg_type"] == spec.MSG_GAP
    assert MESSAGE_ID.match(gap["id"]) and gap["v"] == spec.PROTOCOL_VERSION
    assert gap["payload"] == {
        "strategy_id": None,
        "channel": f"strategy.signal:{VISIBLE}",
        "from": str(spec.REPLAY_LIMIT + 2),
        "message": "Replay limit of 1000 messages exceeded",
    }


def test_exactly_the_replay_limit_missed_needs_no_gap() -> None:
    store = StreamStore()
    publish_signals(store, VISIBLE, spec.REPLAY_LIMIT + 2)
    frames = decoded(make_session(store).receive(request(resume_from="2"), NOW))
    assert len(frames) == 1 + spec.REPLAY_LIMIT
    assert all(m["msg_type"] != spec.MSG_GAP for m in frames)


def test_a_resume_point_older_than_the_history_gets_a_gap_before_the_replay() -> None:
    store = StreamStore(history=10)
    publish_signals(store, VISIBLE, 25)
    frames = decoded(make_session(store).receive(request(resume_from="5"), NOW))
    assert [m["msg_type"] for m in frames[:2]] == [spec.MSG_SUBSCRIPTION_ACK, spec.MSG_GAP]
    assert frames[1]["payload"]["from"] == "5"
    assert frames[1]["payload"]["channel"] == f"strategy.signal:{VISIBLE}"
    assert [m["seq_id"] for m in frames[2:]] == list(range(16, 26))


def test_a_forbidden_resume_replays_nothing() -> None:
    store = StreamStore()
    publish_signals(store, HIDDEN, 3)
    frames = make_session(store).receive(request(strategy_id=HIDDEN, resume_from="1"), NOW)
    assert only(frames)["payload"]["code"] == spec.ERROR_FORBIDDEN


# --- ServerSession: heartbeats on a fake clock -------------------------------------------


def test_heartbeats_are_due_every_interval() -> None:
    session = make_session(heartbeat_interval=30.0, heartbeat_grace=10.0)
    assert session.next_deadline() == NOW + 30
    assert session.on_timer(NOW + 29.9).messages == []
    beat = only(session.on_timer(NOW + 30).messages)
    assert beat["msg_type"] == spec.MSG_HEARTBEAT
    assert MESSAGE_ID.match(beat["id"]) and "seq_id" not in beat
    session.receive(heartbeat_ack(NOW + 30.5), NOW + 30.5)
    assert session.next_deadline() == NOW + 60
    assert only(session.on_timer(NOW + 60).messages)["msg_type"] == spec.MSG_HEARTBEAT
    assert session.heartbeat_acks == 1


def test_no_ack_within_interval_plus_grace_closes_with_the_heartbeat_timeout_code() -> None:
    session = make_session(heartbeat_interval=30.0, heartbeat_grace=10.0)
    session.on_timer(NOW + 30)
    assert session.next_deadline() == NOW + 40
    assert session.on_timer(NOW + 39.9).close_code is None
    result = session.on_timer(NOW + 40)
    assert result.close_code == spec.CLOSE_HEARTBEAT_TIMEOUT
    assert result.messages == []
    assert session.closed and session.next_deadline() is None
    session.receive(request(), NOW + 40)
    assert not session.wants(VISIBLE, spec.CHANNEL_SIGNAL)


def test_each_ack_restarts_the_forty_second_allowance() -> None:
    session = make_session(heartbeat_interval=30.0, heartbeat_grace=10.0)
    for beat in range(1, 6):
        at = NOW + 30 * beat
        assert only(session.on_timer(at).messages)["msg_type"] == spec.MSG_HEARTBEAT
        assert session.receive(heartbeat_ack(at + 2), at + 2) == []
        assert session.next_deadline() == at + 30
    assert session.heartbeat_acks == 5
    last_ack = NOW + 150 + 2
    assert only(session.on_timer(NOW + 180).messages)["msg_type"] == spec.MSG_HEARTBEAT
    assert session.on_timer(last_ack + 39.9).close_code is None
    assert session.on_timer(last_ack + 40).close_code == spec.CLOSE_HEARTBEAT_TIMEOUT


def test_a_late_timer_sends_one_heartbeat_not_a_burst() -> None:
    session = make_session(heartbeat_interval=10.0, heartbeat_grace=100.0)
    assert len(session.on_timer(NOW + 35).messages) == 1
    assert session.next_deadline() == NOW + 40


def test_a_timer_late_past_the_deadline_sends_the_heartbeat_and_gives_the_grace_from_then(
) -> None:
    """The tick due at +30 runs at +45, past the +40 deadline: the client was never sent
    that heartbeat, so it is sent now and answered within the grace from now."""
    session = make_session(heartbeat_interval=30.0, heartbeat_grace=10.0)
    late = session.on_timer(NOW + 45)
    assert late.close_code is None
    assert only(late.messages)["msg_type"] == spec.MSG_HEARTBEAT
    assert session.next_deadline() == NOW + 55
    assert session.on_timer(NOW + 54.9) == session.on_timer(NOW + 54.9)
    assert session.on_timer(NOW + 54.9).close_code is None
    assert session.on_timer(NOW + 55).close_code == spec.CLOSE_HEARTBEAT_TIMEOUT


def test_a_late_heartbeat_answered_keeps_the_connection() -> None:
    session = make_session(heartbeat_interval=30.0, heartbeat_grace=10.0)
    assert only(session.on_timer(NOW + 45).messages)["msg_type"] == spec.MSG_HEARTBEAT
    assert session.receive(heartbeat_ack(NOW + 46), NOW + 46) == []
    assert only(session.on_timer(NOW + 60).messages)["msg_type"] == spec.MSG_HEARTBEAT
    assert session.next_deadline() == NOW + 86
    assert session.on_timer(NOW + 85.9).close_code is None


def test_an_ack_with_a_skewed_or_missing_timestamp_does_not_count() -> None:
    session = make_session()
    skewed = only(session.receive(heartbeat_ack(NOW - 120), NOW))
    assert skewed["payload"]["field"] == "Timestamp"
    missing = only(session.receive(b'{"msg_type": "heartbeat.ack"}', NOW))
    assert missing["payload"]["code"] == spec.ERROR_INVALID_PARAMETER
    assert session.heartbeat_acks == 0


def test_paused_heartbeats_send_nothing_and_expect_no_ack() -> None:
    session = make_session(heartbeat_interval=1.0, heartbeat_grace=1.0)
    session.set_heartbeats_enabled(False, NOW)
    assert session.next_deadline() is None
    assert session.on_timer(NOW + 100) == session.on_timer(NOW + 1000)
    assert session.on_timer(NOW + 100).close_code is None
    session.set_heartbeats_enabled(True, NOW + 500)
    assert session.next_deadline() == NOW + 501
    assert only(session.on_timer(NOW + 501).messages)["msg_type"] == spec.MSG_HEARTBEAT


def test_nothing_is_scheduled_before_start() -> None:
    session = ServerSession(store=StreamStore(), authorizer=lambda _: True)
    assert session.next_deadline() is None
    assert session.on_timer(NOW).messages == []


@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_arbitrary_frames_never_raise_and_get_one_error(frame: bytes | str) -> None:
    session = make_session()
    reply = only(session.receive(frame, NOW))
    assert reply["msg_type"] == spec.MSG_ERROR


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


@given(
    msg_type=st.sampled_from([spec.MSG_SUBSCRIPTION_REQUEST, spec.MSG_HEARTBEAT_ACK, "x"]),
    payload=st.dictionaries(
        st.sampled_from(["action", "channel", "strategy_id", "resume_from", "other"]),
        json_values,
        max_size=5,
    ),
    extra=st.dictionaries(st.sampled_from(["request_id", "timestamp", "seq_id", "v"]), json_values),
)
def test_arbitrary_envelopes_never_raise(
    msg_type: str, payload: dict[str, Any], extra: dict[str, Any]
) -> None:
    store = StreamStore()
    publish_signals(store, 5, 3)
    session = make_session(store)
    frames = session.receive(orjson.dumps({"msg_type": msg_type, "payload": payload, **extra}), NOW)
    for message in decoded(frames):
        assert message["msg_type"] in {
            spec.MSG_ERROR,
            spec.MSG_SUBSCRIPTION_ACK,
            spec.MSG_GAP,
            spec.CHANNEL_SIGNAL,
        }


# --- Admission ------------------------------------------------------------------------------


def test_bearer_key_parsing() -> None:
    assert bearer_key("Bearer abc") == "abc"
    assert bearer_key("bearer   abc  ") == "abc"
    assert bearer_key(None) is None
    assert bearer_key("Bearer ") is None
    assert bearer_key("Basic abc") == ""


def test_missing_and_invalid_keys_are_unauthorized() -> None:
    admission = Admission(["test-key"])
    missing = admission.check(None)
    assert missing == Rejection(401, "Missing API key", "UNAUTHORIZED", "Missing API key")
    invalid = admission.check("Bearer wrong")
    assert isinstance(invalid, Rejection) and invalid.header == "Invalid API key"
    assert orjson.loads(invalid.body()) == {"code": "UNAUTHORIZED", "message": "Invalid API key"}
    assert isinstance(admission.check("Token test-key"), Rejection)
    assert admission.check("Bearer test-key") == "test-key"


def test_the_eleventh_connection_of_a_key_is_rate_limited() -> None:
    admission = Admission(["a", "b"])
    for _ in range(spec.MAX_CONNECTIONS_PER_KEY):
        assert admission.check("Bearer a") == "a"
        assert admission.register("a")
    refused = admission.check("Bearer a")
    assert isinstance(refused, Rejection) and refused.status == spec.HTTP_TOO_MANY_REQUESTS
    assert orjson.loads(refused.body())["code"] == "RATE_LIMITED"
    assert admission.check("Bearer b") == "b"
    admission.release("a")
    assert admission.check("Bearer a") == "a"


def test_the_global_cap_refuses_with_503() -> None:
    admission = Admission(["a", "b"], max_total=2)
    admission.register("a")
    admission.register("b")
    refused = admission.check("Bearer a")
    assert isinstance(refused, Rejection) and refused.status == spec.HTTP_SERVICE_UNAVAILABLE
    admission.release("b")
    assert admission.total == 1 and admission.check("Bearer b") == "b"


def test_two_connections_passing_the_check_at_once_lose_the_race_after_the_upgrade() -> None:
    admission = Admission(["a"])
    for _ in range(spec.MAX_CONNECTIONS_PER_KEY - 1):
        admission.register("a")
    assert admission.check("Bearer a") == "a"
    assert admission.check("Bearer a") == "a"
    assert admission.register("a")
    assert not admission.register("a")
    admission.release("a")
    assert admission.count("a") == spec.MAX_CONNECTIONS_PER_KEY


# --- synthetic feed ---------------------------------------------------------------------------


def run_feed(seed: int, count: int) -> list[FeedEvent]:
    feed = SyntheticFeed(seed)
    return [feed.next_event(NOW + n) for n in range(count)]


def test_the_same_seed_gives_the_same_feed() -> None:
    assert run_feed(7, 300) == run_feed(7, 300)
    assert run_feed(7, 300) != run_feed(8, 300)


SIGNAL_KEYS = {
    "StrategyId", "StrategyName", "SignalId", "OrderId", "OrderType", "Side", "OpenClose",
    "OrderQuantity", "Limit", "Stop", "TIF", "ProfitTarget", "StopLoss", "ParentSignalId",
    "CancelReplaceSignalId", "OrderStatus", "FilledQuantity", "AvgFillPrice", "PostedDate",
    "SignalType", "C2Symbol", "ExchangeSymbol", "RejectMessage", "Info",
}  # fmt: skip
POSITION_KEYS = {
    "StrategyId", "StrategyName", "Quantity", "AvgPx", "C2Symbol", "ExchangeSymbol", "Currency",
    "OpenedDate",
}  # fmt: skip


def test_feed_payloads_follow_the_documented_schema() -> None:
    events = run_feed(1, 2000)
    symbols = {i.symbol: i for i in INSTRUMENTS}
    seen_types = set()
    for event in events:
        payload = event.payload
        assert event.strategy_id in DEFAULT_STRATEGIES
        assert payload["StrategyId"] == event.strategy_id
        instrument = symbols[payload["C2Symbol"]["FullSymbol"]]
        assert payload["C2Symbol"]["SymbolType"] == instrument.symbol_type
        if event.channel == spec.CHANNEL_SIGNAL:
            assert set(payload) == SIGNAL_KEYS
            assert payload["OrderType"] in {"1", "2", "3"} and payload["Side"] in {"1", "2"}
            assert payload["TIF"] in {"0", "1"} and payload["OpenClose"] in {"O", "C"}
            assert payload["OrderStatus"] in {"0", "2", "4"}
            assert payload["OrderQuantity"] > 0 and payload["OrderQuantity"] % instrument.lot == 0
            assert (payload["Limit"] is not None) == (payload["OrderType"] == "2")
            assert (payload["Stop"] is not None) == (payload["OrderType"] == "3")
            assert protocol.parse_timestamp(payload["PostedDate"]) is not None
            if payload["OrderStatus"] == "2":
                assert payload["FilledQuantity"] == payload["OrderQuantity"]
                price = payload["AvgFillPrice"]
                # Prices stay plausible for the instrument and on its tick grid.
                assert instrument.price / 2 < price < instrument.price * 2
                assert abs(price / instrument.tick - round(price / instrument.tick)) < 1e-6
            seen_types.add(instrument.symbol_type)
        else:
            assert event.channel == spec.CHANNEL_POSITIONS
            assert set(payload) == POSITION_KEYS
    assert seen_types == {"future", "stock", "forex"}


def test_positions_follow_their_fills_and_stay_consistent() -> None:
    events = run_feed(3, 3000)
    net: dict[tuple[int, str], int] = {}
    working: dict[tuple[int, str], int] = {}
    fills = closes = 0
    for index, event in enumerate(events):
        payload = event.payload
        key = (event.strategy_id, payload["C2Symbol"]["FullSymbol"])
        if event.channel == spec.CHANNEL_POSITIONS:
            assert events[index - 1].channel == spec.CHANNEL_SIGNAL
            assert events[index - 1].payload["OrderStatus"] == "2"
            continue
        status = payload["OrderStatus"]
        if status == "0":
            assert key not in working, "one working order per strategy and symbol"
            working[key] = payload["SignalId"]
            continue
        if key in working and working[key] == payload["SignalId"]:
            del working[key]
        if status != "2":
            continue
        fills += 1
        before = net.get(key, 0)
        signed = payload["OrderQuantity"] if payload["Side"] == "1" else -payload["OrderQuantity"]
        after = before + signed
        if payload["OpenClose"] == "C":
            closes += 1
            assert before != 0 and abs(after) < abs(before) and after * before >= 0
        else:
            assert before == 0 or (before > 0) == (signed > 0)
        net[key] = after
        if index + 1 == len(events):
            break
        position = events[index + 1]
        assert position.channel == spec.CHANNEL_POSITIONS
        assert position.strategy_id == event.strategy_id
        assert position.payload["C2Symbol"]["FullSymbol"] == key[1]
        assert position.payload["Quantity"] == after
        assert (position.payload["AvgPx"] == 0) == (after == 0)
        assert (position.payload["OpenedDate"] is None) == (after == 0)
    assert fills > 300 and closes > 50


def test_events_for_any_strategy_and_unknown_ones_get_a_name() -> None:
    feed = SyntheticFeed(0, strategies=range(1, 7))
    assert feed.events_for(3, NOW)[0].payload["StrategyName"] == "Global Macro FX"
    events = feed.events_for(4242, NOW)
    assert events[0].channel == spec.CHANNEL_SIGNAL
    assert events[0].payload["StrategyName"] == "Strategy 4242"
    assert all(e.strategy_id == 4242 and e.payload["StrategyId"] == 4242 for e in events)


# --- recorded feed ----------------------------------------------------------------------------


def test_file_feed_republishes_stream_payloads_and_counts_bad_lines(tmp_path: Path) -> None:
    signal = {
        "msg_type": "strategy.signal",
        "id": "msg_1",
        "seq_id": 90,
        "v": 4,
        "timestamp": "2024-01-01T12:00:00Z",
        "payload": {"StrategyId": 7, "Side": "1"},
    }
    position = {"msg_type": "strategy.positions", "payload": {"strategy_id": "8", "Quantity": -2}}
    lines = [
        orjson.dumps(signal),
        b"",
        orjson.dumps(position),
        orjson.dumps({"msg_type": "heartbeat", "payload": {"StrategyId": 7}}),
        b"{broken",
        b"\xff\xfe",
        orjson.dumps({"msg_type": "strategy.signal", "payload": {"Side": "2"}}),
        orjson.dumps({"msg_type": "strategy.signal", "payload": {"strategyId": 0}}),
    ]
    recording = tmp_path / "feed.ndjson"
    recording.write_bytes(b"\n".join(lines) + b"\n")
    feed = FileFeed(recording)
    events = list(feed)
    assert events == [
        FeedEvent(spec.CHANNEL_SIGNAL, 7, {"StrategyId": 7, "Side": "1"}),
        FeedEvent(spec.CHANNEL_POSITIONS, 8, {"strategy_id": "8", "Quantity": -2}),
    ]
    assert feed.skipped == 5 and feed.published == 2


def test_parse_recorded_line_never_raises() -> None:
    assert parse_recorded_line("") is None
    assert parse_recorded_line("null") is None
    assert (
        parse_recorded_line('{"msg_type":"strategy.signal","payload":{"StrategyId":true}}') is None
    )
