"""The connection driver: one :class:`~c2ws.session.ClientSession` over one upgraded
connection, from the first frame to the close.  The only socket loop of c2ws: the
stream's socket threads (c2ws/net/worker.py), ``c2ws check`` (c2ws/probe.py) and, for its
sans-I/O part (:class:`SessionFeed`), ``c2ws replay`` (c2ws/replayer.py) all run on it.

Each turn: wait (poll) until the socket is readable, a stop is requested or the next
deadline comes; read what the socket holds; parse every frame that is whole
(:class:`~c2ws.net.frames.FrameReader`: a frame that is not whole yet stays in the
buffer and never holds up the complete ones); feed them to the session; send what the
session queued; hand its events over.  Only then does it wait again, so every parsed
message is handed over before the driver waits for more bytes.

Every wait has a deadline and polls the stop signal: a stop request is seen at once.
Stopping is polite: unsubscribe, wait briefly for the answers, send a close frame, wait
briefly for the server's (spec.LEAVE_UNSUBSCRIBE_WAIT_SECONDS,
spec.LEAVE_CLOSE_WAIT_SECONDS), then shut the socket.
"""

from __future__ import annotations

import contextlib
import math
import select
import selectors
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Final

from c2ws import events as ev
from c2ws import spec
from c2ws.events import ConnectionEnd, EndReason
from c2ws.net.connection import (
    READ_CHUNK,
    ConnectionLost,
    SendBlocked,
    SendStopped,
    SocketTransport,
    StopSignal,
)
from c2ws.net.frames import (
    OPCODE_BINARY,
    OPCODE_CLOSE,
    OPCODE_PING,
    OPCODE_PONG,
    OPCODE_TEXT,
    FrameError,
    FrameReader,
    MaskKeys,
    client_frame,
    client_text_frame,
    close_payload,
    parse_close,
)
from c2ws.redaction import KeyRedactor
from c2ws.session import ClientSession

# Endings after which the peer may still answer a close frame.
_POLITE_CLOSE: Final = frozenset({
    EndReason.STOPPED, EndReason.OVERFLOW, EndReason.NO_CONNECTED, EndReason.NO_ACK,
    EndReason.AUTH_FAILED,
})
_STOPPED_DETAIL: Final = "closed by c2ws"
# What ends a session as a failure of its connection (Driver._broke says how).
_BREAKS: Final = (FrameError, SendBlocked, SendStopped, ConnectionLost)

Clock = Callable[[], float]


class ReceivedBytes:
    """Bytes read from every connection of this process (issue 25: the metrics'
    ``c2ws_received_bytes_total``): one uncontended lock per read, nothing per frame."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = 0

    def add(self, count: int) -> None:
        with self._lock:
            self._total += count

    @property
    def total(self) -> int:
        return self._total


RECEIVED_BYTES: Final = ReceivedBytes()

# Issue 25: the newest driver of each connection slot (shard) of this process, and the
# last heartbeat its predecessors answered, so that the metrics can read when each slot
# last answered one (``last_heartbeats``) without an event per heartbeat waking the
# consumer.  Updated once per connection; nothing per frame.
_NEWEST: Final[dict[int, tuple[Driver, float | None]]] = {}
_NEWEST_LOCK: Final = threading.Lock()


def _later(first: float | None, second: float | None) -> float | None:
    if first is None or second is None:
        return second if first is None else first
    return max(first, second)


def last_heartbeats() -> dict[int, float]:
    """For each connection slot (shard) of this process, when a session of it last
    answered a heartbeat (the drivers' monotonic clock); slots without one are absent."""
    with _NEWEST_LOCK:
        newest = list(_NEWEST.items())
    found: dict[int, float] = {}
    for shard, (driver, before) in newest:
        last = _later(before, driver.session.last_heartbeat)
        if last is not None:
            found[shard] = last
    return found


class SessionFeed:
    """Frames into a session, and what the session made of them out, with no socket:
    the frame -> session -> events core of the driver, which ``c2ws replay`` also runs
    recorded frames through.  Redacts the API key from every frame first (a server may
    echo it), and with ``traffic`` puts each frame in and out next to what it caused
    (:class:`~c2ws.events.Traffic`)."""

    def __init__(
        self, session: ClientSession, *, redactor: KeyRedactor | None = None,
        traffic: bool = False, shard: int = 0,
    ) -> None:
        self.session = session
        self.redactor = redactor
        self.traffic = traffic
        self.shard = shard
        self._events: list[ev.Event] = []

    def texts(self, frames: list[bytes], now: float, wall: float) -> None:
        """Text frames received together (the fast path: one session call for a burst)."""
        session, events = self.session, self._events
        if self.redactor is not None:
            self.redactor.redact_frames(frames)
        if self.traffic:  # each frame next to what it caused
            for data in frames:
                events.append(ev.Traffic("<", data, self.shard, wall))
                session.receive(data, now=now, wall=wall)
                events.extend(session.events_received())
        else:
            session.receive_frames(frames, now=now, wall=wall)
            events.extend(session.events_received())

    def burst(self, ndjson: bytes, count: int, now: float, wall: float) -> None:
        """Text frames received together, as the lines of ``ndjson`` (see
        FrameReader.plain_burst: none holds the redactor's marker; never with traffic)."""
        self.session.receive_burst(ndjson, count, now=now, wall=wall)
        self._events.extend(self.session.events_received())

    def message(self, data: bytes | str, now: float, wall: float) -> None:
        """One text (or binary) message."""
        if self.redactor is not None:
            data = self.redactor.redact_frame(data)
        if self.traffic:
            self._events.append(ev.Traffic("<", data, self.shard, wall))
        self.session.receive(data, now=now, wall=wall)
        self._events.extend(self.session.events_received())

    def outgoing(self, wall: float) -> list[bytes]:
        """The frames the session wants sent, in order."""
        frames = self.session.data_to_send()
        if self.traffic:
            self._events.extend(ev.Traffic(">", data, self.shard, wall) for data in frames)
        return frames

    def take_events(self) -> list[ev.Event]:
        """Everything that happened since the last call, in order."""
        self._events.extend(self.session.events_received())
        events, self._events = self._events, []
        return events


class DriverHooks:
    """What a user of the driver does with what happens; each method is optional.  Hooks
    run in the driver's thread and may call the driver (:meth:`Driver.leave`,
    :meth:`Driver.ping`) or end the session (``driver.session.fail``)."""

    def hand_over(self, events: list[ev.Event]) -> None:
        """The events of one read (or one deadline): must not block for long."""

    def idle(self) -> None:
        """The driver is about to wait, with nothing left to read."""

    def sent(self, data: bytes, wall: float) -> None:
        """The session's frame ``data`` went out at ``wall``."""

    def pong(self, data: bytes, now: float) -> None:
        """A pong frame arrived."""

    def deadline(self) -> float | None:
        """A time (monotonic) at which :meth:`tick` must run, if any."""
        return None

    def tick(self, now: float) -> None:
        """A deadline passed (the session's, or this object's own)."""


@dataclass(frozen=True)
class DriverSettings:
    """``io_timeout``: a frame's bytes must all arrive within this long of its first, and
    the socket must take each frame we send within this long.  ``traffic``: Traffic
    events for every text frame in and out.  ``leave_wait`` and ``close_wait``: how long
    leaving waits for the unsubscribe answers, then for the server's close frame."""

    io_timeout: float = spec.FRAME_COMPLETION_TIMEOUT_SECONDS
    traffic: bool = False
    leave_wait: float = spec.LEAVE_UNSUBSCRIBE_WAIT_SECONDS
    close_wait: float = spec.LEAVE_CLOSE_WAIT_SECONDS


class Readiness:
    """Whether the connection's socket (and the stop signal) can be read.  One poll(2)
    per wait where the OS has it: a selector's key objects, sets and lookups were a few
    microseconds of every idle heartbeat.  A selector elsewhere."""

    def __init__(self, sock_fd: int, stop_fd: int | None) -> None:
        self._sock_fd = sock_fd
        self._poll: select.poll | None = None
        self._selector: selectors.BaseSelector | None = None
        fds = [sock_fd] if stop_fd is None else [sock_fd, stop_fd]
        if hasattr(select, "poll"):
            self._poll = select.poll()
            for fd in fds:
                self._poll.register(fd, select.POLLIN)
        else:  # pragma: no cover - Windows
            self._selector = selectors.DefaultSelector()
            for fd in fds:
                self._selector.register(fd, selectors.EVENT_READ)

    def wait(self, timeout: float | None) -> tuple[bool, bool]:
        """(the socket, the stop signal) readable, waiting up to ``timeout`` seconds
        (None: until one is).  A hang-up or error counts as readable: the read says what
        it is."""
        if self._poll is not None:
            # Rounded up to whole milliseconds, as selectors do: never wake just before.
            ready = self._poll.poll(None if timeout is None else math.ceil(timeout * 1e3))
            if len(ready) == 1:  # the usual wake-up: one of the two
                sock_ready = ready[0][0] == self._sock_fd
                return sock_ready, not sock_ready
            fds = [fd for fd, _ in ready]
        else:  # pragma: no cover - Windows
            assert self._selector is not None
            fds = [key.fd for key, _ in self._selector.select(timeout)]
        sock_ready = self._sock_fd in fds
        return sock_ready, len(fds) > sock_ready

    def close(self) -> None:
        if self._selector is not None:  # pragma: no cover - Windows
            self._selector.close()


class Driver:
    """Runs ``session`` over ``transport`` until the session ends (see the module
    docstring); :meth:`run` returns how it ended.  The caller opens the transport
    (``open_connection``) and closes it afterwards.  ``stop``: the stop signal another
    thread sets to make it leave (None: only the hooks make it leave)."""

    def __init__(
        self,
        transport: SocketTransport,
        session: ClientSession,
        *,
        hooks: DriverHooks | None = None,
        stop: StopSignal | None = None,
        settings: DriverSettings = DriverSettings(),
        redactor: KeyRedactor | None = None,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
    ) -> None:
        self.transport = transport
        self.session = session
        self.hooks = hooks or DriverHooks()
        self.stop = stop
        self.settings = settings
        self.clock = clock
        self.wall = wall
        self.feed = SessionFeed(session, redactor=redactor, traffic=settings.traffic,
                                shard=session.shard)
        self.reader = FrameReader()
        self.read_wall = wall()  # when the latest read happened (epoch seconds)
        self.close_received = False
        self._leave_by: float | None = None
        self.planned_deadline: float | None = None  # of the wait plan() asked for
        self._masks = MaskKeys()
        self._usable = True  # False once a send or read broke the connection
        self._close_code: int | None = None  # a close we must send (1002, 1009)
        self._handed_over = False  # events handed over since the last wait
        self._idle_due = False  # the burst is over: hooks.idle() before the next wait
        # A plain socket is read again at once after a hand-over: a read that finds
        # nothing ends the burst (one system call instead of a poll and a read).  With
        # TLS a read that finds nothing cannot be told from half a record: poll first.
        self._read_at_once = not getattr(transport, "encrypted", True)
        # A session making message runs gets the usual frames of a stream as NDJSON cut
        # straight out of the bytes read (FrameReader.plain_burst: checked on the way, no
        # object per frame); frames holding what may be the key are left to the
        # redactor's path.  Not with traffic: each frame is then an event of its own.
        self._bursts = session.message_runs and not settings.traffic
        # A read that is one lone heartbeat is answered at once (Session.heartbeat), not
        # through the frame and session machinery: an idle connection's every wake-up,
        # each after a long sleep, where every call made costs its way back into the
        # caches.  Not with traffic (each frame is an event then).
        self._heartbeats = not settings.traffic
        self._sent_hook = type(self.hooks).sent is not DriverHooks.sent
        self._marker = None if redactor is None else redactor.marker
        with _NEWEST_LOCK:
            previous = _NEWEST.get(session.shard)
            before = None if previous is None else _later(
                previous[1], previous[0].session.last_heartbeat)
            _NEWEST[session.shard] = (self, before)

    @property
    def leaving(self) -> bool:
        return self._leave_by is not None

    # --- for hooks ----------------------------------------------------------------------

    def leave(self) -> None:
        """Start leaving: unsubscribe everything, wait briefly for the answers, close."""
        if self._leave_by is not None or self.session.ended is not None:
            return
        now = self.clock()
        self.session.close(now=now, wall=self.wall())
        self._leave_by = now + self.settings.leave_wait

    def ping(self, payload: bytes) -> None:
        """Send a ping now."""
        self._send(client_frame(OPCODE_PING, payload, self._masks.next()))

    # --- the loop --------------------------------------------------------------------------

    def run(self) -> ConnectionEnd:
        """The whole session on this thread, waiting on its own socket."""
        session = self.session
        readiness = Readiness(self.transport.fileno(),
                              None if self.stop is None else self.stop.fileno())
        probe = partial(readiness.wait, 0)
        try:
            self._begin()
            while session.ended is None:
                if self._step(readiness, probe):
                    self._flush()
        except _BREAKS as exc:
            self._broke(exc)
        finally:
            readiness.close()
        return self.finish()

    # --- driven by a poller (c2ws/net/poller.py), one turn at a time ---------------------
    # The same steps as run(), cut at the wait: begin(), then plan() and turn() until the
    # session has ended, then finish().  A failure of the connection ends the session
    # inside each (as in run()); anything else is a bug and propagates.

    def begin(self) -> None:
        """The frames that came with the 101, and the first sends (the subscribes)."""
        try:
            self._begin()
        except _BREAKS as exc:
            self._broke(exc)

    def plan(self, probe: Callable[[], tuple[bool, bool]]) -> tuple[bool, bool] | None:
        """Before a wait: (socket readable, stop signal woken) to take a turn with at
        once, or None to wait until :attr:`planned_deadline` (None: no deadline) for the
        socket or the stop signal.  ``probe``: a zero-timeout wait on both (TLS only)."""
        try:
            while self.session.ended is None:
                acted, deadline = self._before_wait()
                if not acted:
                    self.planned_deadline = deadline
                    return self._ready_without_waiting(probe)
                self._flush()
        except _BREAKS as exc:
            self._broke(exc)
        return None

    def turn(self, readable: bool, woken: bool) -> None:
        """What came of the wait :meth:`plan` asked for (or of none, when it gave the
        readiness itself): read, hand over, send; the deadline if it has passed."""
        try:
            if self._after_wait(self.planned_deadline, readable, woken):
                self._flush()
        except _BREAKS as exc:
            self._broke(exc)

    def finish(self) -> ConnectionEnd:
        """Once the session has ended: the close handshake (bounded in time, blocking:
        on the caller's thread) and the last events handed over; how it ended."""
        if self._idle_due:
            self._idle_due = False
            self.hooks.idle()
        end = self.session.ended
        assert end is not None
        if self._usable and not self.close_received:
            if self._close_code is None and end.reason in _POLITE_CLOSE:
                self._close_code = spec.CLOSE_NORMAL
            if self._close_code is not None:
                self._close(self._close_code)
        self._hand_over(self.feed.take_events())
        return end

    # --- the steps -------------------------------------------------------------------------

    def _begin(self) -> None:
        if self.transport.received:  # frames that came with the 101
            self.reader.feed(self.transport.received, self.clock())
            self._parse(self.clock())
        self._flush()

    def _broke(self, exc: Exception) -> None:
        """The session's end for a failure of the connection (one of _BREAKS)."""
        session = self.session
        if isinstance(exc, FrameError):
            # A violation of the framing, or past our bounds: say why in our close frame.
            self._close_code = exc.close_code
            session.fail(EndReason.PROTOCOL_ERROR,
                         f"c2ws closed the connection ({exc.close_code}): {exc}"[:300],
                         exc.close_code)
            return
        self._usable = False
        if isinstance(exc, SendBlocked):
            session.fail(EndReason.SEND_BLOCKED, str(exc))
        elif isinstance(exc, SendStopped):
            session.fail(EndReason.STOPPED, _STOPPED_DETAIL)
        else:
            session.fail(EndReason.LOST, f"connection lost: {exc}")

    def _step(self, readiness: Readiness, probe: Callable[[], tuple[bool, bool]]) -> bool:
        """One wait and what came of it; False when nothing can be left to send or hand
        over (a heartbeat answered at once: see _read)."""
        acted, deadline = self._before_wait()
        if acted:
            return True
        readable, woken = self._wait(readiness, probe, deadline)
        return self._after_wait(deadline, readable, woken)

    def _before_wait(self) -> tuple[bool, float | None]:
        """(True, None) when the stop or the leave deadline was acted on (flush, then
        step again), else (False, the deadline of the wait: None for none)."""
        session, now = self.session, self.clock()
        if self._leave_by is None and self.stop is not None and self.stop.requested:
            self.leave()
            return True, None
        if self._leave_by is not None and (
            session.awaiting_unsubscribe == 0 or now >= self._leave_by
        ):
            session.fail(EndReason.STOPPED, _STOPPED_DETAIL, spec.CLOSE_NORMAL)
            return True, None
        deadline = session.next_deadline()
        since = self.reader.incomplete_since
        for other in (self._leave_by, self.hooks.deadline(),
                      None if since is None else since + self.settings.io_timeout):
            if other is not None and (deadline is None or other < deadline):
                deadline = other
        return False, deadline

    def _after_wait(self, deadline: float | None, readable: bool, woken: bool) -> bool:
        """Read what came, and the deadline if it has passed; False when nothing can be
        left to send or hand over."""
        if woken and self.stop is not None:
            self.stop.clear_wakeups()  # the stop itself is seen at the next step
        flush = True
        if readable:
            flush = self._read()
        if self.session.ended is None and deadline is not None and self.clock() >= deadline:
            self._deadline_passed()
            return True
        return flush

    def _wait(self, readiness: Readiness, probe: Callable[[], tuple[bool, bool]],
              deadline: float | None) -> tuple[bool, bool]:
        """Until the socket can be read, the stop signal is set or ``deadline`` passes;
        never a busy loop."""
        ready = self._ready_without_waiting(probe)
        if ready is not None:
            return ready
        timeout = None if deadline is None else max(0.0, deadline - self.clock())
        return readiness.wait(timeout)

    def _ready_without_waiting(
        self, probe: Callable[[], tuple[bool, bool]]
    ) -> tuple[bool, bool] | None:
        """What to go on with without a wait, if anything; else (the burst is over)
        hooks.idle() when due, right before the wait."""
        # (Only TLS holds bytes read and decrypted, which no poll sees.)
        if not self._read_at_once and self.transport.pending():
            return True, False
        if self._handed_over:
            # Events were handed over: if more data is already waiting, read it first;
            # the hooks hear that the burst is over (idle) only when nothing is left.
            if self._read_at_once:
                return True, False  # _read finds out
            readable, woken = probe()
            if readable or woken:
                return readable, woken
            self._handed_over = False
            self._idle_due = True
        if self._idle_due:
            # Right before the wait: the thread woken then finds the GIL free at once,
            # instead of waking to wait for it while this one gets ready to wait.
            self._idle_due = False
            self.hooks.idle()
        return None

    def _read(self) -> bool:
        """Read and parse what came; False when it was a heartbeat, answered at once
        (nothing else to send or hand over)."""
        # A frame begun in the previous read: only its rest, then the next frames from
        # their first byte (FrameReader.wanted).
        reader = self.reader
        wanted = reader.wanted()
        data = self.transport.read(wanted if 0 < wanted < READ_CHUNK else READ_CHUNK)
        now = self.clock()
        if data is None and self._read_at_once:
            if self._handed_over:  # nothing was waiting: the burst is over (see _wait)
                self._handed_over = False
                self._idle_due = True
            return True
        if data is None:  # half a TLS record: a frame has begun
            reader.note_bytes_under_way(now)
            return True
        self.read_wall = wall = self.wall()  # once per read
        RECEIVED_BYTES.add(len(data))
        if self._heartbeats:
            payload = reader.lone_text(data)
            # (A frame that may hold the key goes to the redactor, on the general path.)
            if payload is not None and (self._marker is None or self._marker not in payload):
                ack = self.session.heartbeat(payload, now=now, wall=wall)
                if ack is not None:
                    self._send(client_text_frame(ack, self._masks.next()))
                    if self._sent_hook:
                        self.hooks.sent(ack, wall)
                    return False
        reader.feed(data, now)
        self._parse(now)
        return True

    def _parse(self, now: float) -> None:
        """Every frame whole in the buffer, into the session, in order."""
        reader, feed, session, wall = self.reader, self.feed, self.session, self.read_wall
        while session.ended is None:
            if self._bursts:
                lines, count = reader.plain_burst(self._marker)
                if count:
                    feed.burst(lines, count, now, wall)
                    continue
            frames = reader.text_burst()
            if frames:
                feed.texts(frames, now, wall)
                if session.ended is not None:
                    return
            message = reader.next_frame()
            if message is None:
                return
            opcode, data = message
            if opcode in (OPCODE_TEXT, OPCODE_BINARY):
                feed.message(data, now, wall)
            elif opcode == OPCODE_PING:
                self._send(client_frame(OPCODE_PONG, data, self._masks.next()))
            elif opcode == OPCODE_PONG:
                self.hooks.pong(data, now)
            elif opcode == OPCODE_CLOSE:
                self._close_received_(data)

    def _close_received_(self, payload: bytes) -> None:
        """The server's close frame: answer it (RFC 6455 5.5.1), then end the session."""
        self.close_received = True
        with contextlib.suppress(SendBlocked, SendStopped, ConnectionLost):
            self.transport.send(
                client_frame(OPCODE_CLOSE, close_payload(spec.CLOSE_NORMAL), self._masks.next()),
                self.settings.close_wait,
            )
        code, reason = parse_close(payload)
        self.session.close_received(code, reason)

    def _deadline_passed(self) -> None:
        now = self.clock()
        since = self.reader.incomplete_since
        if since is not None and now >= since + self.settings.io_timeout:
            self.session.fail(
                EndReason.FRAME_STALLED,
                "the server sent part of a frame but not the rest within "
                f"{self.settings.io_timeout:g} s",
            )
            return
        self.session.handle_timeout(now=now, wall=self.wall())
        if self.session.ended is None:
            self.hooks.tick(now)

    def _flush(self) -> None:
        """Send what the session queued, then hand its events over.  After the server's
        close frame (answered at once) nothing more may be sent."""
        wall = self.wall()
        outgoing = self.feed.outgoing(wall)
        if not self.close_received:
            for data in outgoing:
                self._send(client_text_frame(data, self._masks.next()))
                self.hooks.sent(data, wall)
        self._hand_over(self.feed.take_events())

    def _hand_over(self, events: list[ev.Event]) -> None:
        if events:
            self._handed_over = True
            self.hooks.hand_over(events)

    def _send(self, frame: bytes) -> None:
        # Leaving, the frames are our goodbye (unsubscribes, the close): the stop that
        # started it must not cut them off; the leave deadline bounds them instead.
        leaving = self._leave_by is not None
        timeout = self.settings.io_timeout
        if leaving:
            timeout = min(timeout, max(self.settings.close_wait, 0.001))
        self.transport.send(frame, timeout, None if leaving else self.stop)

    def _close(self, code: int) -> None:
        """Send our close frame, then wait (briefly) for the server's."""
        try:
            self.transport.send(client_frame(OPCODE_CLOSE, close_payload(code), self._masks.next()),
                                self.settings.close_wait)
        except (SendBlocked, SendStopped, ConnectionLost):
            return
        close_by = self.clock() + self.settings.close_wait
        readiness = Readiness(self.transport.fileno(), None)
        reader = self.reader
        try:
            while True:
                left = close_by - self.clock()
                if left <= 0:
                    return
                if not self.transport.pending() and not readiness.wait(left)[0]:
                    return
                data = self.transport.read()
                if data is None:
                    continue
                reader.feed(data, self.clock())
                message = reader.next_frame()
                while message is not None:
                    if message[0] == OPCODE_CLOSE:
                        return
                    message = reader.next_frame()
        except (FrameError, ConnectionLost):
            return
        finally:
            readiness.close()
