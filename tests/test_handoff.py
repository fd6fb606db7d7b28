"""The hand-off between socket threads and the output thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import SimpleNamespace

import pytest

from c2ws import events as ev
from c2ws import spec
from c2ws.events import EndReason, SubscriptionKey
from c2ws.net.handoff import Handoff
from c2ws.net.worker import _HandOver
from c2ws.protocol import Envelope


def test_put_never_blocks_and_counts_the_backlog_until_done() -> None:
    handoff: Handoff[int] = Handoff(2)
    assert handoff.put([1, 2, 3]) == 3  # past the limit: the producer decides what to do
    assert handoff.take(0) == [1, 2, 3]
    assert handoff.backlog == 3  # taken is not written
    handoff.done([1, 2])
    assert handoff.backlog == 1


def test_the_backlog_counts_what_it_is_told_to_and_bounds_the_rest() -> None:
    """The engine's hand-off counts stream messages (what stdout is behind by); other
    events do not make it look behind, but are bounded at a multiple of the limit."""
    handoff: Handoff[str] = Handoff(10, count=lambda items: items.count("message"),
                                    items_per_counted=4)
    handoff.put(["control"] * 30 + ["message"] * 3)
    assert (handoff.backlog, handoff.pending) == (3, 33)
    assert not handoff.above(10)
    assert handoff.above(8)  # 33 events: past 4 x 8
    taken = handoff.take(0)
    handoff.done(taken[:30])
    assert (handoff.backlog, handoff.pending) == (3, 3) and not handoff.above(3)
    handoff.put(["message"] * 10)
    assert handoff.above(10) and handoff.backlog == 13


def test_the_engine_counts_stream_messages_not_control_events() -> None:
    """A flood of gap messages while stderr is slow is no backlog of stdout."""
    from c2ws import events as ev
    from c2ws import spec
    from c2ws.engine import Engine, EngineConfig
    from c2ws.events import SubscriptionKey
    from c2ws.protocol import Envelope

    key = SubscriptionKey(1, spec.CHANNEL_SIGNAL)
    engine = Engine(EngineConfig(url="ws://127.0.0.1:9/ws", api_key="test-key-0001", keys=[key],
                                 max_buffer=100))
    gap = Envelope(spec.MSG_GAP, {})
    engine.handoff.put([ev.GapAnnounced(key, n, "lost", gap) for n in range(300)])
    assert engine.handoff.backlog == 0 and not engine.handoff.above(100)
    engine.handoff.put([ev.StreamMessage(key, Envelope(spec.CHANNEL_SIGNAL, {}), n)
                        for n in range(1, 102)])
    assert engine.handoff.backlog == 101 and engine.handoff.above(100)
    engine.acknowledge(engine.next_batch(0))
    assert (engine.handoff.backlog, engine.handoff.pending) == (0, 0)


def test_take_respects_a_limit_and_keeps_the_order() -> None:
    handoff: Handoff[int] = Handoff(10)
    handoff.put([1, 2, 3])
    handoff.put([4])
    assert handoff.take(0, limit=2) == [1, 2]
    assert handoff.take(0) == [3, 4]
    assert handoff.take(0) == []


def test_take_waits_for_a_producer() -> None:
    handoff: Handoff[str] = Handoff(5)
    threading.Timer(0.05, lambda: handoff.put(["late"])).start()
    assert handoff.take(30) == ["late"]


def test_a_producer_waits_for_room_made_by_the_consumer() -> None:
    handoff: Handoff[int] = Handoff(4)
    handoff.put(list(range(10)))
    taken = handoff.take(0)
    released: list[bool] = []
    producer = threading.Thread(
        target=lambda: released.append(handoff.wait_for_room(2, lambda: False, 30))
    )
    producer.start()
    handoff.done(taken[:5])
    producer.join(0.05)
    assert producer.is_alive() and released == []  # 5 still outstanding: not yet
    handoff.done(taken[5:8])
    producer.join(30)
    assert released == [True]


def test_stop_and_close_release_waiting_producers() -> None:
    handoff: Handoff[int] = Handoff(1)
    handoff.put([1, 2])
    stop = threading.Event()
    results: list[bool] = []
    waiter = threading.Thread(
        target=lambda: results.append(handoff.wait_for_room(0, stop.is_set, 30))
    )
    waiter.start()
    stop.set()
    handoff.wake()
    waiter.join(30)
    assert results == [False]
    handoff.close()
    assert not handoff.wait_for_room(10, lambda: False, 30)
    assert handoff.put([3]) == 2  # closed: nothing more is taken in


def test_discard_empties_the_queue() -> None:
    handoff: Handoff[int] = Handoff(5)
    handoff.put([1, 2])
    assert handoff.discard() == [1, 2]
    assert handoff.take(0) == []


def test_readiness_tells_the_socket_from_the_wake_up_and_a_hang_up() -> None:
    """The connection driver's wait (c2ws.net.driver.Readiness): which of the two sockets
    can be read, a timeout with neither, and a closed peer counts as readable."""
    import socket

    from c2ws.net.driver import Readiness

    conn, server = socket.socketpair()
    wake_reader, wake_writer = socket.socketpair()
    readiness = Readiness(conn.fileno(), wake_reader.fileno())
    try:
        assert readiness.wait(0) == (False, False)
        assert readiness.wait(0.001) == (False, False)
        wake_writer.send(b"\0")
        assert readiness.wait(None) == (False, True)
        wake_reader.recv(1)
        server.send(b"frame")
        assert readiness.wait(None) == (True, False)
        wake_writer.send(b"\0")
        assert readiness.wait(None) == (True, True)
        conn.recv(16)
        wake_reader.recv(1)
        server.close()
        assert readiness.wait(None) == (True, False)
    finally:
        readiness.close()
        for sock in (conn, wake_reader, wake_writer):
            sock.close()


def test_a_limited_take_cuts_an_item_that_counts_as_several() -> None:
    """With ``split`` a take's limit counts what the hand-off counts (a run of messages
    is several): the item that would overflow it is cut, its rest taken first next."""
    def count(items: object) -> int:
        return sum(len(item) for item in items)  # type: ignore[attr-defined]

    def split(item: str, keep: int) -> tuple[str, str]:
        return item[:keep], item[keep:]

    handoff: Handoff[str] = Handoff(100, count=count, split=split)
    handoff.put(["ab", "", "cdefg", "h"])
    assert handoff.take(0, 4) == ["ab", "", "cd"]
    assert handoff.take(0, 1) == ["e"]
    assert handoff.take(0, 10) == ["fg", "h"]
    assert handoff.backlog == 8  # taken is not done; cutting changes no count


# --- the socket thread's side: waking the output thread (issue: the stalled blast) -------

def engine_handoff(limit: int, clock: Callable[[], float] = time.monotonic) -> Handoff[ev.Event]:
    """A hand-off made as the engine makes it (counting stream messages)."""
    return Handoff(limit, count=ev.message_count, split=ev.split_run,
                   items_per_counted=spec.BACKLOG_EVENTS_PER_MESSAGE, clock=clock)


def messages(first: int, count: int) -> list[ev.Event]:
    key = SubscriptionKey(1, spec.CHANNEL_SIGNAL)
    return [ev.StreamMessage(key, Envelope(spec.CHANNEL_SIGNAL, {}), seq)
            for seq in range(first, first + count)]


class FakeSession:
    """What the socket thread's hooks use of a session: no subscription answered yet."""

    all_answered = False

    def __init__(self) -> None:
        self.failed: list[EndReason] = []

    def fail(self, reason: EndReason, detail: str, close_code: int | None = None) -> None:
        self.failed.append(reason)


def socket_side(handoff: Handoff[ev.Event]) -> tuple[_HandOver, FakeSession]:
    session = FakeSession()
    worker = SimpleNamespace(_handoff=handoff, _clock=time.monotonic)
    return _HandOver(worker, session), session  # type: ignore[arg-type]


class WaitingConsumer:
    """The output thread, waiting in take() for as long as it takes (the CLI's wait)."""

    def __init__(self, handoff: Handoff[ev.Event]) -> None:
        self.handoff = handoff
        self.taken: list[list[ev.Event]] = []
        self.thread = threading.Thread(target=lambda: self.taken.append(handoff.take(None)),
                                       daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not handoff._consumer_waiting:  # an event: it has started to wait
            assert time.monotonic() < deadline, "the consumer never started waiting"
            time.sleep(0.001)

    def woken(self) -> bool:
        """It took something (within a generous deadline: a wake-up never comes late)."""
        self.thread.join(10)
        woken = not self.thread.is_alive()
        self.handoff.close()  # release it either way
        self.thread.join(10)
        return woken


def test_a_burst_wakes_the_output_thread_long_before_a_small_max_buffer_is_reached() -> None:
    """--max-buffer 1000 (the bench's stall run): the output thread must be woken well
    before the backlog reaches it, not after WAKE_EVERY (2000) events, when the socket
    thread has long closed the connection for a backlog nobody was told about."""
    handoff = engine_handoff(1000)
    hooks, session = socket_side(handoff)
    consumer = WaitingConsumer(handoff)
    for first in (1, 101, 201):  # one burst, three reads; still below the fairness level
        hooks.hand_over(messages(first, 100))
    assert consumer.woken()
    assert [ev.message_count(taken) for taken in consumer.taken] == [300]
    assert session.failed == []


def test_closing_for_backlog_wakes_the_output_thread_at_once() -> None:
    """The connection is closed because the output is behind: the output thread must be
    writing the backlog from that moment, not from the end of the polite close."""
    handoff = engine_handoff(1000)
    hooks, session = socket_side(handoff)
    handoff.put(messages(1, 950), wake=False)
    held = handoff.take(0)  # a caller holding 950 unacknowledged messages, then waiting
    consumer = WaitingConsumer(handoff)
    hooks.hand_over(messages(951, 60))
    assert session.failed == [EndReason.OVERFLOW]
    assert consumer.woken()
    assert ev.message_count(held) == 950


def test_a_reader_that_was_waiting_for_messages_is_making_progress_when_a_burst_comes() -> None:
    """The clock of a stopped reader starts when it had work it did not finish, not at its
    last write: a reader idle for a quiet minute is not stopped at the burst's first read
    (it would get no time to catch up, and a close for backlog with nothing written)."""
    now = [0.0]
    handoff = engine_handoff(10_000, clock=lambda: now[0])
    handoff.put(messages(1, 1))
    handoff.done(handoff.take(0))  # caught up at 0
    now[0] = 60.0  # a quiet minute: it waits for messages
    handoff.put(messages(2, 300))
    now[0] = 60.3
    assert handoff.progressing(0.5)  # behind for 0.3 s only
    handoff.put(messages(302, 300))  # more of the burst: not a new start
    now[0] = 60.6
    assert not handoff.progressing(0.5)  # 0.6 s behind without finishing anything
    handoff.done(handoff.take(0))
    assert handoff.progressing(0.5)


class WaitRecorder:
    """Stands in for Handoff.wait_below: records the level the socket thread waits for."""

    def __init__(self) -> None:
        self.levels: list[int] = []

    def __call__(self, level: int, timeout: float) -> bool:
        self.levels.append(level)
        return True


@pytest.mark.parametrize(("max_buffer", "level"), [
    (10_000, spec.HANDOFF_READ_AHEAD_MESSAGES),  # the default: a fixed read-ahead
    (1_000, 500),  # a small --max-buffer: half of it, as before
])
def test_the_socket_thread_reads_ahead_of_a_writing_reader_only_so_far(
        max_buffer: int, level: int) -> None:
    """A reader draining steadily but slower than the socket: the socket thread waits for
    it past HANDOFF_READ_AHEAD_MESSAGES (not half of --max-buffer), so memory stays flat
    over a long fast stream instead of growing until half of --max-buffer is held."""
    now = [0.0]
    handoff = engine_handoff(max_buffer, clock=lambda: now[0])
    hooks, session = socket_side(handoff)
    waits = WaitRecorder()
    handoff.wait_below = waits  # type: ignore[method-assign]
    hooks.hand_over(messages(1, level))  # at the level: reads on
    assert waits.levels == []
    hooks.hand_over(messages(level + 1, 1))  # past it, the reader making progress: waits
    assert waits.levels == [level]
    assert session.failed == []


def test_a_stopped_reader_gets_no_read_ahead_wait() -> None:
    """A reader that finished nothing for HANDOFF_PROGRESS_WINDOW_SECONDS has stopped:
    the socket thread reads on (heartbeats are answered) up to --max-buffer."""
    now = [0.0]
    handoff = engine_handoff(10_000, clock=lambda: now[0])
    hooks, session = socket_side(handoff)
    waits = WaitRecorder()
    handoff.wait_below = waits  # type: ignore[method-assign]
    hooks.hand_over(messages(1, 10))
    now[0] = spec.HANDOFF_PROGRESS_WINDOW_SECONDS + 1
    hooks.hand_over(messages(11, 2 * spec.HANDOFF_READ_AHEAD_MESSAGES))
    assert waits.levels == []
    assert session.failed == []
