"""ClientSession.receive_frames (the short path for the usual stream message) against the
general path, frame by frame: the same events, cursors and state, on any mix of
frames, with payloads decoded or not, across replay windows, backwards runs, messages
held aside and sequence resets."""

from __future__ import annotations

import json
from typing import Any

import hypothesis
import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from c2ws import events as ev
from c2ws import session as session_module
from c2ws import spec, speedups
from c2ws.delivery import dedupe
from c2ws.delivery.dedupe import StreamFilter
from c2ws.events import SubscriptionKey
from c2ws.session import ClientSession, ConnectionState

STRATEGIES = (12345678, 23456789)
SIGNAL = SubscriptionKey(STRATEGIES[0], spec.CHANNEL_SIGNAL)
KEYS = (SIGNAL, SubscriptionKey(STRATEGIES[0], spec.CHANNEL_POSITIONS),
        SubscriptionKey(STRATEGIES[1], spec.CHANNEL_SIGNAL))
WALL = 1_800_000_000.0
JUMP = spec.SUSPECT_SEQ_JUMP + 1  # an implausible jump in seq_id


def envelope(msg_type: str, **fields: Any) -> dict[str, Any]:
    return {"msg_type": msg_type, "id": "msg_1", "timestamp": "2027-01-15T08:00:00Z", "v": 4,
            **fields}


def ready_session(decoded_payloads: bool, cursors: dict[SubscriptionKey, int],
                  answers: list[str], message_runs: bool = False) -> ClientSession:
    """Connected, each subscription answered as ``answers`` says (ack, reject, pending:
    not yet answered, or unsubscribing: acked, then unsubscribed without an answer yet),
    signals resuming from ``cursors``."""
    session = ClientSession(request_id_prefix="c2ws-test",
                            stream_filter=StreamFilter(KEYS, cursors), now=0.0,
                            decoded_payloads=decoded_payloads, message_runs=message_runs)
    for key in KEYS:
        session.subscribe(key, now=0.0, wall=WALL)
    session.receive(orjson.dumps(envelope(spec.MSG_CONNECTED)), now=0.1, wall=WALL)
    for key, answer, data in zip(KEYS, answers, session.data_to_send(), strict=True):
        request = orjson.loads(data)
        if answer in ("ack", "unsubscribing"):
            session.receive(orjson.dumps(envelope(
                spec.MSG_SUBSCRIPTION_ACK, request_id=request["request_id"],
                payload=request["payload"])), now=0.2, wall=WALL)
        if answer == "reject":
            session.receive(orjson.dumps(envelope(
                spec.MSG_ERROR, request_id=request["request_id"],
                payload={"code": "NOT_FOUND", "message": "no such strategy"})), now=0.2, wall=WALL)
        if answer == "unsubscribing":
            session.unsubscribe(key, now=0.3, wall=WALL)
    session.events_received()
    return session


@st.composite
def stream_frame(draw: st.DrawFn, counters: dict[tuple[str, object], int]) -> bytes:
    """Mostly the usual: the next seq_id of a subscribed stream, one line, ASCII."""
    msg_type = draw(st.sampled_from([spec.CHANNEL_SIGNAL, spec.CHANNEL_POSITIONS]))
    payload: dict[str, Any] = {"Side": "1", "C2Symbol": {"FullSymbol": "@ESZ6"}}
    strategy = draw(st.sampled_from([*STRATEGIES * 8, 999, "12345678", True, None]))
    if strategy is not None:
        payload["StrategyId"] = strategy
    elif draw(st.booleans()):
        payload["strategy_id"] = draw(st.sampled_from(STRATEGIES))
    fields: dict[str, Any] = {"payload": payload}
    # Runs of consecutive seq_ids per stream (starting below and at a resume cursor of
    # 10), with repeats, steps back, jumps, implausible jumps and returns from them, a
    # server that restarts its numbering (then runs below the cursor, held aside), and
    # odd values.
    step = draw(st.sampled_from(
        [1] * 8 + [0, -1, -3, 2, 5000, JUMP, 1 - JUMP, "none", "odd", "restart"]))
    if step == "odd":
        fields["seq_id"] = draw(st.sampled_from([1.5, -3, "7", 2**64 - 1]))
    elif step == "restart":
        stream = (msg_type, strategy)
        counters[stream] = draw(st.sampled_from([0, 1, 2]))
        fields["seq_id"] = counters[stream]
    elif step != "none":
        stream = (msg_type, strategy)
        counters[stream] = counters.get(stream, draw(st.sampled_from([1, 9, 10, 11]))) + int(step)
        fields["seq_id"] = counters[stream]
    data = envelope(msg_type, **fields)
    shape = draw(st.sampled_from(["compact"] * 6 + ["lines", "non-ascii", "carriage", "huge"]))
    if shape == "huge":  # valid JSON, but beyond what orjson (and a double) can hold
        return orjson.dumps(data)[:-1] + b',"Big":1e400}'
    if shape == "lines":
        return json.dumps(data, indent=1).encode()
    if shape == "non-ascii":
        data["payload"]["Notes"] = "é"
        return json.dumps(data, ensure_ascii=False).encode()
    if shape == "carriage":
        return json.dumps(data, separators=(",\r", ":")).encode()
    return orjson.dumps(data)


UNAUTHORIZED = orjson.dumps(envelope(spec.MSG_ERROR, payload={"code": "UNAUTHORIZED"}))
other_frames = st.one_of(
    st.just(orjson.dumps(envelope(spec.MSG_HEARTBEAT))),
    st.just(orjson.dumps(envelope(spec.MSG_GAP, payload={
        "channel": f"strategy.signal:{STRATEGIES[0]}", "from": 5,
        "message": "Replay limit of 1000 messages exceeded"}))),
    st.just(orjson.dumps(envelope("strategy.orders", payload={"StrategyId": STRATEGIES[0]}))),
    st.just(b"{nope"),
    st.just(b'{"msg_type": "strategy.signal", "seq_id": 3, "payload": {"StrategyId": 1e400}}'),
    st.binary(max_size=12),
)


MARKER = b"Zq7-Xj"


@st.composite
def burst(draw: st.DrawFn, counters: dict[tuple[str, object], int]) -> list[bytes]:
    """What one socket read brings in a blast: the next messages of one stream (a run),
    now and then with one frame that is not (a step, another stream, another shape)."""
    msg_type = draw(st.sampled_from([spec.CHANNEL_SIGNAL, spec.CHANNEL_POSITIONS]))
    strategy = draw(st.sampled_from(STRATEGIES))
    stream = (msg_type, strategy)
    frames = []
    for _ in range(draw(st.integers(2, 12))):
        counters[stream] = counters.get(stream, draw(st.sampled_from([0, 10]))) + 1
        frames.append(orjson.dumps(envelope(msg_type, seq_id=counters[stream], payload={
            "StrategyId": strategy, "Side": "1"})))
    if draw(st.booleans()):
        frames.insert(draw(st.integers(0, len(frames))), draw(st.one_of(
            stream_frame(counters), other_frames,
            st.just(json.dumps(envelope(msg_type, seq_id=counters[stream] + 1, payload={
                "StrategyId": strategy}), indent=1).encode()),
            st.just(orjson.dumps(envelope(msg_type, seq_id=counters[stream] + 1, payload={
                "StrategyId": strategy, "Note": MARKER.decode()}))))))
    return frames


@st.composite
def frame_batches(draw: st.DrawFn) -> list[list[bytes]]:
    counters: dict[tuple[str, object], int] = {}
    frame = st.sampled_from(range(12)).flatmap(
        lambda odds: other_frames if odds == 0 else stream_frame(counters))
    batch = st.sampled_from(range(3)).flatmap(
        lambda odds: st.lists(frame, max_size=30) if odds == 0 else burst(counters))
    return draw(st.lists(batch, min_size=1, max_size=6))


def state_of(session: ClientSession) -> Any:
    cursors = {key: (sub.cursor.held, sub.cursor.held_timestamp, sub.cursor.suspect,
                     sub.cursor.gap, sub.replaying, sub.replay_until, sub.state,
                     sub.cursor.settled, sub.cursor.aside_until,
                     None if sub.cursor.aside is None else [s for _, s in sub.cursor.aside])
               for key, sub in session.subscriptions.items()}
    return (session.state, session.ended, session.last_received, session.dropped_while_leaving,
            cursors, session.data_to_send())


def comparable(events: list[ev.Event]) -> list[Any]:
    """Events with what their equality leaves out: the frame and raw object."""
    seen: list[Any] = []
    for event in events:
        message = getattr(event, "message", None)
        extra = (message.data, message.raw) if message is not None else None
        seen.append((event, extra))
    return seen


# Between batches: how much time passes (some steps go past the replay window), and
# whether the socket thread's timer ticks first.
PAUSES = st.lists(st.tuples(st.sampled_from([0.5, 1.0, 1.0, 6.0, spec.REPLAY_WINDOW_SECONDS + 1]),
                            st.booleans()), min_size=6, max_size=6)


def _signals(strategy: int, seqs: range) -> list[bytes]:
    return [orjson.dumps(envelope(spec.CHANNEL_SIGNAL, seq_id=seq, payload={
        "StrategyId": strategy, "Side": "1"})) for seq in seqs]


# Found by hypothesis: resumed streams; the other strategy's numbering goes back (held
# aside); the replay window passes while the socket is idle, then the next messages of
# the resumed stream come in a burst.  The general path applies the verdicts due first
# (the other stream's sequence reset) and only then the burst; the short path took the
# burst first.
_RESET_BEFORE_THE_BURST: dict[str, Any] = dict(
    batches=[[], [json.dumps(envelope(spec.CHANNEL_SIGNAL, seq_id=12, payload={
        "StrategyId": STRATEGIES[1]}), indent=1).encode(),
        *_signals(STRATEGIES[1], range(1, 12))], _signals(STRATEGIES[0], range(11, 13))],
    decoded=False, resume=True, answers=["ack", "ack", "ack"], close_before=3,
    unauthorized_at=13, pauses=[(0.5, False), (0.5, False), (11.0, False), (0.5, False),
                                (0.5, False), (0.5, False)], held_aside_limit=1000)


@settings(max_examples=500)
@example(**_RESET_BEFORE_THE_BURST)
@example(**{**_RESET_BEFORE_THE_BURST, "decoded": True})
@given(batches=frame_batches(), decoded=st.booleans(), resume=st.booleans(),
       answers=st.lists(st.sampled_from(["ack"] * 3 + ["reject", "pending", "unsubscribing"]),
                        min_size=len(KEYS), max_size=len(KEYS)),
       close_before=st.integers(0, 12), unauthorized_at=st.integers(0, 200),
       pauses=PAUSES, held_aside_limit=st.sampled_from([3, spec.HELD_ASIDE_LIMIT]))
def test_receive_frames_is_the_general_path_frame_by_frame(
    batches: list[list[bytes]], decoded: bool, resume: bool, answers: list[str],
    close_before: int, unauthorized_at: int, pauses: list[tuple[float, bool]],
    held_aside_limit: int,
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        # A small bound makes "more held aside than any replay" reachable here too.
        patch.setattr(dedupe, "_HELD_ASIDE_LIMIT", held_aside_limit)
        compare_paths(batches, decoded, resume, answers, close_before, unauthorized_at, pauses)


def compare_paths(
    batches: list[list[bytes]], decoded: bool, resume: bool, answers: list[str],
    close_before: int, unauthorized_at: int, pauses: list[tuple[float, bool]],
) -> None:
    cursors = {SIGNAL: 10} if resume else {}
    # Sometimes the server withdraws the authorization mid-batch: the session ends there.
    flat = [data for batch in batches for data in batch]
    if unauthorized_at < len(flat):
        where = 0
        for batch in batches:
            if where + len(batch) > unauthorized_at:
                batch.insert(unauthorized_at - where, UNAUTHORIZED)
                break
            where += len(batch)
    short = ready_session(decoded, cursors, answers)
    general = ready_session(decoded, cursors, answers)
    # Bursts as StreamRun events (the engine's sessions for NDJSON): expanded, the same.
    runs = ready_session(decoded, cursors, answers, message_runs=True)
    now = 0.5
    for number, batch in enumerate(batches):
        pause, tick = pauses[number]
        now += pause
        if tick:  # the deadline came while the socket was idle
            for session in (short, general, runs):
                session.handle_timeout(now=now, wall=WALL)
        if number == close_before:  # leaving: stream messages are no longer delivered
            for session in (short, general, runs):
                session.close(now=now, wall=WALL)
        short.receive_frames(batch, now=now, wall=WALL)
        receive_as_the_driver_does(runs, batch, now)
        for data in batch:
            if general.state is not ConnectionState.ENDED:  # what receive() does first
                general.last_received = now
            general._receive_one(data, now, WALL)
        found = short.events_received()
        expected = comparable(general.events_received())
        assert comparable(found) == expected
        in_runs = runs.events_received()
        assert comparable(ev.expand_runs(in_runs)) == expected
        assert state_of(short) == state_of(general) == state_of(runs)
        if any(isinstance(e, ev.StreamRun) for e in in_runs):
            hypothesis.event("StreamRun")
        for kind in (ev.SequenceReset, ev.SequenceBackwards, ev.GapReported):
            if any(isinstance(e, kind) for e in found):
                # How often the runs reach it: --hypothesis-show-statistics.
                hypothesis.event(kind.__name__)


def receive_as_the_driver_does(session: ClientSession, batch: list[bytes], now: float) -> None:
    """What the driver does with the frames of a read when its session makes message runs:
    the plain ones as NDJSON cut from the bytes read (up to the first that is not plain),
    the others as frames, in turn.  MARKER stands for the API key's."""
    chunk = b"".join(map(server_frame, batch))
    position = 0
    while position < len(chunk):
        lines, count, position = speedups.ndjson_burst(chunk, position, MARKER)
        if count:
            session.receive_burst(lines, count, now=now, wall=WALL)
        frames, position = speedups.text_burst(chunk, position)
        session.receive_frames(frames, now=now, wall=WALL)
    assert position == len(chunk)


def server_frame(payload: bytes) -> bytes:
    """An unmasked text frame (no frame here is 64 KiB long)."""
    if len(payload) < 126:
        return bytes((0x81, len(payload))) + payload
    return bytes((0x81, 126)) + len(payload).to_bytes(2, "big") + payload


def test_the_usual_frames_take_the_short_path() -> None:
    """Not a timing: the short path is what ran (the general one is never called)."""
    for decoded in (True, False):
        session = ready_session(decoded, {}, ["ack"] * len(KEYS))
        session._receive_one = _must_not_run  # type: ignore[method-assign]
        session._dispatch = _must_not_run  # type: ignore[method-assign]
        frames = [orjson.dumps(envelope(spec.CHANNEL_SIGNAL, seq_id=seq, payload={
            "StrategyId": STRATEGIES[0], "Side": "1"})) for seq in range(1, 50)]
        session.receive_frames(frames, now=1.0, wall=WALL)
        delivered = [e.cursor for e in session.events_received() if isinstance(e, ev.StreamMessage)]
        assert delivered == list(range(1, 50))


def test_a_lone_frame_takes_the_general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """An idle connection's heartbeat (or a quiet stream's message) does not bring the
    short path's code into the caches for one frame; the outcome is the same either way
    (the differential test above)."""
    monkeypatch.setattr(session_module, "read_stream_head", _must_not_run)
    session = ready_session(False, {}, ["ack"] * len(KEYS))
    session.receive(orjson.dumps(envelope(spec.MSG_HEARTBEAT)), now=1.0, wall=WALL)
    session.receive(orjson.dumps(envelope(spec.CHANNEL_SIGNAL, seq_id=1, payload={
        "StrategyId": STRATEGIES[0]})), now=1.0, wall=WALL)
    assert [type(e) for e in session.events_received()] == [ev.HeartbeatAnswered, ev.StreamMessage]
    assert session.data_to_send()  # the heartbeat was answered


def _must_not_run(*args: object) -> None:
    raise AssertionError("the general path ran for a usual frame")


def test_a_number_beyond_a_double_is_passed_through_not_dropped() -> None:
    """orjson refuses a number a double cannot hold, so a decoded payload cannot have it;
    but the frame is valid JSON, and a frame passed through byte for byte is delivered
    rather than dropped as malformed (alone or in a burst, on either path)."""
    data = (b'{"msg_type":"strategy.signal","seq_id":1,'
            b'"payload":{"StrategyId":%d,"Price":1e400}}' % STRATEGIES[0])
    for decoded, delivered in ((False, True), (True, False)):
        session = ready_session(decoded, {}, ["ack"] * len(KEYS))
        session.receive(data, now=1.0, wall=WALL)
        found = session.events_received()
        assert any(isinstance(e, ev.StreamMessage) and e.message.data == data
                   for e in found) is delivered
        assert any(isinstance(e, ev.MalformedFrame) for e in found) is not delivered
