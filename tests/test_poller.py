"""The poller (c2ws/net/poller.py) with stand-in drivers over socket pairs: no server.
What it must do: one thread takes every driver's turns, one turn each per round (a busy
driver never holds up another), each driver's deadline is kept, a driver goes back to
its worker when its session ends, and a bug in one driver's turn is raised on its own
worker's thread while the others go on."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from raw_server import (
    RawServer,
    read_request,
    server_frame,
    server_tls,
    switching_protocols,
    wait_until_closed_by_client,
)

from c2ws import events as ev
from c2ws.delivery.dedupe import StreamFilter
from c2ws.events import EndReason
from c2ws.net.connection import StopSignal, open_connection
from c2ws.net.driver import Driver, DriverHooks
from c2ws.net.poller import Poller
from c2ws.server.app import ConnectionRecord
from c2ws.session import ClientSession, SessionTimeouts
from c2ws.testing import TestServer

WAIT = 30.0  # every wait of these tests is for an event; this only bounds a failure


@dataclass
class _Ended:
    reason: str


@dataclass
class _Session:
    ended: _Ended | None = None


class _Transport:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()


@dataclass
class FakeDriver:
    """What the poller uses of a Driver: begin, plan, turn, planned_deadline, session,
    stop, transport.  Each turn reads one byte; the bytes it read are kept in order."""

    sock: socket.socket
    stop: StopSignal | None = None
    deadline_in: float | None = None  # plan() asks for a wait with this deadline
    end_after: int | None = None  # the session ends after this many bytes
    always_ready: bool = False  # plan() says a turn is due at once (a burst)
    fail_on: bytes | None = None  # a turn reading this byte raises (a bug)
    session: _Session = field(default_factory=_Session)
    read: list[bytes] = field(default_factory=list)
    turns_without_data: int = 0
    deadlines_passed: int = 0
    threads: set[str] = field(default_factory=set)
    planned_deadline: float | None = None

    def __post_init__(self) -> None:
        self.transport = _Transport(self.sock)
        self.sock.setblocking(False)

    def begin(self) -> None:
        pass

    def plan(self, probe: Callable[[], tuple[bool, bool]]) -> tuple[bool, bool] | None:
        self.threads.add(threading.current_thread().name)
        if self.stop is not None and self.stop.requested:
            self.session.ended = _Ended("stopped")
            return None
        self.planned_deadline = (None if self.deadline_in is None
                                 else time.monotonic() + self.deadline_in)
        return (True, False) if self.always_ready else None

    def turn(self, readable: bool, woken: bool) -> None:
        if woken and self.stop is not None:
            self.stop.clear_wakeups()
        data = b""
        if readable:
            try:
                data = self.sock.recv(1)
            except BlockingIOError:
                data = b""
        if not data:
            self.turns_without_data += 1
            if (self.planned_deadline is not None
                    and time.monotonic() >= self.planned_deadline):
                self.deadlines_passed += 1
            return
        if data == self.fail_on:
            raise RuntimeError("a bug in a turn")
        self.read.append(data)
        if self.end_after is not None and len(self.read) >= self.end_after:
            self.session.ended = _Ended("done")


@contextmanager
def pairs(count: int) -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    made = [socket.socketpair() for _ in range(count)]
    try:
        yield made
    finally:
        for a, b in made:
            a.close()
            b.close()


def drive_in_thread(poller: Poller, driver: FakeDriver
                    ) -> tuple[threading.Thread, list[BaseException]]:
    raised: list[BaseException] = []

    def work() -> None:
        try:
            poller.drive(driver)  # type: ignore[arg-type]
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=work, name=f"worker-{id(driver)}")
    thread.start()
    return thread, raised


def wait_until(condition: Callable[[], bool]) -> None:
    give_up = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < give_up, "the condition never came"
        time.sleep(0.001)


def test_one_thread_takes_every_drivers_turns_and_hands_each_back_when_it_ends() -> None:
    poller = Poller()
    with pairs(3) as socks:
        drivers = [FakeDriver(ours, end_after=3) for ours, _ in socks]
        running = [drive_in_thread(poller, d) for d in drivers]
        for _, theirs in socks:
            theirs.sendall(b"abc")
        for thread, raised in running:
            thread.join(WAIT)
            assert not thread.is_alive() and not raised
        assert [d.read for d in drivers] == [[b"a", b"b", b"c"]] * 3
        assert {name for d in drivers for name in d.threads} == {"c2ws-poller"}
    poller.close()


def test_a_driver_in_a_burst_takes_one_turn_per_round_and_never_holds_up_another() -> None:
    """A driver whose turn is always due at once (a long burst) shares the rounds: the
    other's byte is read while the burst goes on."""
    poller = Poller()
    with pairs(2) as socks:
        (busy_ours, busy_theirs), (quiet_ours, quiet_theirs) = socks
        busy = FakeDriver(busy_ours, always_ready=True)
        quiet = FakeDriver(quiet_ours, end_after=1)
        busy_run = drive_in_thread(poller, busy)
        quiet_run = drive_in_thread(poller, quiet)
        wait_until(lambda: busy.turns_without_data > 10)  # the burst is under way
        quiet_theirs.sendall(b"q")
        quiet_run[0].join(WAIT)
        assert quiet.read == [b"q"] and not quiet_run[1]
        busy.session.ended = _Ended("done")
        busy_theirs.sendall(b"x")  # a turn, which sees the end
        busy_run[0].join(WAIT)
        assert not busy_run[0].is_alive()
    poller.close()


def test_each_drivers_deadline_is_kept_while_it_waits() -> None:
    poller = Poller()
    with pairs(2) as socks:
        soon = FakeDriver(socks[0][0], deadline_in=0.01)
        never = FakeDriver(socks[1][0])
        runs = [drive_in_thread(poller, d) for d in (soon, never)]
        wait_until(lambda: soon.deadlines_passed >= 3)
        assert never.turns_without_data == 0  # not woken for the other's deadline
        for driver, (_, theirs) in zip((soon, never), socks, strict=True):
            driver.end_after = 1
            theirs.sendall(b"e")
        for thread, raised in runs:
            thread.join(WAIT)
            assert not thread.is_alive() and not raised
    poller.close()


def test_a_stop_signal_wakes_its_driver_only() -> None:
    poller = Poller()
    with pairs(2) as socks:
        stops = [StopSignal(), StopSignal()]
        drivers = [FakeDriver(ours, stop=stop)
                   for (ours, _), stop in zip(socks, stops, strict=True)]
        runs = [drive_in_thread(poller, d) for d in drivers]
        wait_until(lambda: all(d.threads for d in drivers))
        stops[0].set()
        runs[0][0].join(WAIT)
        assert drivers[0].session.ended == _Ended("stopped")
        assert drivers[1].session.ended is None and runs[1][0].is_alive()
        stops[1].set()
        runs[1][0].join(WAIT)
        assert not runs[1][0].is_alive()
        for stop in stops:
            stop.close()
    poller.close()


def test_a_bug_in_one_drivers_turn_is_raised_on_its_worker_and_the_others_go_on() -> None:
    poller = Poller()
    with pairs(2) as socks:
        broken = FakeDriver(socks[0][0], fail_on=b"!")
        healthy = FakeDriver(socks[1][0], end_after=2)
        broken_run = drive_in_thread(poller, broken)
        healthy_run = drive_in_thread(poller, healthy)
        socks[0][1].sendall(b"!")
        broken_run[0].join(WAIT)
        assert [str(e) for e in broken_run[1]] == ["a bug in a turn"]
        socks[1][1].sendall(b"ok")
        healthy_run[0].join(WAIT)
        assert healthy.read == [b"o", b"k"] and not healthy_run[1]
    poller.close()


def test_a_closed_poller_takes_no_driver_and_its_thread_ends() -> None:
    poller = Poller()
    with pairs(1) as socks:
        driver = FakeDriver(socks[0][0], end_after=1)
        run = drive_in_thread(poller, driver)
        socks[0][1].sendall(b"x")
        run[0].join(WAIT)
        poller.close()
        assert not [t for t in threading.enumerate() if t.name == "c2ws-poller"]
        with pytest.raises(RuntimeError, match="closed"):
            poller.drive(FakeDriver(socks[0][0]))  # type: ignore[arg-type]


# --- end to end: the engine over three connections of the reference server ---------------

KEY = "poller-e2e-key-0001"


@pytest.mark.c2_server_options(api_key=KEY, strategies=tuple(range(1, 126)),
                               heartbeat_interval=0.2)
def test_three_connections_run_on_one_poller_answering_every_heartbeat(server: TestServer
                                                                      ) -> None:
    """250 subscriptions: three connections, their sessions on one poller thread; each
    answers its own heartbeats, each one's messages come out, and the stop closes each
    with 1000 and ends the poller."""
    import c2ws

    with c2ws.stream(range(1, 126), api_key=KEY, url=server.url, timeout=30) as stream:
        def all_subscribed() -> list[ConnectionRecord] | None:
            records = server.connections(open_only=True)
            done = len(records) == 3 and sum(len(r.subscriptions) for r in records) == 250
            return records if done else None

        server.wait_for(all_subscribed, timeout=WAIT)
        server.wait_for(lambda: all(r.heartbeat_acks >= 3 for r in
                                    server.connections(open_only=True)) or None, timeout=WAIT)
        names = [thread.name for thread in threading.enumerate()]
        assert names.count("c2ws-poller") == 1
        assert sum(name.startswith("c2ws-socket-") for name in names) == 3
        for strategy in (1, 60, 125):  # one on each connection
            server.publish(strategy)
        signals = (m for m in stream if isinstance(m, c2ws.Signal))
        assert sorted(next(signals).strategy_id or 0 for _ in range(3)) == [1, 60, 125]
    server.wait_for(lambda: all(r.client_close_code is not None
                                for r in server.connections()) or None, timeout=WAIT)
    assert [r.client_close_code for r in server.connections()] == [1000, 1000, 1000]
    assert "c2ws-poller" not in [thread.name for thread in threading.enumerate()]


@pytest.mark.c2_server_options(api_key=KEY, strategies=tuple(range(1, 126)))
def test_dropped_connections_are_resumed_through_the_poller(server: TestServer) -> None:
    """Every connection cut without a close: each worker reconnects and hands its new
    session to the same poller, resumed with nothing lost or doubled."""
    import c2ws

    with c2ws.stream(range(1, 126), ["signal"], api_key=KEY, url=server.url,
                     timeout=30) as stream:
        server.wait_for(lambda: (len(server.connections(open_only=True)) == 2 and sum(
            len(r.subscriptions) for r in server.connections(open_only=True)) == 125) or None,
                        timeout=WAIT)  # 63 and 62
        messages = iter(stream)
        for strategy in (1, 60, 125):
            server.publish(strategy)
        first = sorted((m.strategy_id, m.seq_id) for m in (next(messages) for _ in range(3)))
        assert first == [(1, 1), (60, 1), (125, 1)]
        server.drop_connections()
        for strategy in (1, 60, 125):
            server.publish(strategy)  # while they reconnect, or after: replayed or live
        then = sorted((m.strategy_id, m.seq_id) for m in (next(messages) for _ in range(3)))
        assert then == [(1, 2), (60, 2), (125, 2)]
        server.wait_for(lambda: len([r for r in server.connections(open_only=True)
                                     if r.number > 2 and r.subscriptions]) == 2 or None,
                        timeout=WAIT)
        for strategy in (125, 60, 1):
            server.publish(strategy)
        last = sorted((m.strategy_id, m.seq_id) for m in (next(messages) for _ in range(3)))
        assert last == [(1, 3), (60, 3), (125, 3)]
        assert [t.name for t in threading.enumerate()].count("c2ws-poller") == 1


# --- TLS: bytes decrypted and held by the TLS layer, which no poll sees ----------------------


class Collected(DriverHooks):
    def __init__(self) -> None:
        self.events: list[ev.Event] = []

    def hand_over(self, events: list[ev.Event]) -> None:
        self.events.extend(events)


def test_tls_connections_through_the_poller_get_every_frame_in_order(
    self_signed: tuple[Path, Path],
) -> None:
    """Each server writes connection.connected and then 200 control messages in one TLS
    write: most of them wait decrypted in the TLS layer, which no poll sees (the
    driver's plan finds them through transport.pending()); both connections get all of
    them, in order, and leave cleanly when stopped."""
    frames = [orjson.dumps({"msg_type": "connection.connected", "connection_id": "c"})] + [
        orjson.dumps({"msg_type": "c2ws.test", "n": n}) for n in range(200)]

    def handler(conn: socket.socket, server: RawServer) -> None:
        conn.sendall(switching_protocols(read_request(conn))
                     + b"".join(server_frame(frame) for frame in frames))
        wait_until_closed_by_client(conn, server)

    trusting = ssl.create_default_context(cafile=str(self_signed[0]))
    poller = Poller()
    with RawServer(handler, tls=server_tls(self_signed)) as server:
        runs = []
        for _ in range(2):
            transport = open_connection(server.url, "poller-tls-key-0001", timeout=WAIT,
                                        ssl_context=trusting)
            hooks, stop = Collected(), StopSignal()
            session = ClientSession(request_id_prefix="c2ws-test",
                                    stream_filter=StreamFilter([], {}), now=time.monotonic(),
                                    timeouts=SessionTimeouts(connected=WAIT, silence=WAIT))
            driver = Driver(transport, session, hooks=hooks, stop=stop)
            thread, raised = drive_in_thread(poller, driver)  # type: ignore[arg-type]
            runs.append((transport, hooks, stop, driver, thread, raised))
        for transport, hooks, stop, driver, thread, raised in runs:
            def all_came(hooks: Collected = hooks) -> bool:
                return sum(isinstance(e, ev.UnknownMessage) for e in hooks.events) == 200

            wait_until(all_came)
            stop.set()
            thread.join(WAIT)
            assert not thread.is_alive() and not raised
            assert driver.finish().reason is EndReason.STOPPED
            seen = [e for e in hooks.events if isinstance(e, ev.UnknownMessage)]
            assert [e.message.raw["n"] for e in seen] == list(range(200))
            transport.close()
            stop.close()
    poller.close()
