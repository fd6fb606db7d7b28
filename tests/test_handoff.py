"""The hand-off between socket threads and the output thread."""

from __future__ import annotations

import threading

from c2ws.net.handoff import Handoff


def test_put_never_blocks_and_counts_the_backlog_until_done() -> None:
    handoff: Handoff[int] = Handoff(2)
    assert handoff.put([1, 2, 3]) == 3  # past the limit: the producer decides what to do
    assert handoff.take(0) == [1, 2, 3]
    assert handoff.backlog == 3  # taken is not written
    handoff.done(2)
    assert handoff.backlog == 1


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
    handoff.take(0)
    released: list[bool] = []
    producer = threading.Thread(
        target=lambda: released.append(handoff.wait_for_room(2, lambda: False, 30))
    )
    producer.start()
    handoff.done(5)
    producer.join(0.05)
    assert producer.is_alive() and released == []  # 5 still outstanding: not yet
    handoff.done(3)
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
    """The socket thread's wait (c2ws.net.worker.Readiness): which of the two sockets can
    be read, a timeout with neither, and a closed peer counts as readable."""
    import socket

    from c2ws.net.worker import Readiness

    conn, server = socket.socketpair()
    wake_reader, wake_writer = socket.socketpair()
    readiness = Readiness(conn, wake_reader)
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
