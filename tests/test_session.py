"""The sans-I/O client session, driven with frames and fake clocks (no network)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from c2ws import events as ev
from c2ws import protocol, spec
from c2ws.delivery.dedupe import StreamFilter
from c2ws.events import EndReason, SubscriptionKey
from c2ws.session import (
    ClientSession,
    ConnectionState,
    SessionTimeouts,
    SubscriptionLimitError,
    SubscriptionState,
)

SIGNAL = SubscriptionKey(12345678, spec.CHANNEL_SIGNAL)
POSITIONS = SubscriptionKey(12345678, spec.CHANNEL_POSITIONS)
WALL = 1_800_000_000.0


def frame(msg_type: str, **fields: Any) -> bytes:
    return orjson.dumps({"msg_type": msg_type, "id": "msg_1", "timestamp": "2027-01-15T08:00:00Z",
                         "v": 4, **fields})


def signal(seq_id: int, strategy_id: int = 12345678, timestamp: str | None = None) -> bytes:
    payload = {"StrategyId": strategy_id, "Side": "1", "C2Symbol": {"FullSymbol": "@ESZ6"}}
    extra = {"timestamp": timestamp} if timestamp else {}
    return frame(spec.CHANNEL_SIGNAL, seq_id=seq_id, payload=payload, **extra)


def new_session(*keys: SubscriptionKey, cursors: dict[SubscriptionKey, int] | None = None,
                stream_filter: StreamFilter | None = None, **kwargs: Any) -> ClientSession:
    keys = keys or (SIGNAL, POSITIONS)
    session = ClientSession(
        request_id_prefix="c2ws-test",
        stream_filter=stream_filter or StreamFilter(keys, cursors or {}),
        now=0.0, **kwargs,
    )
    for key in keys:
        session.subscribe(key, now=0.0, wall=WALL)
    return session


def receive(session: ClientSession, data: bytes, now: float = 1.0) -> None:
    session.receive(data, now=now, wall=WALL)


def sent(session: ClientSession) -> list[dict[str, Any]]:
    return [orjson.loads(data) for data in session.data_to_send()]


def connect(session: ClientSession, now: float = 0.1) -> list[dict[str, Any]]:
    receive(session, frame(spec.MSG_CONNECTED), now)
    session.events_received()
    return sent(session)


def ack(session: ClientSession, request: dict[str, Any], now: float = 0.2) -> None:
    receive(session, frame(spec.MSG_SUBSCRIPTION_ACK, request_id=request["request_id"],
                           payload=request["payload"]), now)


def ready(*keys: SubscriptionKey, **kwargs: Any) -> ClientSession:
    session = new_session(*keys, **kwargs)
    for request in connect(session):
        ack(session, request)
    session.events_received()
    return session


def delivered(found: list[ev.Event]) -> list[int | None]:
    return [e.message.seq_id for e in found if isinstance(e, ev.StreamMessage)]


# --- connection states -------------------------------------------------------------------


def test_nothing_is_sent_before_connection_connected() -> None:
    session = new_session()
    assert session.state is ConnectionState.AWAITING_CONNECTED
    assert session.data_to_send() == []
    requests = connect(session)
    assert session.state is ConnectionState.READY
    assert [(r["payload"]["channel"], r["payload"]["action"]) for r in requests] == [
        (spec.CHANNEL_SIGNAL, "subscribe"), (spec.CHANNEL_POSITIONS, "subscribe")]
    ids = [r["request_id"] for r in requests]
    assert len(set(ids)) == 2 and all(len(i) <= spec.MAX_REQUEST_ID_LENGTH for i in ids)
    assert all(r["timestamp"] == protocol.format_timestamp(WALL) for r in requests)
    assert all("resume_from" not in r["payload"] for r in requests)


def test_a_second_connected_message_does_not_resubscribe() -> None:
    session = new_session()
    connect(session)
    receive(session, frame(spec.MSG_CONNECTED), 0.3)
    assert session.data_to_send() == []
    assert isinstance(session.events_received()[0], ev.OtherControl)


def test_resume_from_comes_from_the_filter_for_signals_only() -> None:
    session = new_session(cursors={SIGNAL: 41, POSITIONS: 9})
    requests = connect(session)
    assert requests[0]["payload"]["resume_from"] == "41"
    assert "resume_from" not in requests[1]["payload"]


def test_every_heartbeat_is_acked_at_once_with_the_wall_clock() -> None:
    session = new_session()
    receive(session, frame(spec.MSG_HEARTBEAT), 5.0)
    assert sent(session) == [{"msg_type": "heartbeat.ack",
                              "timestamp": protocol.format_timestamp(WALL)}]
    assert isinstance(session.events_received()[0], ev.HeartbeatAnswered)
    assert session.last_heartbeat == 5.0


def test_illegal_transitions_are_refused() -> None:
    session = ready(SIGNAL)
    session.fail(EndReason.LOST, "gone")
    assert session.state is ConnectionState.ENDED
    with pytest.raises(RuntimeError, match="cannot go from ended to ready"):
        session._move_to(ConnectionState.READY)


def test_the_first_ending_wins() -> None:
    session = ready(SIGNAL)
    session.fail(EndReason.SILENT, "first")
    session.fail(EndReason.LOST, "second")
    assert session.ended == ev.ConnectionEnd(EndReason.SILENT, "first")


# --- subscriptions at any time ---------------------------------------------------------------


def test_acks_and_errors_are_matched_by_request_id() -> None:
    session = new_session()
    signal_request, positions_request = connect(session)
    ack(session, signal_request)
    receive(session, frame(spec.MSG_ERROR, request_id=positions_request["request_id"], payload={
        "code": "FORBIDDEN", "field": "StrategyId",
        "message": "Not authorized to subscribe to Strategy"}))
    confirmed, rejected = session.events_received()
    assert isinstance(confirmed, ev.SubscriptionConfirmed) and confirmed.key == SIGNAL
    assert isinstance(rejected, ev.SubscriptionRejected) and rejected.key == POSITIONS
    assert rejected.errors[0].code == "FORBIDDEN"
    assert session.subscriptions[SIGNAL].state is SubscriptionState.ACTIVE
    assert session.subscriptions[POSITIONS].state is SubscriptionState.REJECTED
    assert session.all_answered and session.pending == {}


def test_unsubscribing_before_the_subscribe_ack_does_not_leave_it_active() -> None:
    session = new_session(SIGNAL)
    (subscribe,) = connect(session)
    session.unsubscribe(SIGNAL, now=0.3, wall=WALL)
    (unsubscribe,) = sent(session)
    assert unsubscribe["payload"]["action"] == "unsubscribe"
    ack(session, subscribe)  # the old answer arrives after we changed our mind
    assert session.subscriptions[SIGNAL].state is SubscriptionState.UNSUBSCRIBING
    assert not [e for e in session.events_received() if isinstance(e, ev.SubscriptionConfirmed)]
    ack(session, unsubscribe)
    assert SIGNAL not in session.subscriptions
    assert isinstance(session.events_received()[0], ev.Unsubscribed)
    receive(session, signal(1))  # a straggler for a stream we left
    assert isinstance(session.events_received()[0], ev.UnexpectedStream)


def test_subscribing_again_while_unsubscribing_ends_subscribed() -> None:
    session = ready(SIGNAL)
    session.unsubscribe(SIGNAL, now=1, wall=WALL)
    session.subscribe(SIGNAL, now=1, wall=WALL)
    unsubscribe, subscribe = sent(session)
    ack(session, unsubscribe)
    ack(session, subscribe)
    assert session.subscriptions[SIGNAL].state is SubscriptionState.ACTIVE


def test_a_subscription_added_later_is_sent_at_once() -> None:
    session = ready(SIGNAL)
    other = SubscriptionKey(7, spec.CHANNEL_SIGNAL)
    session.subscribe(other, now=2, wall=WALL)
    (request,) = sent(session)
    assert request["payload"]["strategy_id"] == 7
    assert session.subscriptions[other].state is SubscriptionState.SUBSCRIBING


def test_unsubscribing_a_queued_subscription_sends_nothing() -> None:
    session = new_session(SIGNAL)
    session.unsubscribe(SIGNAL, now=0, wall=WALL)
    assert connect(session) == []


def test_a_hundred_subscriptions_fit_one_connection_and_no_more() -> None:
    keys = [SubscriptionKey(i, spec.CHANNEL_SIGNAL) for i in range(1, 101)]
    session = new_session(*keys)
    assert len(session.subscriptions) == 100
    with pytest.raises(SubscriptionLimitError, match="at most 100"):
        session.subscribe(SubscriptionKey(101, spec.CHANNEL_SIGNAL), now=0, wall=WALL)


def test_error_without_a_known_request_id_is_a_server_error() -> None:
    session = new_session()
    receive(session, frame(spec.MSG_ERROR, payload={"errors": [
        {"code": "INVALID_PARAMETER", "field": "Timestamp", "message": "skew"},
        {"code": "INVALID_PARAMETER", "field": "Channel", "message": "bad"}]}))
    (event,) = session.events_received()
    assert isinstance(event, ev.ServerError)
    assert [e.field for e in event.errors] == ["Timestamp", "Channel"]
    assert session.ended is None


def test_an_unauthorized_error_ends_the_session_for_good() -> None:
    session = ready(SIGNAL)
    receive(session, frame(spec.MSG_ERROR, payload={"code": "UNAUTHORIZED", "message": "no"}))
    assert session.ended is not None and session.ended.reason is EndReason.AUTH_FAILED


def test_an_ack_nobody_asked_for_is_other_control() -> None:
    session = new_session()
    receive(session, frame(spec.MSG_SUBSCRIPTION_ACK, request_id="someone-else"))
    assert isinstance(session.events_received()[0], ev.OtherControl)


def test_close_unsubscribes_what_is_live_and_ignores_streams_meanwhile() -> None:
    session = ready()
    assert session.close(now=3, wall=WALL) == 2
    assert session.state is ConnectionState.CLOSING
    requests = sent(session)
    assert {r["payload"]["action"] for r in requests} == {"unsubscribe"}
    assert session.awaiting_unsubscribe == 2
    receive(session, signal(5))
    assert not delivered(session.events_received()) and session.dropped_while_leaving == 1
    for request in requests:
        ack(session, request)
    assert session.awaiting_unsubscribe == 0
    session.close_received(1000, "")
    assert session.ended is not None and session.ended.reason is EndReason.STOPPED


# --- deadlines -----------------------------------------------------------------------------


def test_no_connection_connected_within_the_deadline_ends_the_session() -> None:
    session = new_session(timeouts=SessionTimeouts(connected=10.0))
    assert session.next_deadline() == 10.0
    session.handle_timeout(now=9.9, wall=WALL)
    assert session.ended is None
    session.handle_timeout(now=10.0, wall=WALL)
    assert session.ended is not None and session.ended.reason is EndReason.NO_CONNECTED


def test_an_unanswered_subscription_ends_the_session() -> None:
    session = new_session(SIGNAL, timeouts=SessionTimeouts(ack=5.0))
    connect(session, now=1.0)
    assert session.next_deadline() == 6.0
    session.handle_timeout(now=6.0, wall=WALL)
    assert session.ended is not None and session.ended.reason is EndReason.NO_ACK
    assert "subscribe strategy.signal:12345678" in session.ended.detail


def test_silence_past_the_deadline_ends_the_session() -> None:
    session = ready(timeouts=SessionTimeouts(silence=45.0))
    receive(session, frame(spec.MSG_HEARTBEAT), 10.0)
    assert session.next_deadline() == 55.0
    session.handle_timeout(now=54.9, wall=WALL)
    assert session.ended is None
    session.handle_timeout(now=55.0, wall=WALL)
    assert session.ended == ev.ConnectionEnd(
        EndReason.SILENT, "nothing (not even a heartbeat) arrived for 45 s")
    assert session.next_deadline() is None


@pytest.mark.parametrize(
    ("code", "reason", "expected", "detail"),
    [
        (None, "", EndReason.SERVER_CLOSED, "the server closed the connection without a code"),
        (1012, "restart", EndReason.SERVER_CLOSED,
         "the server closed the connection (code 1012: restart)"),
        (1008, "", EndReason.BUSY,
         "the server closed the connection (code 1008 (too many connections for this key?))"),
    ],
)
def test_the_servers_close_frame_says_who_closed_and_why(
    code: int | None, reason: str, expected: EndReason, detail: str
) -> None:
    session = ready(SIGNAL)
    session.close_received(code, reason)
    assert session.ended == ev.ConnectionEnd(expected, detail, code)


# --- exactly once ----------------------------------------------------------------------------


def test_stream_messages_advance_the_cursor_and_replayed_duplicates_are_dropped() -> None:
    stream_filter = StreamFilter([SIGNAL], {SIGNAL: 2})
    session = ready(SIGNAL, stream_filter=stream_filter)  # resumed from 2: replaying
    for seq in (1, 2, 3, 4):
        receive(session, signal(seq))
    found = session.events_received()
    assert delivered(found) == [3, 4]
    assert [e.seq_id for e in found if isinstance(e, ev.DuplicateDropped)] == [1, 2]
    assert stream_filter.held(SIGNAL) == 4
    assert [e.cursor for e in found if isinstance(e, ev.StreamMessage)] == [3, 4]


def test_a_seq_going_backwards_outside_a_replay_is_dropped_and_reported() -> None:
    session = ready(SIGNAL)
    for seq in (1, 2, 3, 2):
        receive(session, signal(seq))
    found = session.events_received()
    assert delivered(found) == [1, 2, 3]
    (backwards,) = [e for e in found if isinstance(e, ev.SequenceBackwards)]
    assert (backwards.cursor, backwards.received) == (3, 2)


def test_the_filter_survives_the_connection_so_a_reconnect_does_not_double() -> None:
    stream_filter = StreamFilter([SIGNAL], {})
    first = ready(SIGNAL, stream_filter=stream_filter)
    for seq in (1, 2, 3):
        receive(first, signal(seq))
    first.fail(EndReason.LOST, "gone")
    second = new_session(SIGNAL, stream_filter=stream_filter)
    (request,) = connect(second)
    assert request["payload"]["resume_from"] == "3"
    ack(second, request)
    for seq in (3, 4):
        receive(second, signal(seq))
    assert delivered(second.events_received()) == [4]


def test_a_jump_in_signal_seq_is_reported_but_delivered() -> None:
    session = ready(SIGNAL)
    receive(session, signal(1))
    receive(session, signal(4))
    found = session.events_received()
    (jump,) = [e for e in found if isinstance(e, ev.SequenceJump)]
    assert (jump.key, jump.expected, jump.received, jump.suspect) == (SIGNAL, 2, 4, False)
    assert delivered(found) == [1, 4]


def test_an_absurd_jump_is_delivered_without_moving_the_cursor() -> None:
    session = ready(SIGNAL)
    absurd = 10 + spec.SUSPECT_SEQ_JUMP + 1
    for seq in (10, absurd, 11):
        receive(session, signal(seq))
    found = session.events_received()
    assert delivered(found) == [10, absurd, 11]
    assert [e.cursor for e in found if isinstance(e, ev.StreamMessage)] == [10, None, 11]
    assert any(isinstance(e, ev.SequenceJump) and e.suspect for e in found)


def test_a_renumbering_confirmed_by_the_next_message_is_followed() -> None:
    session = ready(SIGNAL)
    big = 10 + spec.SUSPECT_SEQ_JUMP + 1
    for seq in (10, big, big + 1, big + 2):
        receive(session, signal(seq))
    found = session.events_received()
    assert delivered(found) == [10, big, big + 1, big + 2]
    assert [e.cursor for e in found if isinstance(e, ev.StreamMessage)][-1] == big + 2


def test_positions_may_jump_without_a_warning() -> None:
    session = ready(POSITIONS)
    for seq in (1, 5):
        receive(session, frame(spec.CHANNEL_POSITIONS, seq_id=seq,
                               payload={"StrategyId": 12345678}))
    assert not any(isinstance(e, ev.SequenceJump) for e in session.events_received())


def gap(strategy_id: int = 12345678, from_seq: int | str = 11) -> bytes:
    return frame(spec.MSG_GAP, payload={
        "strategy_id": None, "channel": f"strategy.signal:{strategy_id}", "from": from_seq,
        "message": "Replay limit of 1000 messages exceeded"})


def test_a_gap_is_announced_then_reported_with_both_ends_of_the_hole() -> None:
    session = ready(SIGNAL, cursors={SIGNAL: 10})
    receive(session, signal(11, timestamp="2027-01-15T08:00:11Z"))
    receive(session, gap(from_seq="11"))
    receive(session, signal(5000, timestamp="2027-01-15T09:00:00Z"))
    receive(session, signal(5002))
    found = session.events_received()
    (announced,) = [e for e in found if isinstance(e, ev.GapAnnounced)]
    assert (announced.key, announced.last_seq) == (SIGNAL, 11)
    (reported,) = [e for e in found if isinstance(e, ev.GapReported)]
    assert (reported.last_seq, reported.last_timestamp, reported.next_seq,
            reported.next_timestamp) == (11, "2027-01-15T08:00:11Z", 5000, "2027-01-15T09:00:00Z")
    assert found.index(reported) == found.index(
        next(e for e in found if isinstance(e, ev.StreamMessage) and e.message.seq_id == 5000)) - 1
    jumps = [e for e in found if isinstance(e, ev.SequenceJump)]
    assert [(j.expected, j.received) for j in jumps] == [(5001, 5002)]  # the gap is no jump


def test_a_gap_filled_by_a_later_replay_is_no_loss() -> None:
    session = ready(SIGNAL, cursors={SIGNAL: 10})
    receive(session, gap(from_seq=10))
    receive(session, signal(11))
    found = session.events_received()
    assert any(isinstance(e, ev.GapFilled) for e in found)
    assert not any(isinstance(e, ev.GapReported) for e in found)


def test_a_gap_whose_far_end_never_came_is_still_reported() -> None:
    stream_filter = StreamFilter([SIGNAL], {SIGNAL: 10})
    session = ready(SIGNAL, stream_filter=stream_filter)
    receive(session, gap(from_seq=10))
    (unresolved,) = stream_filter.unresolved_gaps()
    assert (unresolved.last_seq, unresolved.next_seq) == (10, None)


def test_messages_and_gaps_for_streams_not_subscribed_keep_no_state() -> None:
    stream_filter = StreamFilter([SIGNAL], {})
    session = ready(SIGNAL, stream_filter=stream_filter)
    for strategy in range(1, 200):
        receive(session, signal(1, strategy_id=strategy + 100))
        receive(session, gap(strategy_id=strategy + 100))
    found = session.events_received()
    assert all(isinstance(e, ev.UnexpectedStream) for e in found)
    assert stream_filter.unresolved_gaps() == [] and stream_filter.held(SIGNAL) is None
    assert len(session.subscriptions) == 1


@pytest.mark.parametrize("payload", [{"StrategyId": 5}, {"strategy_id": "5"}, {"strategyId": 5}])
def test_strategy_is_found_under_any_key_case(payload: dict[str, object]) -> None:
    assert protocol.strategy_id_of(payload) == 5


def test_payload_without_strategy_is_placed_on_the_only_subscription_of_its_channel() -> None:
    session = ready(SIGNAL)
    receive(session, frame(spec.CHANNEL_SIGNAL, seq_id=3, payload={}))
    (event,) = session.events_received()
    assert isinstance(event, ev.StreamMessage) and event.key == SIGNAL


def test_payload_without_strategy_among_several_is_delivered_unplaced() -> None:
    session = ready(SIGNAL, SubscriptionKey(2, spec.CHANNEL_SIGNAL))
    receive(session, frame(spec.CHANNEL_SIGNAL, seq_id=3, payload={}))
    (event,) = session.events_received()
    assert isinstance(event, ev.StreamMessage) and event.key is None


def test_without_decoded_payloads_a_frame_keeps_only_its_bytes_and_header() -> None:
    session = ready(SIGNAL, decoded_payloads=False)
    one_line = signal(1)
    spanning = b'{"msg_type": "strategy.signal", "seq_id": 2,\n "payload": {"StrategyId": %d}}' % (
        SIGNAL.strategy_id)
    receive(session, one_line)
    receive(session, spanning)
    first, second = (e for e in session.events_received() if isinstance(e, ev.StreamMessage))
    # Placed, ordered and passed through exactly as with payloads...
    assert (first.key, first.cursor, first.message.seq_id) == (SIGNAL, 1, 1)
    assert first.message.data == one_line and first.message.msg_type == spec.CHANNEL_SIGNAL
    assert first.message.timestamp == "2027-01-15T08:00:00Z"
    # ...but the decoded objects are gone (the writer turns line breaks into spaces).
    assert first.message.payload == {} and first.message.raw == {}
    assert second.cursor == 2 and second.message.data == spanning
    assert second.message.payload == {} and second.message.raw == {}
    # A frame given as text (never from a socket) keeps them: nothing else could write it.
    session.receive(signal(3).decode(), now=1.0, wall=WALL)
    (third,) = (e for e in session.events_received() if isinstance(e, ev.StreamMessage))
    assert third.message.payload["StrategyId"] == SIGNAL.strategy_id
    # Control messages are untouched.
    receive(session, frame(spec.MSG_HEARTBEAT, payload={"n": 1}))
    assert session.data_to_send()


def test_decoded_payloads_are_kept_by_default() -> None:
    session = ready(SIGNAL)
    receive(session, signal(1))
    (message,) = (e for e in session.events_received() if isinstance(e, ev.StreamMessage))
    assert message.message.payload["StrategyId"] == 12345678
    assert message.message.raw["seq_id"] == 1


def test_unknown_and_malformed_frames_become_events_not_exceptions() -> None:
    session = new_session()
    receive(session, frame("strategy.orders"))
    receive(session, b"{nope")
    receive(session, b'{"msg_type": "\xff"}')
    unknown, malformed, bad_utf8 = session.events_received()
    assert isinstance(unknown, ev.UnknownMessage) and unknown.message.msg_type == "strategy.orders"
    assert isinstance(malformed, ev.MalformedFrame) and malformed.size == 5
    assert isinstance(bad_utf8, ev.MalformedFrame)


def test_a_huge_digit_string_strategy_id_is_no_crash() -> None:
    session = ready(SIGNAL)
    receive(session, frame(spec.CHANNEL_SIGNAL, seq_id=1, payload={"StrategyId": "1" * 5000}))
    receive(session, frame(spec.MSG_GAP, payload={"channel": "strategy.signal:" + "7" * 5000,
                                                  "from": "8" * 5000}))
    assert session.ended is None
    session.events_received()


# --- sequence resets: a cursor ahead of the server ---------------------------------------------

WINDOW = spec.REPLAY_WINDOW_SECONDS
NEW = "2027-01-15T09:00:00Z"  # timestamps of the new numbering


def resumed(cursor: int, ack_at: float = 0.2) -> tuple[ClientSession, StreamFilter]:
    """A session that resubscribed SIGNAL with resume_from=cursor, acked at ``ack_at``."""
    stream_filter = StreamFilter([SIGNAL], {SIGNAL: cursor})
    session = new_session(SIGNAL, stream_filter=stream_filter)
    (request,) = connect(session)
    assert request["payload"]["resume_from"] == str(cursor)
    ack(session, request, now=ack_at)
    session.events_received()
    return session, stream_filter


def of_type(found: list[ev.Event], kind: type) -> list[Any]:
    return [e for e in found if isinstance(e, kind)]


def test_restarted_numbering_after_a_resume_is_a_sequence_reset_when_the_replay_window_ends(
) -> None:
    session, stream_filter = resumed(500)
    for seq in (1, 2, 2, 3):  # the server lost its numbering; one true duplicate among them
        receive(session, signal(seq, timestamp=NEW), now=1.0)
    found = session.events_received()
    assert delivered(found) == [] and not of_type(found, ev.SequenceBackwards)
    assert [e.seq_id for e in of_type(found, ev.DuplicateDropped)] == [1, 2, 2, 3]  # quiet
    assert session.next_deadline() == 0.2 + WINDOW  # the replay window, on the timer
    session.handle_timeout(now=0.2 + WINDOW - 0.01, wall=WALL)
    assert session.events_received() == []
    session.handle_timeout(now=0.2 + WINDOW, wall=WALL)
    found = session.events_received()
    (reset,) = of_type(found, ev.SequenceReset)
    assert found[0] == reset
    assert (reset.key, reset.last_seq, reset.next_seq, reset.next_timestamp, reset.released,
            reset.cursor) == (SIGNAL, 500, 1, NEW, 3, 0)
    assert [e.cursor for e in of_type(found, ev.StreamMessage)] == [1, 2, 3]
    assert [e.seq_id for e in of_type(found, ev.DuplicateDropped)] == [2]
    assert stream_filter.held(SIGNAL) == 3
    assert not session.subscriptions[SIGNAL].replaying  # the status no longer says so
    receive(session, signal(4, timestamp=NEW), now=11.0)
    found = session.events_received()
    assert delivered(found) == [4] and len(found) == 1  # the new numbering, followed
    assert session.next_deadline() == 11.0 + session.timeouts.silence


def test_a_cursor_far_ahead_is_reset_even_when_frames_keep_the_timer_from_running() -> None:
    """A state file restored with 1,000,000: the window ends while messages keep coming;
    the next one applies the verdict (no timer tick needed), then is delivered itself."""
    session, stream_filter = resumed(1_000_000)
    receive(session, signal(1, timestamp=NEW), now=1.0)
    receive(session, signal(2, timestamp=NEW), now=5.0)
    assert delivered(session.events_received()) == []
    receive(session, signal(3, timestamp=NEW), now=0.2 + WINDOW + 1)
    found = session.events_received()
    (reset,) = of_type(found, ev.SequenceReset)
    assert (reset.last_seq, reset.next_seq, reset.released) == (1_000_000, 1, 2)
    assert delivered(found) == [1, 2, 3] and not of_type(found, ev.SequenceJump)
    assert stream_filter.held(SIGNAL) == 3


def test_a_replay_that_overlaps_the_cursor_then_goes_on_is_no_reset() -> None:
    """The server replays R-5..R then R+1: no reset, no duplicate."""
    session, stream_filter = resumed(10)
    for seq in range(5, 11):
        receive(session, signal(seq), now=1.0)
    receive(session, signal(11), now=2.0)
    session.handle_timeout(now=0.2 + WINDOW + 1, wall=WALL)
    found = session.events_received()
    assert not of_type(found, ev.SequenceReset)
    assert delivered(found) == [11]
    assert [e.seq_id for e in of_type(found, ev.DuplicateDropped)] == list(range(5, 11))
    assert stream_filter.held(SIGNAL) == 11
    assert not session.subscriptions[SIGNAL].replaying
    assert session.next_deadline() == session.last_received + session.timeouts.silence


def test_a_renumbering_that_reaches_the_cursor_is_still_a_reset() -> None:
    """A young stream: the cursor is 2 and the new numbering's 1 and 2 arrive.  Nothing
    above the cursor follows within the window, so they are delivered.  (The price, for
    a server that replays at or below resume_from, which the protocol does not do, and
    then sends nothing for the whole window: that overlap is delivered again, after a
    sequence.reset line.)"""
    session, stream_filter = resumed(2)
    receive(session, signal(1, timestamp=NEW), now=1.0)
    receive(session, signal(2, timestamp=NEW), now=1.0)
    session.handle_timeout(now=0.2 + WINDOW, wall=WALL)
    found = session.events_received()
    (reset,) = of_type(found, ev.SequenceReset)
    assert (reset.last_seq, reset.next_seq, reset.released) == (2, 1, 2)
    assert delivered(found) == [1, 2] and stream_filter.held(SIGNAL) == 2


def test_a_stray_old_duplicate_in_live_delivery_followed_by_the_next_message_is_no_reset(
) -> None:
    session = ready(SIGNAL)
    for seq in range(1, 51):
        receive(session, signal(seq), now=1.0)
    session.events_received()
    receive(session, signal(47), now=2.0)
    found = session.events_received()
    assert found == [ev.SequenceBackwards(SIGNAL, 50, 47)]  # loud, at once
    assert session.next_deadline() == 2.0 + WINDOW
    receive(session, signal(51), now=3.0)
    session.handle_timeout(now=2.0 + WINDOW, wall=WALL)
    found = session.events_received()
    assert delivered(found) == [51] and not of_type(found, ev.SequenceReset)


def test_a_renumbering_during_live_delivery_is_reported_at_once_then_reset() -> None:
    session = ready(SIGNAL)
    for seq in range(1, 51):
        receive(session, signal(seq), now=1.0)
    session.events_received()
    receive(session, signal(1, timestamp=NEW), now=2.0)
    receive(session, signal(2, timestamp=NEW), now=3.0)
    found = session.events_received()
    assert found == [ev.SequenceBackwards(SIGNAL, 50, 1), ev.SequenceBackwards(SIGNAL, 50, 2)]
    assert session.next_deadline() == 2.0 + WINDOW  # from the first one held aside
    session.handle_timeout(now=2.0 + WINDOW, wall=WALL)
    found = session.events_received()
    (reset,) = of_type(found, ev.SequenceReset)
    assert (reset.last_seq, reset.next_seq, reset.released) == (50, 1, 2)
    assert delivered(found) == [1, 2]


def test_more_held_aside_than_any_replay_is_a_reset_at_once() -> None:
    session, stream_filter = resumed(5000)
    for seq in range(1, spec.HELD_ASIDE_LIMIT + 1):
        receive(session, signal(seq), now=1.0)
    found = session.events_received()
    assert delivered(found) == []
    cursor = session.subscriptions[SIGNAL].cursor
    assert cursor.aside is not None and len(cursor.aside) == spec.HELD_ASIDE_LIMIT  # the bound
    receive(session, signal(spec.HELD_ASIDE_LIMIT + 1), now=1.0)
    found = session.events_received()
    (reset,) = of_type(found, ev.SequenceReset)
    assert reset.released == spec.HELD_ASIDE_LIMIT + 1
    assert delivered(found) == list(range(1, spec.HELD_ASIDE_LIMIT + 2))
    assert stream_filter.held(SIGNAL) == spec.HELD_ASIDE_LIMIT + 1
    assert cursor.aside is None


def test_what_is_held_aside_survives_a_reconnect_and_the_next_replay_decides() -> None:
    session, stream_filter = resumed(500)
    receive(session, signal(1, timestamp=NEW), now=1.0)
    session.fail(EndReason.LOST, "gone")
    assert session.events_received() == [ev.DuplicateDropped(SIGNAL, 1)]
    again = new_session(SIGNAL, stream_filter=stream_filter)
    (request,) = connect(again, now=30.0)
    assert request["payload"]["resume_from"] == "500"  # the cursor did not move
    ack(again, request, now=30.1)
    receive(again, signal(2, timestamp=NEW), now=31.0)
    again.handle_timeout(now=30.1 + WINDOW, wall=WALL)
    found = again.events_received()
    (reset,) = of_type(found, ev.SequenceReset)
    assert (reset.next_seq, reset.released) == (1, 2) and delivered(found) == [1, 2]


def test_the_replay_phase_ends_with_its_window_even_when_nothing_came() -> None:
    session, _ = resumed(500)
    sub = session.subscriptions[SIGNAL]
    assert sub.replaying and session.next_deadline() == 0.2 + WINDOW
    session.handle_timeout(now=0.2 + WINDOW, wall=WALL)
    assert not sub.replaying and session.events_received() == []
    assert session.next_deadline() == session.last_received + session.timeouts.silence
    receive(session, signal(3), now=20.0)  # now backwards is loud at once
    assert session.events_received() == [ev.SequenceBackwards(SIGNAL, 500, 3)]


def test_a_reset_reports_the_gap_announced_in_the_old_numbering() -> None:
    session, _ = resumed(500)
    receive(session, frame(spec.MSG_GAP, payload={
        "channel": f"strategy.signal:{SIGNAL.strategy_id}", "from": "500",
        "message": "Replay limit of 1000 messages exceeded"}), now=1.0)
    receive(session, signal(1, timestamp=NEW), now=1.0)
    session.handle_timeout(now=0.2 + WINDOW, wall=WALL)
    found = session.events_received()
    (gap,) = of_type(found, ev.GapReported)
    (reset,) = of_type(found, ev.SequenceReset)
    assert (gap.last_seq, gap.next_seq) == (500, None)
    assert found.index(gap) < found.index(reset) and delivered(found) == [1]
    assert not of_type(found, ev.GapFilled)


# --- properties ----------------------------------------------------------------------------


@given(st.lists(st.binary(max_size=120), max_size=20))
def test_arbitrary_frames_never_raise(frames: list[bytes]) -> None:
    session = ready()
    for data in frames:
        receive(session, data)
    session.events_received()


@given(st.lists(st.integers(min_value=1, max_value=40), max_size=60))
def test_each_seq_id_is_delivered_at_most_once_and_in_increasing_order(seqs: list[int]) -> None:
    session = ready(SIGNAL)
    for seq in seqs:
        receive(session, signal(seq))
    seen = delivered(session.events_received())
    assert seen == sorted(set(seen))
    if seqs:
        assert seen[0] == seqs[0] and seen[-1] == max(seqs)


ACTIONS = st.lists(
    st.tuples(st.sampled_from(["subscribe", "unsubscribe", "ack", "error", "close"]),
              st.sampled_from([SIGNAL, POSITIONS])),
    max_size=30,
)


@given(ACTIONS)
def test_any_order_of_commands_and_answers_keeps_the_state_consistent(
    steps: list[tuple[str, SubscriptionKey]],
) -> None:
    session = ready()
    requests: list[dict[str, Any]] = []
    for action, key in steps:
        if action == "subscribe":
            session.subscribe(key, now=1, wall=WALL)
        elif action == "unsubscribe":
            session.unsubscribe(key, now=1, wall=WALL)
        elif action == "close":
            session.close(now=1, wall=WALL)
        requests.extend(sent(session))
        if action in ("ack", "error") and requests:
            request = requests.pop(0)
            if action == "ack":
                ack(session, request)
            else:
                receive(session, frame(spec.MSG_ERROR, request_id=request["request_id"],
                                       payload={"code": "FORBIDDEN", "message": "no"}))
    # Every pending request is the newest one for its key, and each key has at most one.
    newest = {sub.request_id for sub in session.subscriptions.values()}
    for request_id, pending in session.pending.items():
        if request_id in newest:
            assert session.subscriptions[pending.key].request_id == request_id
    if session.state is ConnectionState.CLOSING:
        assert all(sub.state is not SubscriptionState.ACTIVE
                   for sub in session.subscriptions.values())
