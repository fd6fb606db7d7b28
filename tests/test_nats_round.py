"""--to nats://: the publisher's rounds against acks read in bulk, without a server: a
real nats_compat client that is never connected to anything (what it sends is read
from its queue, what it reads is given to its parser as a socket read would).  A
refusal in the middle of a run of acks counts the acks before it and publishes again
from the refused message, with the same ids and new reply subjects; the acks of the
round before count no more."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from c2ws import Batch, spec
from c2ws import events as ev
from c2ws.protocol import Envelope

nats_client = pytest.importorskip("nats.aio.client", reason="the nats extra is not installed")

_T = TypeVar("_T")
INBOX = "_INBOX.test."
ACK = b'{"stream":"S","seq":%d}'
REFUSAL = (b'{"error":{"code":503,"err_code":10077,"description":"maximum messages '
           b'exceeded"},"stream":"S","seq":0}')
HPUB = re.compile(rb"HPUB (\S+) " + re.escape(INBOX.encode())
                  + rb"(\d+) \d+ \d+\r\nNATS/1.0\r\nNats-Msg-Id: (\S+)\r\n")


class Unconnected:
    """A NatsSink whose nats_compat client sends into its queue and reads what the test
    gives it."""

    def __init__(self) -> None:
        from c2ws.sinks import nats_compat
        from c2ws.sinks.nats import NatsOptions, NatsSink

        assert nats_compat.supported()
        self.said: list[str] = []
        self.sink = sink = NatsSink(NatsOptions(url="nats://127.0.0.1:1"),
                                    say=lambda text, _color: self.said.append(text))
        self.sent = threading.Semaphore(0)  # released for each run sent

        async def setup() -> Any:
            client = nats_compat.client_class()()
            client._status = nats_client.Client.CONNECTED
            client._flush_queue = asyncio.Queue()
            client._flush_queue.put_nowait(asyncio.Future())  # a flush due: none written
            send = client.send_encoded

            async def counted(*args: Any) -> bool:
                sent: bool = await send(*args)
                self.sent.release()
                return sent

            client.send_encoded = counted
            client.take_acks_first(INBOX, sink._token_of, sink._take_ack, sink._take_acks)
            sink._nc, sink._inbox, sink._fast = client, INBOX, True
            return client

        self.client = self.on_loop(setup())

    def on_loop(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.sink._loop).result(10)

    def take_sent(self) -> list[tuple[str, int]]:
        """(Nats-Msg-Id, reply token) of each publish sent since the last call."""
        async def take() -> bytes:
            sent = b"".join(self.client._pending)
            self.client._pending.clear()
            self.client._pending_data_size = 0
            return sent

        return [(found[3].decode(), int(found[2])) for found in HPUB.finditer(
            self.on_loop(take()))]

    def read(self, wire: bytes) -> None:
        self.on_loop(self.client._ps.parse(wire))

    def sent_until(self, count: int) -> list[tuple[str, int]]:
        """What :meth:`take_sent` says, waited for until ``count`` publishes came."""
        sent: list[tuple[str, int]] = []
        while len(sent) < count:
            assert self.sent.acquire(timeout=10), f"the publisher sent {len(sent)} only"
            sent += self.take_sent()
        return sent


def batches(count: int, size: int) -> list[Batch]:
    key = ev.SubscriptionKey(7, spec.CHANNEL_SIGNAL)
    events: list[ev.Event] = [
        ev.StreamMessage(key, Envelope(spec.CHANNEL_SIGNAL, {}, seq_id=seq,
                                       data=b'{"seq_id":%d}' % seq), cursor=seq)
        for seq in range(1, count + 1)]
    return [Batch(events[at:at + size]) for at in range(0, count, size)]


def acks(tokens: list[int], reply: Callable[[int], bytes]) -> bytes:
    return b"".join(b"MSG %s%d 1 %d\r\n%s\r\n" % (INBOX.encode(), token, len(reply(token)),
                                                 reply(token)) for token in tokens)


def test_a_refusal_in_a_run_of_acks_publishes_again_from_it() -> None:
    unconnected = Unconnected()
    sink = unconnected.sink
    given = batches(10, 5)
    try:
        for batch in given:
            sink.write(batch)
        first = unconnected.sent_until(10)  # in one run or two
        ids = [f"7:strategy.signal:{seq}" for seq in range(1, 11)]
        assert [msg_id for msg_id, _ in first] == ids
        tokens = [token for _, token in first]
        # One read, one run: acks of 1-5, the refusal of 6, acks of 7-10 (as a stream
        # whose limit came back after 6 may answer).
        unconnected.read(acks(tokens, lambda t: REFUSAL if t == tokens[5] else ACK % t))
        again = unconnected.sent_until(5)  # the round again, from the refused message
        assert [msg_id for msg_id, _ in again] == ids[5:]
        assert min(token for _, token in again) > max(tokens)  # new reply subjects
        # Said at once, naming the message: a kill -9 before it is stored would leave
        # the stream's last message past it (README, Fan-out).
        assert unconnected.said == [
            "NATS JetStream did not store 7:strategy.signal:6 on c2.signal.7 (maximum "
            "messages exceeded); publishing it and what follows again"]
        assert sink.durable() == [given[0]]  # the acks before the refusal counted
        assert sink._acked_total == 5
        # The first round's acks of 7-10 again (late): they count no more.
        unconnected.read(acks(tokens[6:], lambda t: ACK % t))
        assert sink._acked_total == 5
        unconnected.read(acks([token for _, token in again], lambda t: ACK % t))
        sink.sync()
        assert sink.durable() == [given[1]]
        assert (sink.published, sink.duplicates) == (10, 0)
    finally:
        sink.close()
