"""One thread that waits on every connection of a run, instead of one per connection.

A run over several connections (more than spec.MAX_SUBSCRIPTIONS_PER_CONNECTION
subscriptions) spends its idle time waiting for each connection's heartbeats.  With a
socket thread per connection, every heartbeat wakes a thread of its own, cold; one
thread waiting on all the sockets at once answers the heartbeats that arrive together in
one wake-up, with its caches warm for the next (issue 22's scale target).

Each connection keeps its :class:`~c2ws.net.worker.ShardWorker` thread for what
blocks: connecting, the close handshake, the backoff between connections.  Once it has
a session under way, the worker hands its :class:`~c2ws.net.driver.Driver` to the
poller (:meth:`Poller.drive`) and sleeps until that session has ended; the poller takes
the driver's turns (:meth:`Driver.plan`, :meth:`Driver.turn`) along with every other
connection's, one turn each per round, so a busy connection never holds up another's
heartbeat for more than one read.
"""

from __future__ import annotations

import contextlib
import math
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from c2ws.net.driver import Driver, Readiness


def available() -> bool:
    """Whether this platform has what the poller waits with (poll(2))."""
    return hasattr(select, "poll")


@dataclass(eq=False)
class _Entry:
    """A driver the poller takes turns for, until its session has ended."""

    driver: Driver
    sock_fd: int
    stop_fd: int | None
    done: threading.Event = field(default_factory=threading.Event)
    # What the poller found when the driver's turn was due at once (from plan()).
    ready: tuple[bool, bool] | None = None
    # Its plan is to be made again: it is new, or took a turn since.  (A driver that
    # took none has nothing new to plan: its stop signal and a change of its keys wake
    # its turn through the stop signal's socket.)
    replan: bool = True
    readable: bool = False
    woken: bool = False
    # A bug met while taking its turn: raised again on the worker's thread.
    error: BaseException | None = None
    # A zero-timeout wait on its socket and stop signal (TLS's read-first check).
    probe: Callable[[], tuple[bool, bool]] = field(init=False)

    def __post_init__(self) -> None:
        self.probe = partial(Readiness(self.sock_fd, self.stop_fd).wait, 0)


class Poller:
    """The thread that takes the turns of every driver handed to :meth:`drive`.

    Started at the first :meth:`drive`; :meth:`close` ends it (the engine does once its
    workers have ended).  With nothing to drive it sleeps in poll(2) on its own wake-up
    socket: no CPU."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 name: str = "c2ws-poller") -> None:
        self._clock = clock
        self._name = name
        self._lock = threading.Lock()
        self._added: list[_Entry] = []
        self._entries: list[_Entry] = []
        self._by_fd: dict[int, tuple[_Entry, bool]] = {}  # fd -> (entry, is its socket)
        self._poll = select.poll()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._poll.register(self._wake_reader.fileno(), select.POLLIN)
        self._thread: threading.Thread | None = None
        self._closing = False

    # --- from the workers' threads --------------------------------------------------------

    def drive(self, driver: Driver) -> None:
        """Take ``driver``'s turns until its session has ended; returns then (the caller
        then runs :meth:`Driver.finish` on its own thread).  Raises what a turn of it
        raised that was not a failure of the connection (a bug)."""
        driver.begin()
        if driver.session.ended is not None:
            return
        stop = driver.stop
        entry = _Entry(driver, driver.transport.fileno(), None if stop is None else stop.fileno())
        with self._lock:
            if self._closing:
                raise RuntimeError("the poller is closed")
            self._added.append(entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
        self._wake()
        entry.done.wait()
        if entry.error is not None:
            raise entry.error

    def close(self) -> None:
        """End the thread once no driver is left to it (bounded: it never blocks on one)."""
        with self._lock:
            self._closing = True
            thread = self._thread
        self._wake()
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)
        if thread is None or not thread.is_alive():
            for sock in (self._wake_reader, self._wake_writer):
                with contextlib.suppress(OSError):
                    sock.close()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # already woken (its buffer is full) or closed
            self._wake_writer.send(b"\0")

    # --- the thread ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while self._take_added():
                self._round()
        except BaseException as exc:  # a bug of the poller itself: every worker hears it
            with self._lock:
                self._closing = True
                left = self._entries + self._added
                self._entries, self._added = [], []
            for entry in left:
                entry.error = exc
                entry.done.set()

    def _take_added(self) -> bool:
        """Register the drivers handed over since the last round; False when closing
        with none left."""
        with self._lock:
            added, self._added = self._added, []
            closing = self._closing
        for entry in added:
            self._entries.append(entry)
            self._by_fd[entry.sock_fd] = (entry, True)
            self._poll.register(entry.sock_fd, select.POLLIN)
            if entry.stop_fd is not None:
                self._by_fd[entry.stop_fd] = (entry, False)
                self._poll.register(entry.stop_fd, select.POLLIN)
        return not (closing and not self._entries)

    def _round(self) -> None:
        """Each driver's plan, one wait for all of them (none when a turn is due at
        once), then each driver whose turn came takes it."""
        deadline: float | None = None
        due_now = False
        for entry in list(self._entries):
            if entry.replan:
                entry.replan = False
                entry.ready = self._guarded(entry, entry.driver.plan, entry.probe)
                if entry.done.is_set():
                    continue
            if entry.ready is not None:
                due_now = True
                continue
            planned = entry.driver.planned_deadline
            if planned is not None and (deadline is None or planned < deadline):
                deadline = planned
        if due_now:
            timeout: float | None = 0
        elif deadline is None:
            timeout = None
        else:
            # Rounded up to whole milliseconds, as selectors do: never wake just before.
            timeout = math.ceil(max(0.0, deadline - self._clock()) * 1e3)
        for fd, _ in self._poll.poll(timeout):
            found = self._by_fd.get(fd)
            if found is None:  # the wake-up socket
                with contextlib.suppress(OSError):
                    while self._wake_reader.recv(256):
                        pass
                continue
            entry, is_socket = found
            if is_socket:
                entry.readable = True
            else:
                entry.woken = True
        now = self._clock()
        for entry in list(self._entries):
            if entry.done.is_set():
                continue
            ready = entry.ready
            if ready is not None:
                readable, woken = ready
            else:
                readable, woken = entry.readable, entry.woken
                planned = entry.driver.planned_deadline
                if not (readable or woken or (planned is not None and now >= planned)):
                    continue
            entry.readable = entry.woken = False
            entry.ready = None
            entry.replan = True
            self._guarded(entry, entry.driver.turn, readable, woken)

    def _guarded(self, entry: _Entry, step: Callable[..., object], *args: object
                 ) -> tuple[bool, bool] | None:
        """Run one step of ``entry``'s driver; once its session has ended (or a bug broke
        it), hand the driver back to its worker."""
        try:
            result = step(*args)
        except BaseException as exc:
            entry.error = exc
            self._release(entry)
            return None
        if entry.driver.session.ended is not None:
            self._release(entry)
            return None
        return result if isinstance(result, tuple) else None

    def _release(self, entry: _Entry) -> None:
        self._entries.remove(entry)
        for fd in (entry.sock_fd, entry.stop_fd):
            if fd is not None:
                self._by_fd.pop(fd, None)
                with contextlib.suppress(KeyError, ValueError):
                    self._poll.unregister(fd)
        entry.done.set()
