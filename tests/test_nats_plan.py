"""--to nats://: the plan the sink makes for each message on the consumer's thread.
:meth:`c2ws.sinks.nats.Planner.plan` makes the usual message (a stream's, an int seq_id
and cursor) in one step: the same publish, byte for byte, as the general path
(:meth:`Planner.publish`) for any input, hostile ones included, the cursors followed
alike."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from c2ws import events as ev
from c2ws import spec
from c2ws.protocol import Envelope
from c2ws.sinks.nats import Planner, encode_publish

tricky = "ab.Z09-_:*> \t\r\n\"'\\{}\x00\x1b\x7f\u00e9\u2028\U0001f600"
texts = st.one_of(st.sampled_from([spec.CHANNEL_SIGNAL, spec.CHANNEL_POSITIONS]),
                  st.text(st.sampled_from(list(tricky)) | st.characters(), max_size=12))
numbers = st.one_of(st.integers(-5, 10**6), st.integers(), st.just(2**64 + 1),
                    st.booleans(), st.none(), st.floats(allow_nan=False), texts)
keys = st.one_of(
    st.builds(ev.SubscriptionKey, st.sampled_from([12345678, 1, 0, -3, 2**70]),
              st.sampled_from([spec.CHANNEL_SIGNAL, spec.CHANNEL_POSITIONS])),
    st.builds(ev.SubscriptionKey, numbers, texts),
    st.sampled_from([ev.SubscriptionKey(True, spec.CHANNEL_SIGNAL),  # == (1, signal)
                     ev.SubscriptionKey(1.0, spec.CHANNEL_SIGNAL)]),  # type: ignore[arg-type]
)
lines = st.one_of(st.binary(max_size=30), st.just(b'{"seq_id":1}'),
                  st.binary(max_size=5).map(bytearray))


def stream_message(key: Any, seq: Any, cursor: Any) -> ev.StreamMessage:
    return ev.StreamMessage(key, Envelope(spec.CHANNEL_SIGNAL, {}, seq_id=seq), cursor=cursor)


events = st.one_of(
    st.builds(stream_message, keys, st.integers(0, 10**7), st.integers(0, 10**7)),
    st.builds(stream_message, keys, st.integers(0, 10**7), st.integers(0, 10**7)),
    st.builds(stream_message, keys, numbers, numbers),
    st.builds(stream_message, st.none(), numbers, numbers),
    st.builds(lambda key, cursor: ev.SequenceReset(key, 9, None, 1, None, 0, cursor),
              keys, numbers),
    st.builds(lambda key: ev.GapReported(key, 3, None, 5, None, "gap",
                                         Envelope("gap", {})), keys),
)


@settings(max_examples=1500)
@given(batches=st.lists(st.lists(st.tuples(events, lines), max_size=6), max_size=4),
       prefix=st.sampled_from(["c2", "x.y", "p\u00e9"]),
       cursors=st.dictionaries(keys, st.integers(0, 99), max_size=2))
def test_the_plan_is_what_the_general_path_makes(batches: list[list[tuple[Any, bytes]]],
                                                 prefix: str,
                                                 cursors: dict[Any, int]) -> None:
    fast, general = Planner(prefix), Planner(prefix)
    fast.cursors.update(cursors)
    general.cursors.update(cursors)
    for batch in batches:
        given_events = [event for event, _ in batch]
        given_lines = [line for _, line in batch]
        planned = fast.plan(given_events, given_lines)
        expected = [general.publish(event, line) for event, line in batch]
        assert planned == expected
        assert [type(part) for publish in planned for part in publish] == [
            type(part) for publish in expected for part in publish]
        assert fast.cursors == general.cursors
        assert list(map(type, fast.cursors.values())) == list(
            map(type, general.cursors.values()))


def test_the_usual_message_is_planned_as_encode_publish_makes_it() -> None:
    key = ev.SubscriptionKey(12345678, spec.CHANNEL_SIGNAL)
    planner = Planner("c2")
    line = b'{"msg_type":"strategy.signal","seq_id":7}'
    (publish,) = planner.plan([stream_message(key, 7, 7)], [line])
    headers = {"Nats-Msg-Id": "12345678:strategy.signal:7", "C2-Cursor": "7"}
    assert publish == ("c2.signal.12345678", line, headers,
                       *(encode_publish("c2.signal.12345678", headers, line) or ()))
    # A message without a cursor of its own carries the stream's.
    (publish,) = planner.plan([stream_message(key, 9, None)], [line])
    assert publish[2] == {"Nats-Msg-Id": "12345678:strategy.signal:9", "C2-Cursor": "7"}
