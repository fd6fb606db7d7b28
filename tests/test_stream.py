"""c2ws.stream's Stream in-process, on an engine without sockets: the tests put events
into its hand-off and watch what the caller gets, what on_event gets, and what is
acknowledged (the cursors) and committed.  End to end: tests/test_stream_e2e.py."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import orjson
import pytest

from c2ws import events as ev
from c2ws import spec
from c2ws.cursors import CommitGroups
from c2ws.engine import Engine, EngineConfig
from c2ws.errors import (
    BacklogFull,
    ConnectionLost,
    GapDetected,
    SubscriptionsRejected,
)
from c2ws.events import SubscriptionKey
from c2ws.messages import Gap, Position, SequenceReset, Signal
from c2ws.protocol import Envelope
from c2ws.render.ndjson import NdjsonRenderer
from c2ws.streaming import Batch, Stream, StreamEnd, StreamOptions

A = SubscriptionKey(1, spec.CHANNEL_SIGNAL)
B = SubscriptionKey(2, spec.CHANNEL_SIGNAL)
P = SubscriptionKey(1, spec.CHANNEL_POSITIONS)
LOST = ev.ConnectionEnd(ev.EndReason.LOST, "the connection broke")


def message(key: SubscriptionKey, seq: int, symbol: str = "@ESZ6") -> ev.StreamMessage:
    raw: dict[str, Any] = {"msg_type": key.channel, "seq_id": seq,
                           "timestamp": "2026-01-02T03:04:05Z",
                           "payload": {"StrategyId": key.strategy_id,
                                       "C2Symbol": {"FullSymbol": symbol}, "Side": "1"}}
    envelope = Envelope(key.channel, {}, None, seq, timestamp=raw["timestamp"], raw={},
                        data=orjson.dumps(raw))
    return ev.StreamMessage(key, envelope, seq)


def gap(key: SubscriptionKey, after: int, before: int | None) -> ev.GapReported:
    raw: dict[str, Any] = {"msg_type": "gap", "payload": {"message": "replay limit"}}
    return ev.GapReported(key, last_seq=after, last_timestamp=None, next_seq=before,
                          next_timestamp=None, text="replay limit",
                          message=Envelope("gap", raw["payload"], raw=raw))


def reset(key: SubscriptionKey, old: int) -> ev.SequenceReset:
    return ev.SequenceReset(key, last_seq=old, last_timestamp=None, next_seq=1,
                            next_timestamp=None, released=1, cursor=0)


HEARTBEAT = ev.HeartbeatAnswered(Envelope("heartbeat", {}))


def confirmed(key: SubscriptionKey) -> ev.SubscriptionConfirmed:
    return ev.SubscriptionConfirmed(key, "r1", Envelope("subscription.ack", {}))


class Offline(Engine):
    """The engine without socket threads: the test puts events into its hand-off."""

    unresolved: tuple[ev.GapReported, ...] = ()

    def start(self) -> Engine:
        self.written = dict(self._load_cursors())
        return self

    def stop(self) -> None:
        self.handoff.close()
        self.stopped = True

    def unresolved_gaps(self) -> list[ev.GapReported]:
        return list(self.unresolved)


class Recorded:
    """A cursor store that remembers every commit."""

    def __init__(self, loaded: Mapping[tuple[int, str], int] | None = None) -> None:
        self.loaded = dict(loaded or {})
        self.commits: list[dict[SubscriptionKey, int]] = []
        self.opened: list[object] = []
        self.closed = 0

    def open(self, identity: object) -> None:
        self.opened.append(identity)

    def load(self) -> Mapping[tuple[int, str], int]:
        return self.loaded

    def commit(self, cursors: Mapping[SubscriptionKey, int]) -> None:
        self.commits.append(dict(cursors))

    def close(self) -> None:
        self.closed += 1


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(keys: tuple[SubscriptionKey, ...] = (A, B), *, max_buffer: int = 100,
         cursors: Any = None, **options: Any) -> tuple[Stream, Offline]:
    config = EngineConfig(url="ws://127.0.0.1:9/ws", api_key="stream-test-key", keys=list(keys),
                          max_buffer=max_buffer)
    engines: list[Offline] = []

    def factory(config: EngineConfig, cursors: Any = None) -> Offline:
        engines.append(Offline(config, cursors=cursors))
        return engines[-1]

    stream = Stream(config, StreamOptions(**options), cursors=cursors, engine_factory=factory)
    stream.start()
    engine = engines[0]
    engine.ever_confirmed = True
    return stream, engine


def seqs(items: Any) -> list[int | None]:
    return [item.seq_id for item in items]


# --- messages and batches ---------------------------------------------------------------------


def test_a_burst_is_one_batch_of_typed_messages_built_only_when_read() -> None:
    stream, engine = make()
    burst: list[ev.Event] = [message(A, 1), message(B, 1), message(P, 1), message(A, 2)]
    engine.handoff.put(burst)
    batch = stream.next_batch()
    assert batch is not None and batch.events == burst
    assert len(batch) == 4
    assert [type(m) for m in batch] == [Signal, Signal, Position, Signal]
    assert seqs(batch) == [1, 1, 1, 2] and seqs(batch[1:3]) == [1, 1]
    out = io.BytesIO()
    renderer = NdjsonRenderer(out)
    renderer.handle_messages(burst)  # type: ignore[arg-type]
    renderer.flush()
    assert batch.ndjson() == out.getvalue()
    assert batch.lines() == [m.line for m in batch]


def test_gaps_and_resets_are_messages_and_their_lines_are_the_clis() -> None:
    stream, engine = make()
    events: list[ev.Event] = [gap(A, 3, 9), message(A, 9), reset(B, 50), message(B, 1)]
    engine.handoff.put(events)
    batch = stream.next_batch()
    after_reset = stream.next_batch()  # a reset ends its batch (the engine's rule)
    assert batch is not None and after_reset is not None
    assert [type(m) for m in batch] + [type(m) for m in after_reset] == [
        Gap, Signal, SequenceReset, Signal]
    out = io.BytesIO()
    renderer = NdjsonRenderer(out)
    for event in events:
        renderer.handle(event)
    renderer.flush()
    assert batch.ndjson() + after_reset.ndjson() == out.getvalue()


def test_other_events_go_to_on_event_in_arrival_order_relative_to_the_messages() -> None:
    seen: list[object] = []
    stream, engine = make(on_event=lambda event: seen.append(type(event).__name__))
    engine.handoff.put([confirmed(A), message(A, 1), message(A, 2), HEARTBEAT, message(A, 3)])
    iterator = iter(stream)
    seen.append(next(iterator).seq_id)
    seen.append(next(iterator).seq_id)
    # The heartbeat came after message 2: not passed before the message after 2 is asked for.
    assert seen == ["SubscriptionConfirmed", 1, 2]
    seen.append(next(iterator).seq_id)
    assert seen == ["SubscriptionConfirmed", 1, 2, "HeartbeatAnswered", 3]


def test_a_batch_ends_before_another_event_but_traffic_is_passed_before_its_batch() -> None:
    seen: list[str] = []
    stream, engine = make(on_event=lambda event: seen.append(type(event).__name__))
    frame = ev.Traffic("<", b"{}")
    engine.handoff.put([frame, message(A, 1), frame, message(A, 2), HEARTBEAT, frame,
                        message(A, 3)])
    first = stream.next_batch()
    assert first is not None and seqs(first) == [1, 2]
    assert seen == ["Traffic", "Traffic"]
    second = stream.next_batch()
    assert second is not None and seqs(second) == [3]
    assert seen == ["Traffic", "Traffic", "HeartbeatAnswered", "Traffic"]


def test_an_exception_in_on_event_propagates_and_loses_nothing() -> None:
    def on_event(event: ev.Event) -> None:
        if isinstance(event, ev.HeartbeatAnswered):
            raise RuntimeError("callback failed")

    stream, engine = make(on_event=on_event)
    engine.handoff.put([message(A, 1), HEARTBEAT, message(A, 2)])
    iterator = iter(stream)
    assert next(iterator).seq_id == 1
    with pytest.raises(RuntimeError, match="callback failed"):
        next(iterator)
    assert next(iterator).seq_id == 2
    traffic_stream, engine = make(on_event=lambda event: 1 / 0)
    engine.handoff.put([message(A, 1), ev.Traffic("<", b"{}"), message(A, 2)])
    with pytest.raises(ZeroDivisionError):
        traffic_stream.next_batch()
    batch = traffic_stream.next_batch()  # the batch whose frame on_event failed on
    assert batch is not None and seqs(batch) == [1, 2]


# --- acknowledgement ---------------------------------------------------------------------------


def test_auto_ack_acknowledges_a_batch_when_the_next_is_asked_for_and_at_a_clean_close() -> None:
    store = Recorded()
    stream, engine = make(cursors=store)
    engine.handoff.put([message(A, 1), message(A, 2)])
    assert stream.next_batch() is not None
    assert stream.cursors == {} and engine.handoff.backlog == 2
    engine.handoff.put([message(A, 3)])
    assert stream.next_batch() is not None
    assert stream.cursors == {A: 2} and store.commits == [{A: 2}]
    stream.close()
    assert stream.cursors == {A: 3} and store.commits[-1] == {A: 3}
    assert store.closed == 1 and stream.end_reason is StreamEnd.CLOSED


def test_auto_ack_on_an_exception_acknowledges_only_what_was_asked_past() -> None:
    stream, engine = make()
    engine.handoff.put([message(A, 1), message(A, 2), message(A, 3)])
    with pytest.raises(KeyError), stream:
        for msg in stream:
            if msg.seq_id == 3:
                raise KeyError("handling 3 failed")
    assert stream.cursors == {A: 2}  # 3 was being handled: replayed after a restart
    stream, engine = make()
    engine.handoff.put([message(A, 1), message(A, 2), message(A, 3)])
    with stream:
        for msg in stream:
            if msg.seq_id == 2:
                break
    assert stream.cursors == {A: 2}  # a clean close: 2 was handled; 3 never delivered


def test_ack_is_cumulative_per_stream_and_idempotent() -> None:
    store = Recorded()
    stream, engine = make(cursors=store, auto_ack=False)
    engine.handoff.put([message(A, 1), message(B, 7), message(A, 2), message(B, 8)])
    got = list(_take(stream, 4))
    engine.handoff.put([message(A, 3)])
    got += list(_take(stream, 1))
    assert stream.cursors == {}
    stream.ack(got[2])  # A 2: everything delivered before it too
    assert stream.cursors == {A: 2, B: 7} and store.commits == [{A: 2, B: 7}]
    assert engine.handoff.backlog == 2
    stream.ack(got[0])  # already acknowledged
    assert store.commits == [{A: 2, B: 7}]
    stream.ack(got[4])
    assert stream.cursors == {A: 3, B: 8} and engine.handoff.backlog == 0
    foreign = Signal(message(SubscriptionKey(99, spec.CHANNEL_SIGNAL), 1))
    with pytest.raises(ValueError, match="not a message of this stream"):
        stream.ack(foreign)


def test_a_batch_is_acknowledged_whole() -> None:
    stream, engine = make(auto_ack=False)
    engine.handoff.put([message(A, 1), message(A, 2)])
    first = stream.next_batch()
    engine.handoff.put([message(A, 3)])
    second = stream.next_batch()
    assert first is not None and second is not None
    stream.ack(first)
    assert stream.cursors == {A: 2}
    stream.ack(second)
    stream.ack(first)
    assert stream.cursors == {A: 3}


def test_a_sequence_reset_is_acknowledged_and_moves_the_cursor_down() -> None:
    stream, engine = make(auto_ack=False)
    engine.handoff.put([message(A, 40), reset(A, 40)])
    batch = stream.next_batch()
    assert batch is not None
    stream.ack(batch[0])
    assert stream.cursors == {A: 40}
    stream.ack(batch[1])
    assert stream.cursors == {A: 0}


def test_cursors_come_from_the_store_opened_with_the_streams_identity() -> None:
    store = Recorded({(1, spec.CHANNEL_SIGNAL): 41, (5, spec.CHANNEL_SIGNAL): 9})
    stream, _ = make(cursors=store)
    assert stream.cursors == {A: 41}  # strategy 5 is not subscribed: ignored
    (identity,) = store.opened
    assert identity.keys == (A, B)  # type: ignore[attr-defined]
    assert "stream-test-key" not in repr(identity)


# --- group commit (issue 22) ----------------------------------------------------------------------


class Grouped(Recorded):
    """A store whose commits the stream groups: at most 4 messages not yet durable,
    batches of at most 2 (half), a group committed once it holds 2 or is 10 s old.
    Commits run on the stream's commit thread: ``committed`` is set at each."""

    commit_groups = CommitGroups(max_messages=4, max_seconds=10.0)

    def __init__(self) -> None:
        super().__init__()
        self.committed = threading.Event()
        self.threads: set[str] = set()

    def commit(self, cursors: Mapping[SubscriptionKey, int]) -> None:
        super().commit(cursors)
        self.threads.add(threading.current_thread().name)
        self.committed.set()


def test_a_store_with_commit_groups_is_committed_per_group_never_past_its_size() -> None:
    store = Grouped()
    stream, engine = make(cursors=store, auto_ack=False)
    sizes = []
    for seq in range(1, 13, 3):  # batches of 3 queued: 12 messages
        engine.handoff.put([message(A, seq), message(A, seq + 1), message(A, seq + 2)])
    while engine.handoff.backlog:
        batch = stream.next_batch()
        assert batch is not None
        sizes.append(len(batch))
        stream.ack(batch)
    # A batch never takes more than half the bound, nor more than it leaves room for: at
    # most 4 messages written and not yet durable (what a pipe's reader may see again
    # after a kill -9); the stream waits for the commit in flight when there is none.
    assert sizes == [2] * 6
    stream.close()
    # Each commit is a group of 2 or 4 (what was acknowledged when the thread began it).
    committed = [commit[A] for commit in store.commits]
    assert committed[-1] == 12 and store.closed == 1
    steps = [later - earlier for earlier, later in zip([0, *committed], committed, strict=False)]
    assert set(steps) <= {2, 4}
    assert store.threads == {"c2ws-commits"}  # never on the consumer's thread


def test_unacknowledged_messages_count_against_the_bound() -> None:
    stream, engine = make(cursors=Grouped(), auto_ack=False)
    engine.handoff.put([message(A, seq) for seq in range(1, 11)])
    batches = [stream.next_batch() for _ in range(3)]
    # Never more than 4 handed out and not durable (2 per batch at most).
    assert [len(batch or ()) for batch in batches] == [2, 2, 1]
    stream.close()


def test_a_small_group_is_committed_once_old_enough_without_another_request() -> None:
    class Quick(Grouped):
        commit_groups = CommitGroups(max_messages=4, max_seconds=0.05)

    store = Quick()
    stream, engine = make(cursors=store, auto_ack=False)
    engine.handoff.put([message(A, 1)])
    batch = stream.next_batch()
    assert batch is not None
    stream.ack(batch)  # one message: below the group's size
    assert store.committed.wait(30)  # while the stream is left alone
    assert store.commits == [{A: 1}]
    stream.close()
    assert store.commits == [{A: 1}]


def test_a_sequence_reset_is_durable_before_the_acknowledgement_returns() -> None:
    store = Grouped()
    stream, engine = make(cursors=store, auto_ack=False)
    engine.handoff.put([message(A, 40), reset(A, 40), message(A, 1)])
    first = stream.next_batch()  # the reset ends its batch
    assert first is not None
    stream.ack(first)
    # Durable before any line of the new numbering is written: one commit, the reset's
    # (with the message before it), done when ack() returns.
    assert store.commits == [{A: 0}]
    stream.close()


def test_a_failing_group_commit_is_the_callers_error_and_the_store_is_closed() -> None:
    class Failing(Grouped):
        def commit(self, cursors: Mapping[SubscriptionKey, int]) -> None:
            raise OSError(5, "Input/output error")

    for ending in ("next request", "close"):
        store = Failing()
        stream, engine = make(cursors=store, auto_ack=False)
        engine.handoff.put([message(A, seq) for seq in range(1, 7)])
        batch = stream.next_batch()
        assert batch is not None
        stream.ack(batch if ending == "next request" else batch[0])
        with pytest.raises(OSError, match="Input/output error"):
            if ending == "next request":
                stream.ack(stream.next_batch())  # type: ignore[arg-type]
                stream.next_batch()  # waits for room: the commit of 2 failed
            else:
                stream.close()
        stream.close()
        assert store.closed == 1


def test_a_store_without_commit_groups_is_committed_at_every_acknowledgement() -> None:
    store = Recorded()
    stream, engine = make(cursors=store, auto_ack=False)
    engine.handoff.put([message(A, seq) for seq in range(1, 8)])
    batch = stream.next_batch()
    assert batch is not None and len(batch) == 7
    stream.ack(batch[2])
    stream.ack(batch[6])
    assert store.commits == [{A: 3}, {A: 7}]


# --- defect 3: a caller that does not acknowledge -------------------------------------------------


def test_a_caller_that_does_not_acknowledge_gets_backlog_full_not_a_stall() -> None:
    stream, engine = make(auto_ack=False, max_buffer=5)
    engine.handoff.put([message(A, seq) for seq in range(1, 6)])
    got = list(_take(stream, 5))
    engine.handoff.put([message(A, 6)])
    with pytest.raises(BacklogFull, match="5 messages delivered and not acknowledged") as caught:
        next(stream)
    assert (caught.value.unacknowledged, caught.value.max_buffer) == (5, 5)
    stream.ack(got[-1])  # acknowledging in bulk, late: the stream goes on
    assert next(stream).seq_id == 6


def test_a_connection_paused_for_unacknowledged_messages_is_backlog_full_too() -> None:
    stream, engine = make(auto_ack=False, max_buffer=10)
    engine.handoff.put([message(A, seq) for seq in range(1, 7)])
    list(_take(stream, 6))
    # The socket thread closed (backlog over the limit) and waits for room below 5.
    engine.handoff.put([ev.ConnectionEnded(0, ev.ConnectionEnd(ev.EndReason.OVERFLOW), True),
                        ev.Reconnecting(0, 1, None, ev.ConnectionEnd(ev.EndReason.OVERFLOW))])
    with pytest.raises(BacklogFull):
        next(stream)


def test_bulk_acknowledgement_below_the_limit_never_raises() -> None:
    stream, engine = make(auto_ack=False, max_buffer=10)
    for start in range(1, 100, 4):
        engine.handoff.put([message(A, seq) for seq in range(start, start + 4)])
        got = list(_take(stream, 4))
        if start % 8 == 5:
            stream.ack(got[-1])  # every 8 messages
    assert stream.cursors == {A: 96}
    stream.ack(got[-1])
    assert stream.cursors == {A: 100}


# --- count, timeout, fail_on_gap, select ------------------------------------------------------


def test_count_ends_the_stream_after_that_many_messages() -> None:
    stream, engine = make(count=3)
    engine.handoff.put([message(A, 1), gap(A, 1, 5), message(A, 5), message(B, 1),
                        message(B, 2)])
    assert seqs(stream) == [1, None, 5, 1]
    assert stream.end_reason is StreamEnd.COUNT and stream.delivered == 3
    assert stream.cursors == {A: 5, B: 1}  # what came after is not acknowledged
    assert engine.stopped


def test_select_leaves_messages_out_and_count_counts_only_what_it_keeps() -> None:
    stream, engine = make(count=2, select=lambda msg: msg.symbol == "AAPL")
    engine.handoff.put([message(A, 1), message(A, 2, "AAPL"), message(A, 3), message(B, 1),
                        message(B, 2, "AAPL"), message(B, 3, "AAPL")])
    assert [(m.strategy_id, m.seq_id) for m in stream] == [(1, 2), (2, 2)]
    assert stream.cursors == {A: 3, B: 2}  # left-out messages are handled too


def test_the_timeout_fires_while_batches_keep_coming() -> None:
    """Defect 1: the deadline is checked at every request, not only when nothing came."""
    clock = Clock()
    stream, engine = make(timeout=2.0, clock=clock)
    delivered = 0
    for seq in range(1, 1000):
        engine.handoff.put([message(A, seq)])
        batch = stream.next_batch()
        if batch is None:
            break
        delivered += len(batch)
        clock.now += 0.5  # a slow consumer: there is always a batch waiting
    assert stream.end_reason is StreamEnd.TIMEOUT
    assert delivered == 4


def test_the_timeout_fires_inside_a_batch_given_message_by_message() -> None:
    clock = Clock()
    stream, engine = make(timeout=2.0, clock=clock)
    engine.handoff.put([message(A, seq) for seq in range(1, 101)])
    got = []
    for msg in stream:
        got.append(msg.seq_id)
        clock.now += 0.5
    assert got == [1, 2, 3, 4] and stream.end_reason is StreamEnd.TIMEOUT
    assert stream.cursors == {A: 4} and stream.delivered == 4
    assert stream.undelivered == 96


def test_a_timeout_before_any_confirmation_raises_the_connections_error() -> None:
    clock = Clock()
    stream, engine = make(timeout=1.0, clock=clock)
    engine.ever_confirmed = False
    engine.last_end = LOST
    clock.now += 5
    with pytest.raises(ConnectionLost, match="timed out after 1 s before any subscription "
                                             "was confirmed: the connection broke"):
        stream.next_batch()
    assert stream.end_reason is StreamEnd.TIMEOUT


def test_an_empty_batch_says_other_events_came_when_asked_for() -> None:
    seen: list[object] = []
    stream, engine = make(on_event=seen.append)
    engine.handoff.put([HEARTBEAT])
    batches = stream.batches(include_empty=True)
    assert len(next(batches)) == 0 and seen == [HEARTBEAT]
    engine.handoff.put([message(A, 1)])
    assert seqs(next(batches)) == [1]
    stream, engine = make(on_event=seen.append)
    engine.handoff.put([HEARTBEAT, message(A, 1), HEARTBEAT])
    batches = stream.batches()
    assert seqs(next(batches)) == [1]
    engine.handoff.put([message(A, 2)])
    assert seqs(next(batches)) == [2]  # the empty batch after the heartbeat is skipped


@pytest.mark.parametrize("hole", ["gap", "reset"])
def test_fail_on_gap_raises_after_the_gap_and_the_message_after_it(hole: str) -> None:
    stream, engine = make(fail_on_gap=True)
    first = gap(A, 2, 9) if hole == "gap" else reset(A, 2)
    after = 9 if hole == "gap" else 1
    engine.handoff.put([message(A, 2), first, message(B, 4), message(A, after),
                        message(A, after + 1)])
    got: list[object] = []
    with pytest.raises(GapDetected) as caught:
        for msg in stream:
            got.append((type(msg).__name__, msg.seq_id))
    assert got[-1] == ("Signal", after) and len(got) == 4
    assert caught.value.key == A and caught.value.reset is (hole == "reset")
    assert stream.cursors[A] == after  # past the hole: a rerun does not stop there again
    assert stream.end_reason is StreamEnd.ERROR


def test_unresolved_gaps_are_yielded_at_the_end() -> None:
    stream, engine = make(count=1)
    engine.unresolved = (gap(B, 4, None),)
    engine.handoff.put([message(A, 1)])
    got = list(stream)
    assert [type(m) for m in got] == [Signal, Gap]
    assert got[1].before_seq_id is None  # type: ignore[union-attr]


# --- errors ------------------------------------------------------------------------------------


def test_an_error_is_raised_after_what_came_before_it() -> None:
    stream, engine = make()
    engine.unresolved = (gap(B, 4, None),)
    engine.handoff.put([message(A, 1), ev.ConnectionEnded(0, LOST, True),
                        ev.ShardFailed(0, LOST, 3)])
    got = []
    with pytest.raises(ConnectionLost, match="the connection broke") as caught:
        for msg in stream:
            got.append(type(msg).__name__)
    assert got == ["Signal", "Gap"]  # the gap still open is yielded before the error
    assert caught.value.end is LOST and stream.end_reason is StreamEnd.ERROR
    with pytest.raises(ConnectionLost):
        stream.next_batch()  # the stream stays ended


def test_every_subscription_rejected_is_subscriptions_rejected() -> None:
    seen: list[ev.Event] = []
    stream, engine = make(keys=(A,), on_event=seen.append)
    rejected = ev.SubscriptionRejected(A, "r1", (), Envelope("error", {}))
    engine.handoff.put([rejected])
    with pytest.raises(SubscriptionsRejected):
        list(stream)
    assert seen == [rejected]  # the rejection itself is shown first


def test_interrupt_ends_a_blocked_request() -> None:
    import threading

    stream, _ = make()
    timer = threading.Timer(0.05, stream.interrupt)
    timer.start()
    assert stream.next_batch() is None
    timer.join()
    assert stream.end_reason is StreamEnd.CLOSED


def _take(stream: Iterator[Any], n: int) -> Iterator[Any]:
    for _ in range(n):
        yield next(stream)


Callback = Callable[[ev.Event], None]
_ = Batch


# --- bursts handed over as runs (c2ws.events.StreamRun) -----------------------------------------


def run(key: SubscriptionKey, first: int, last: int) -> ev.StreamRun:
    """Messages ``first`` to ``last`` of ``key``, as the session hands a burst over."""
    frames = [message(key, seq).message.data for seq in range(first, last + 1)]
    return ev.StreamRun(key, b"".join(f + b"\n" for f in frames),  # type: ignore[operator]
                        last - first + 1, last)


def test_a_run_is_its_messages_to_every_reader_of_the_stream() -> None:
    stream, engine = make(auto_ack=False)
    engine.handoff.put([run(A, 1, 3), message(B, 1), run(A, 4, 5)])
    assert engine.handoff.backlog == 6  # counted as its messages
    batch = stream.next_batch()
    assert batch is not None and len(batch) == 6 and stream.delivered == 6
    assert batch.ndjson() == b"".join(message(k, s).message.data + b"\n"  # type: ignore[operator]
                                      for k, s in [(A, 1), (A, 2), (A, 3), (B, 1), (A, 4),
                                                   (A, 5)])
    assert [(m.strategy_id, m.seq_id) for m in batch] == [(1, 1), (1, 2), (1, 3), (2, 1),
                                                          (1, 4), (1, 5)]
    assert all(type(e) is ev.StreamMessage for e in batch.events)


def test_a_message_inside_a_run_is_acknowledged_alone() -> None:
    """Acknowledging the third of a run's five messages moves the cursor to it, not to
    the run's end (the batch's events are the run's messages once read)."""
    store = Recorded()
    stream, engine = make(cursors=store, auto_ack=False)
    engine.handoff.put([run(A, 1, 5)])
    got = list(_take(stream, 5))
    stream.ack(got[2])
    assert stream.cursors == {A: 3} and store.commits == [{A: 3}]
    assert engine.handoff.backlog == 2
    stream.ack(got[4])
    assert stream.cursors == {A: 5} and engine.handoff.backlog == 0


def test_a_run_unread_is_acknowledged_whole_with_its_batch() -> None:
    store = Recorded()
    stream, engine = make(cursors=store, auto_ack=False)
    engine.handoff.put([run(A, 1, 5), run(B, 10, 11)])
    batch = stream.next_batch()
    assert batch is not None
    stream.ack(batch)
    assert stream.cursors == {A: 5, B: 11} and engine.handoff.backlog == 0


def test_count_and_timeout_end_the_stream_inside_a_run() -> None:
    stream, engine = make(count=4)
    engine.handoff.put([run(A, 1, 10)])
    assert seqs(stream) == [1, 2, 3, 4]
    assert stream.cursors == {A: 4} and stream.end_reason is StreamEnd.COUNT
    clock = Clock()
    stream, engine = make(timeout=2.0, clock=clock)
    engine.handoff.put([run(A, 1, 100)])
    got = []
    for msg in stream:
        got.append(msg.seq_id)
        clock.now += 0.5
    assert got == [1, 2, 3, 4] and stream.cursors == {A: 4}
    assert stream.undelivered == 96


def test_grouped_commits_cut_a_run_so_that_no_batch_outgrows_the_group() -> None:
    """A store with commit_groups caps each batch at the messages it has room for; a run
    (one event, many messages) is cut there, its cursor the last message taken."""
    store = Grouped()  # at most 4 not durable, batches of at most 2
    stream, engine = make(cursors=store, auto_ack=False)
    engine.handoff.put([run(A, 1, 5), message(B, 1), run(A, 6, 12)])
    taken: list[tuple[int, int]] = []
    sizes = []
    while engine.handoff.backlog:
        batch = stream.next_batch()
        assert batch is not None
        sizes.append(len(batch))
        taken += [(m.strategy_id, m.seq_id) for m in batch]
        stream.ack(batch)
    assert max(sizes) <= 2
    assert taken == [(1, seq) for seq in range(1, 6)] + [(2, 1)] + [
        (1, seq) for seq in range(6, 13)]
    stream.close()
    assert store.commits[-1] == {A: 12, B: 1}
