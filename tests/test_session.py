"""The sans-I/O client session, driven with frames and a fake clock (no network)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from c2ws import events as ev
from c2ws import protocol, spec
from c2ws.events import SubscriptionKey
from c2ws.session import ClientSession, SubscriptionState

SIGNAL = SubscriptionKey(12345678, spec.CHANNEL_SIGNAL)
POSITIONS = SubscriptionKey(12345678, spec.CHANNEL_POSITIONS)
WALL = 1_800_000_000.0


def frame(msg_type: str, **fields: Any) -> bytes:
    return orjson.dumps({"msg_type": msg_type, "id": "msg_1", "timestamp": "2027-01-15T08:00:00Z",
                         "v": 4, **fields})


def signal(seq_id: int, strategy_id: int = 12345678) -> bytes:
    payload = {"StrategyId": strategy_id, "Side": "1", "C2Symbol": {"FullSymbol": "@ESZ6"}}
    return frame(spec.CHANNEL_SIGNAL, seq_id=seq_id, payload=payload)


def new_session(*keys: SubscriptionKey, **kwargs: Any) -> ClientSession:
    session = ClientSession(keys or (SIGNAL, POSITIONS), request_id_prefix="c2ws-test",
                            wall_clock=lambda: WALL, **kwargs)
    session.connection_opened(0.0)
    return session


def sent(session: ClientSession) -> list[dict[str, Any]]:
    return [orjson.loads(data) for data in session.data_to_send()]


def connect(session: ClientSession) -> list[dict[str, Any]]:
    session.receive(frame(spec.MSG_CONNECTED), 0.1)
    session.events_received()
    return sent(session)


def ack_all(session: ClientSession, requests: list[dict[str, Any]]) -> None:
    for request in requests:
        session.receive(frame(spec.MSG_SUBSCRIPTION_ACK, request_id=request["request_id"],
                              payload=request["payload"]), 0.2)
    session.events_received()


def test_nothing_is_sent_before_connection_connected() -> None:
    session = new_session()
    assert session.data_to_send() == []
    requests = connect(session)
    assert [(r["payload"]["channel"], r["payload"]["action"]) for r in requests] == [
        (spec.CHANNEL_SIGNAL, "subscribe"), (spec.CHANNEL_POSITIONS, "subscribe")]
    ids = [r["request_id"] for r in requests]
    assert len(set(ids)) == 2 and all(len(i) <= spec.MAX_REQUEST_ID_LENGTH for i in ids)
    assert all(r["timestamp"] == protocol.format_timestamp(WALL) for r in requests)
    assert all("resume_from" not in r["payload"] for r in requests)


def test_a_second_connected_message_does_not_resubscribe() -> None:
    session = new_session()
    connect(session)
    session.receive(frame(spec.MSG_CONNECTED), 0.3)
    assert session.data_to_send() == []


def test_resume_from_is_sent_for_signals_only() -> None:
    session = new_session(cursors={SIGNAL: 41, POSITIONS: 9})
    requests = connect(session)
    assert requests[0]["payload"]["resume_from"] == "41"
    assert "resume_from" not in requests[1]["payload"]


def test_every_heartbeat_is_acked_at_once() -> None:
    session = new_session()
    session.receive(frame(spec.MSG_HEARTBEAT), 5.0)
    assert sent(session) == [{"msg_type": "heartbeat.ack",
                              "timestamp": protocol.format_timestamp(WALL)}]
    assert isinstance(session.events_received()[0], ev.HeartbeatAnswered)
    assert session.last_heartbeat == 5.0


def test_acks_and_errors_are_matched_by_request_id() -> None:
    session = new_session()
    signal_request, positions_request = connect(session)
    session.receive(frame(spec.MSG_SUBSCRIPTION_ACK, request_id=signal_request["request_id"]), 1)
    session.receive(frame(spec.MSG_ERROR, request_id=positions_request["request_id"], payload={
        "code": "FORBIDDEN", "field": "StrategyId",
        "message": "Not authorized to subscribe to Strategy"}), 1)
    confirmed, rejected = session.events_received()
    assert isinstance(confirmed, ev.SubscriptionConfirmed) and confirmed.key == SIGNAL
    assert isinstance(rejected, ev.SubscriptionRejected) and rejected.key == POSITIONS
    assert rejected.errors[0].code == "FORBIDDEN"
    assert session.subscriptions[SIGNAL].state is SubscriptionState.ACTIVE
    assert session.subscriptions[POSITIONS].state is SubscriptionState.REJECTED


def test_error_without_a_known_request_id_is_a_server_error() -> None:
    session = new_session()
    session.receive(frame(spec.MSG_ERROR, payload={"errors": [
        {"code": "INVALID_PARAMETER", "field": "Timestamp", "message": "skew"},
        {"code": "INVALID_PARAMETER", "field": "Channel", "message": "bad"}]}), 1)
    (event,) = session.events_received()
    assert isinstance(event, ev.ServerError)
    assert [e.field for e in event.errors] == ["Timestamp", "Channel"]


def test_an_ack_nobody_asked_for_is_other_control() -> None:
    session = new_session()
    session.receive(frame(spec.MSG_SUBSCRIPTION_ACK, request_id="someone-else"), 1)
    assert isinstance(session.events_received()[0], ev.OtherControl)


def test_stream_messages_advance_the_cursor_and_duplicates_are_dropped() -> None:
    session = new_session()
    for seq in (1, 2, 2, 3, 1):
        session.receive(signal(seq), 1)
    found = session.events_received()
    delivered = [e.message.seq_id for e in found if isinstance(e, ev.StreamMessage)]
    dropped = [e.seq_id for e in found if isinstance(e, ev.DuplicateDropped)]
    assert delivered == [1, 2, 3]
    assert dropped == [2, 1]
    assert session.cursors[SIGNAL] == 3


def test_a_jump_in_signal_seq_is_reported_but_delivered() -> None:
    session = new_session()
    session.receive(signal(1), 1)
    session.receive(signal(4), 1)
    found = session.events_received()
    jump = next(e for e in found if isinstance(e, ev.SequenceJump))
    assert (jump.key, jump.expected, jump.received) == (SIGNAL, 2, 4)
    assert sum(isinstance(e, ev.StreamMessage) for e in found) == 2


def test_positions_may_jump_without_a_warning() -> None:
    session = new_session()
    for seq in (1, 5):
        session.receive(frame(spec.CHANNEL_POSITIONS, seq_id=seq,
                              payload={"StrategyId": 12345678}), 1)
    assert not any(isinstance(e, ev.SequenceJump) for e in session.events_received())


def test_gap_is_reported_and_the_jump_after_it_is_not_reported_twice() -> None:
    session = new_session(cursors={SIGNAL: 10})
    session.receive(signal(11), 1)
    session.receive(frame(spec.MSG_GAP, payload=protocol.gap_payload(
        strategy_id=12345678, from_seq=11, message="Replay limit of 1000 messages exceeded")), 1)
    session.receive(signal(5000), 1)
    session.receive(signal(5002), 1)
    found = session.events_received()
    gap = next(e for e in found if isinstance(e, ev.GapReported))
    assert (gap.strategy_id, gap.channel, gap.last_replayed) == (12345678, "strategy.signal", 11)
    jumps = [e for e in found if isinstance(e, ev.SequenceJump)]
    assert [(j.expected, j.received) for j in jumps] == [(5001, 5002)]


def test_gap_with_integer_from_is_accepted() -> None:
    session = new_session()
    session.receive(frame(spec.MSG_GAP, payload={"strategy_id": None, "channel":
                                                 "strategy.signal:7", "from": 98765,
                                                 "message": "x"}), 1)
    (gap,) = session.events_received()
    assert isinstance(gap, ev.GapReported) and gap.last_replayed == 98765 and gap.strategy_id == 7


@pytest.mark.parametrize("payload", [{"StrategyId": 5}, {"strategy_id": "5"}, {"strategyId": 5}])
def test_strategy_is_found_under_any_key_case(payload: dict[str, object]) -> None:
    assert protocol.strategy_id_of(payload) == 5


def test_payload_without_strategy_is_placed_on_the_only_subscription_of_its_channel() -> None:
    session = new_session(SIGNAL)
    session.receive(frame(spec.CHANNEL_SIGNAL, seq_id=3, payload={}), 1)
    (event,) = session.events_received()
    assert isinstance(event, ev.StreamMessage) and event.key == SIGNAL


def test_payload_without_strategy_among_several_is_delivered_unplaced() -> None:
    session = new_session(SIGNAL, SubscriptionKey(2, spec.CHANNEL_SIGNAL))
    session.receive(frame(spec.CHANNEL_SIGNAL, seq_id=3, payload={}), 1)
    (event,) = session.events_received()
    assert isinstance(event, ev.StreamMessage) and event.key is None


def test_unknown_and_malformed_frames_become_events_not_exceptions() -> None:
    session = new_session()
    session.receive(frame("strategy.orders"), 1)
    session.receive(b"{nope", 1)
    session.receive(b'{"msg_type": "\xff"}', 1)
    unknown, malformed, bad_utf8 = session.events_received()
    assert isinstance(unknown, ev.UnknownMessage) and unknown.message.msg_type == "strategy.orders"
    assert isinstance(malformed, ev.MalformedFrame) and malformed.size == 5
    assert isinstance(bad_utf8, ev.MalformedFrame)


def test_silence_past_the_deadline_is_reported() -> None:
    session = new_session(stale_after=45.0)
    session.receive(frame(spec.MSG_HEARTBEAT), 10.0)
    assert session.next_deadline() == 55.0
    session.handle_timeout(54.9)
    assert not [e for e in session.events_received() if isinstance(e, ev.ConnectionStale)]
    session.handle_timeout(55.0)
    (stale,) = session.events_received()
    assert isinstance(stale, ev.ConnectionStale) and stale.silent_for == 45.0
    assert session.stale


def test_unsubscribe_all_covers_live_subscriptions_and_confirms() -> None:
    session = new_session()
    ack_all(session, connect(session))
    assert session.unsubscribe_all() == 2
    requests = sent(session)
    assert {r["payload"]["action"] for r in requests} == {"unsubscribe"}
    assert session.awaiting_unsubscribe == 2
    ack_all(session, requests)
    assert session.awaiting_unsubscribe == 0
    assert session.count(SubscriptionState.UNSUBSCRIBED) == 2


def test_more_than_a_hundred_subscriptions_do_not_fit_one_session() -> None:
    keys = [SubscriptionKey(i, spec.CHANNEL_SIGNAL) for i in range(1, 102)]
    with pytest.raises(ValueError, match="limit of 100"):
        ClientSession(keys, request_id_prefix="p")
    assert len(ClientSession(keys[:100], request_id_prefix="p").subscriptions) == 100


@given(st.lists(st.binary(max_size=120), max_size=20))
def test_arbitrary_frames_never_raise(frames: list[bytes]) -> None:
    session = new_session()
    for data in frames:
        session.receive(data, 1.0)
    session.events_received()


@given(st.lists(st.integers(min_value=1, max_value=40), max_size=60))
def test_each_seq_id_is_delivered_at_most_once_and_in_increasing_order(seqs: list[int]) -> None:
    session = new_session()
    for seq in seqs:
        session.receive(signal(seq), 1.0)
    delivered = [e.message.seq_id for e in session.events_received()
                 if isinstance(e, ev.StreamMessage)]
    assert delivered == sorted(set(delivered))
    assert len(delivered) == len(set(delivered))
    if seqs:
        assert delivered[0] == seqs[0] and delivered[-1] == max(seqs)


def test_a_huge_digit_string_strategy_id_is_no_crash() -> None:
    session = new_session()
    session.receive(frame(spec.CHANNEL_SIGNAL, seq_id=1, payload={"StrategyId": "1" * 5000}), 1)
    session.receive(frame(spec.MSG_GAP, payload={"channel": "strategy.signal:" + "7" * 5000,
                                                 "from": "8" * 5000}), 1)
    assert [type(e) for e in session.events_received()] == [ev.StreamMessage, ev.GapReported]
