"""A sink whose batches turn durable after its write returned (NATS, publishing pipelined
across batches): the driver looks at them again while the stream is quiet
(``Stream.next_batch(idle=...)``, :func:`c2ws.sinks.settle_wait`), so the last batches of
a burst are acknowledged and committed without another message."""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping

from test_stream import A, Recorded, make, message

from c2ws.events import SubscriptionKey
from c2ws.sinks import Guarantee, deliver, settle_wait
from c2ws.streaming import Batch


class Later:
    """A sink that makes a batch durable when the test says (``release``)."""

    name = "later"
    guarantee = Guarantee.EXACTLY_ONCE
    guarantee_detail = ""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.held: list[Batch] = []
        self.ready: list[Batch] = []
        self.written = threading.Event()

    def open(self, keys: Collection[SubscriptionKey]) -> Mapping[SubscriptionKey, int]:
        return {}

    def write(self, batch: Batch) -> None:
        with self.lock:
            self.held.append(batch)
        self.written.set()

    def release(self) -> None:
        with self.lock:
            self.ready += self.held
            self.held = []

    def durable(self) -> list[Batch]:
        with self.lock:
            done, self.ready = self.ready, []
            return done

    def unsettled(self) -> int:
        with self.lock:
            return len(self.held) + len(self.ready)

    def sync(self) -> None:
        self.release()

    def close(self) -> None:
        pass


class Watched(Recorded):
    def __init__(self) -> None:
        super().__init__()
        self.committed = threading.Event()

    def commit(self, cursors: Mapping[SubscriptionKey, int]) -> None:
        super().commit(cursors)
        self.committed.set()


def test_a_quiet_wait_ends_with_an_empty_batch_when_idle_says_so() -> None:
    stream, engine = make(auto_ack=False)
    quiet = stream.next_batch(idle=lambda: 0.0)
    assert quiet is not None and len(quiet) == 0 and list(quiet.events) == []
    engine.handoff.put([message(A, 1)])
    batch = stream.next_batch(idle=lambda: 0.0)  # a message waiting comes first
    assert batch is not None and [e.message.seq_id for e in batch.events] == [1]
    stream.close()


def test_no_idle_for_a_sink_durable_when_written() -> None:
    class Plain:
        pass

    assert settle_wait(Plain()) is None  # type: ignore[arg-type]
    sink = Later()
    idle = settle_wait(sink)
    assert idle is not None and idle() is None
    sink.write(Batch([]))
    assert idle() is not None and idle() > 0


def test_deliver_acknowledges_what_turns_durable_while_no_message_comes() -> None:
    store = Watched()
    stream, engine = make(auto_ack=False, count=3, cursors=store)
    sink = Later()
    driver = threading.Thread(target=deliver, args=(stream, sink), daemon=True)
    engine.handoff.put([message(A, 1), message(A, 2)])
    driver.start()
    assert sink.written.wait(10)
    assert store.commits == []
    sink.release()  # the acks came; no message follows
    assert store.committed.wait(10), "what turned durable waited for the next message"
    assert store.commits[-1] == {A: 2}
    engine.handoff.put([message(A, 3)])  # the count: the stream ends
    driver.join(10)
    assert not driver.is_alive()
    assert store.commits[-1] == {A: 3}
