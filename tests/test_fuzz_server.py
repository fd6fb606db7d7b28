"""Fuzzing the reference server's session: random bytes, random text, random JSON and
envelopes with a hostile value in any field (issue 12).

Whatever it is sent, ``ServerSession.receive`` answers with well-formed messages of the
documented types and never raises; the session keeps subscriptions only of strategies the
key may see (at most its limit) and the stream store does not change.

The checks are plain functions over a list of frames, so ``bench/fuzz_server_session.py``
runs the same properties for many more examples by hand.
"""

from __future__ import annotations

import json
from typing import Any, Final

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from c2ws import protocol, spec
from c2ws.server.core import ServerSession, StreamStore, sequential_message_ids

NOW: Final = 1_700_000_000.0
VISIBLE: Final = (12345678, 23456789)
MAX_SUBSCRIPTIONS: Final = 3
SUITE_EXAMPLES: Final = 1500  # per test; the bench script runs many more

REPLY_TYPES: Final = {spec.MSG_ERROR, spec.MSG_SUBSCRIPTION_ACK, spec.MSG_GAP, spec.CHANNEL_SIGNAL}
ERROR_CODES: Final = {spec.ERROR_INVALID_PARAMETER, spec.ERROR_FORBIDDEN,
                      spec.ERROR_LIMIT_EXCEEDED}

# --- what a hostile client sends ------------------------------------------------------------

# Values chosen to break parsers: signs and spaces around digits, non-ASCII digits, numbers
# beyond 64 bits, floats, control and bidi characters, long strings, the wrong type.
HOSTILE_SCALARS: Final = (
    "--5", "-", "+5", " 5", "5 ", "5\n", "1_000", "\uff15", "\u00b2", "\u0663", "5.0", "1e3",
    "0x10", "NaN", "Infinity", "9" * 30, "-" * 40 + "1", "", "\x00", "\u202e", "\x1b[2J",
    "a" * 300, 2**63, -(2**63) - 1, 2**64 - 1, -1, 0, 1.5, 1e308, -0.0, True, False, None,
    spec.CHANNEL_SIGNAL, spec.ACTION_SUBSCRIBE, "2024-02-30T12:00:00Z",
    "2024-01-01T12:00:00Z\n",
)

hostile_numeric_text = st.lists(
    st.sampled_from(["-", "--", "+", " ", "\t", "\n", "_", ".", "e", "0", "5", "9" * 19,
                     "\uff15", "\u00b2", "\u0663"]),
    max_size=6,
).map("".join)

any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
    | hostile_numeric_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                  max_size=4),
    max_leaves=12,
)

hostile = st.one_of(st.sampled_from(HOSTILE_SCALARS), hostile_numeric_text, any_json)


def maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly plausible values (so requests get past validation too), sometimes hostile."""
    return st.one_of(valid, valid, hostile)


timestamps = st.sampled_from([protocol.format_timestamp(NOW), protocol.format_timestamp(NOW - 59),
                              protocol.format_timestamp(NOW + 61), "2023-11-14T22:13:20+00:00"])
strategy_ids = st.one_of(st.sampled_from(VISIBLE), st.integers(1, 2**64 - 1))
resume_points = st.one_of(st.sampled_from(["0", "1", "2", "3", "50", 1, 2]),
                          st.integers(0, 2**63 - 1).map(str))

payloads = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "action": maybe(st.sampled_from(spec.ACTIONS)),
            "channel": maybe(st.sampled_from(spec.CHANNELS)),
            "strategy_id": maybe(strategy_ids),
            "resume_from": maybe(resume_points),
            "other": hostile,
        },
    ),
    hostile,
)

envelopes = st.fixed_dictionaries(
    {"msg_type": maybe(st.sampled_from([spec.MSG_SUBSCRIPTION_REQUEST, spec.MSG_HEARTBEAT_ACK]))},
    optional={
        "payload": payloads,
        "request_id": maybe(st.text(max_size=60)),
        "timestamp": maybe(timestamps),
        "seq_id": hostile,
        "v": hostile,
        "id": hostile,
    },
)


def json_bytes(value: Any) -> bytes:
    """JSON as a careless client writes it: Python's encoder accepts ints beyond 64 bits,
    NaN and lone surrogates (escaped), which orjson refuses; all of them are fair frames."""
    return json.dumps(value).encode()


frames = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300),
    envelopes.map(json_bytes),
    envelopes.map(lambda value: json.dumps(value, ensure_ascii=False)),
    any_json.map(json_bytes),
)


# --- the properties ---------------------------------------------------------------------------


def check_session_survives(sent: list[bytes | str]) -> None:
    """Feed the frames to one session; every reply is well-formed; no state grows."""
    store = StreamStore(id_factory=sequential_message_ids())
    for strategy_id in VISIBLE:
        for number in range(3):
            store.publish_signal(strategy_id, {"SignalId": number}, NOW)
    streams_before = store.stream_keys()
    session = ServerSession(
        store=store,
        authorizer=frozenset(VISIBLE).__contains__,
        max_subscriptions=MAX_SUBSCRIPTIONS,
        id_factory=sequential_message_ids(),
    )
    session.start(NOW)
    for data in sent:
        replies = session.receive(data, NOW)
        assert isinstance(replies, list)
        for frame in replies:
            message = orjson.loads(frame)
            assert message["msg_type"] in REPLY_TYPES
            assert message["v"] == spec.PROTOCOL_VERSION and isinstance(message["id"], str)
            if message["msg_type"] == spec.MSG_ERROR:
                for detail in protocol.error_details(message["payload"]):
                    assert detail.code in ERROR_CODES
    assert store.stream_keys() == streams_before
    assert len(session.subscriptions) <= MAX_SUBSCRIPTIONS
    for strategy_id, channel in session.subscriptions:
        assert strategy_id in VISIBLE and channel in spec.CHANNELS
    assert session.heartbeat_acks <= len(sent)
    # Still a working session afterwards.
    assert session.on_timer(NOW + 1).close_code is None


@settings(max_examples=SUITE_EXAMPLES)
@given(frames)
def test_any_single_frame_gets_well_formed_replies(frame: bytes | str) -> None:
    check_session_survives([frame])


@settings(max_examples=SUITE_EXAMPLES)
@given(st.lists(frames, max_size=8))
def test_any_sequence_of_frames_keeps_the_session_bounded(sent: list[bytes | str]) -> None:
    check_session_survives(sent)


def test_a_flood_of_subscriptions_to_unknown_strategies_keeps_nothing() -> None:
    """The unbounded case no random sample reaches: many distinct hidden strategies."""
    sent: list[bytes | str] = [
        json_bytes({
            "msg_type": spec.MSG_SUBSCRIPTION_REQUEST,
            "timestamp": protocol.format_timestamp(NOW),
            "request_id": f"r{number}",
            "payload": {"action": action, "channel": spec.CHANNEL_SIGNAL,
                        "strategy_id": 1_000_000 + number, "resume_from": "1"},
        })
        for number in range(5000)
        for action in spec.ACTIONS
    ]
    check_session_survives(sent)
