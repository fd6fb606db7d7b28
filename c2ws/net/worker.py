"""One socket thread per connection slot: connect, pump, reconnect.

A :class:`ShardWorker` owns one slot of the connection pool for the whole run.  It opens
a connection, pumps frames between the socket and a fresh
:class:`~c2ws.session.ClientSession`, hands the session's events over, and when the
connection ends asks :mod:`c2ws.delivery.backoff` whether and when to try again.  It
never waits for the output side: the hand-off never blocks, and a backlog past its
limit closes the connection (to be resumed once the reader has caught up) instead.
The thread blocks in ``poll`` on the socket, a wake-up socket and the session's next
deadline: an idle subscription costs no CPU.
"""

from __future__ import annotations

import contextlib
import math
import secrets
import select
import selectors
import socket
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Final
from urllib.parse import urlsplit

import websocket
from websocket import ABNF

from c2ws import events as ev
from c2ws import spec
from c2ws.delivery.backoff import Backoff, Retry, RetryBudget
from c2ws.delivery.dedupe import StreamFilter
from c2ws.events import ConnectionEnd, EndReason, SubscriptionKey
from c2ws.net.connection import (
    BufferedWebSocket,
    ConnectFailed,
    ConnectFailure,
    FrameTimeout,
    FrameTooLarge,
    HandshakeRejected,
    SendBlocked,
    open_connection,
    redact_key,
)
from c2ws.net.handoff import Handoff
from c2ws.redaction import KeyRedactor
from c2ws.session import ClientSession, SessionTimeouts, SubscriptionState

# How long a stopping connection waits for its unsubscribe acks, and for the close reply.
UNSUBSCRIBE_WAIT: Final = 1.0
CLOSE_HANDSHAKE_TIMEOUT: Final = 2.0
CLOSE_PROTOCOL_ERROR: Final = 1002
CLOSE_MESSAGE_TOO_BIG: Final = 1009
HTTP_NOT_FOUND: Final = 404
# A backlog past half of --max-buffer while the output thread is making progress (it
# finished something within PROGRESS_WINDOW): wait up to FAIRNESS_WAIT for it to fall
# back to half before reading on.
FAIRNESS_WAIT: Final = 0.1
PROGRESS_WINDOW: Final = 0.5
# During a long burst, the output thread is woken at least every this many events.
WAKE_EVERY: Final = 2000
# Endings after which the peer may still answer a close frame.
_POLITE_CLOSE: Final = frozenset({
    EndReason.STOPPED, EndReason.OVERFLOW, EndReason.NO_CONNECTED, EndReason.NO_ACK,
    EndReason.AUTH_FAILED,
})


@dataclass(frozen=True)
class ConnectionSettings:
    """What every connection of a run shares."""

    url: str
    api_key: str
    connect_timeout: float = 10.0
    timeouts: SessionTimeouts = field(default_factory=SessionTimeouts)
    # A frame whose bytes stop arriving, or a send the server does not take, for this long.
    io_timeout: float = spec.FRAME_COMPLETION_TIMEOUT_SECONDS
    traffic: bool = False
    reconnect: bool = True
    max_retries: int | None = None
    per_connection: int = spec.MAX_SUBSCRIPTIONS_PER_CONNECTION
    report_heartbeats: bool = True
    decoded_payloads: bool = True


# Connect failures retrying cannot fix: the URL, the redirect or the certificate must
# change first.  Everything else at the network level may be transient.
_FATAL_CONNECT_FAILURES: Final = frozenset({
    ConnectFailure.BAD_URL, ConnectFailure.REDIRECT, ConnectFailure.TLS_CERTIFICATE,
})


def end_for_connect_failure(exc: ConnectFailed, url: str) -> ConnectionEnd:
    """What a failed connect + upgrade means for retrying."""
    if isinstance(exc, HandshakeRejected):
        reason = exc.reason or "no reason given"
        if exc.status == spec.HTTP_UNAUTHORIZED:
            return ConnectionEnd(EndReason.AUTH_FAILED, f"authentication failed: {reason}")
        if exc.status in (spec.HTTP_TOO_MANY_REQUESTS, spec.HTTP_SERVICE_UNAVAILABLE):
            return ConnectionEnd(
                EndReason.BUSY, f"the server refused the connection (HTTP {exc.status}): {reason}",
                retry_after=exc.retry_after,
            )
        hint = ""
        if exc.status == HTTP_NOT_FOUND and not urlsplit(url).path.rstrip("/").endswith("/ws"):
            hint = " (the C2 endpoint's path is /ws)"
        return ConnectionEnd(
            EndReason.UNREACHABLE if exc.status >= 500 else EndReason.REFUSED,
            f"the server refused the upgrade (HTTP {exc.status}): {reason}{hint}",
        )
    fatal = exc.kind in _FATAL_CONNECT_FAILURES
    return ConnectionEnd(
        EndReason.REFUSED if fatal else EndReason.UNREACHABLE, f"cannot connect to {url}: {exc}"
    )


class Readiness:
    """Whether the connection's socket and the wake-up socket can be read.  One poll(2)
    per wait where the OS has it: a selector's key objects, sets and lookups were a few
    microseconds of every idle heartbeat.  A selector elsewhere."""

    def __init__(self, sock: socket.socket, wake: socket.socket) -> None:
        self._sock_fd = sock.fileno()
        self._poll: select.poll | None = None
        self._selector: selectors.BaseSelector | None = None
        if hasattr(select, "poll"):
            self._poll = select.poll()
            self._poll.register(self._sock_fd, select.POLLIN)
            self._poll.register(wake.fileno(), select.POLLIN)
        else:  # pragma: no cover - Windows
            self._selector = selectors.DefaultSelector()
            self._selector.register(self._sock_fd, selectors.EVENT_READ)
            self._selector.register(wake, selectors.EVENT_READ)

    def wait(self, timeout: float | None) -> tuple[bool, bool]:
        """(the socket, the wake-up socket) readable, waiting up to ``timeout`` seconds
        (None: until one is).  A hang-up or error counts as readable: the read says what
        it is."""
        if self._poll is not None:
            # Rounded up to whole milliseconds, as selectors do: never wake just before.
            ready = self._poll.poll(None if timeout is None else math.ceil(timeout * 1e3))
            fds = [fd for fd, _ in ready]
        else:  # pragma: no cover - Windows
            assert self._selector is not None
            fds = [key.fd for key, _ in self._selector.select(timeout)]
        sock_ready = self._sock_fd in fds
        return sock_ready, len(fds) > sock_ready

    def close(self) -> None:
        if self._selector is not None:  # pragma: no cover - Windows
            self._selector.close()


class ShardWorker(threading.Thread):
    """Keeps one connection slot subscribed to ``keys`` until stopped or failed for good."""

    def __init__(
        self,
        shard: int,
        keys: Sequence[SubscriptionKey],
        *,
        settings: ConnectionSettings,
        stream_filter: StreamFilter,
        handoff: Handoff[ev.Event],
        backoff: Backoff,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        connect: Callable[..., BufferedWebSocket] = open_connection,
    ) -> None:
        super().__init__(name=f"c2ws-socket-{shard}", daemon=True)
        self.shard = shard
        self.keys = tuple(keys)
        self.settings = settings
        self._filter = stream_filter
        self._handoff = handoff
        self._backoff = backoff
        self._clock = clock
        self._wall = wall_clock
        self._connect = connect
        # A server may echo the key: every frame is redacted before anything sees it.
        self.redactor = KeyRedactor(settings.api_key)
        self._rejected: set[SubscriptionKey] = set()
        self._stop_requested = threading.Event()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)

    # --- called from other threads -----------------------------------------------------

    def request_stop(self) -> None:
        """Unsubscribe, close with 1000 and end; safe to call more than once."""
        self._stop_requested.set()
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"\0")
        self._handoff.wake()

    # --- the thread ----------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # a bug: say so once, never retry it
            summary = f"{type(exc).__name__}: {exc}"
            self._handoff.put([ev.WorkerCrashed(self.shard, summary[:500], traceback.format_exc())])
        finally:
            for sock in (self._wake_reader, self._wake_writer):
                with contextlib.suppress(OSError):
                    sock.close()

    def _run(self) -> None:
        budget = RetryBudget(
            max_retries=self.settings.max_retries, reconnect=self.settings.reconnect
        )
        while not self._stop_requested.is_set():
            end, was_connected, served_since = self._attempt()
            served_for = None if served_since is None else self._clock() - served_since
            # A server may echo the key (in a close reason, an error...).
            end = replace(end, detail=redact_key(end.detail, self.settings.api_key))
            self._handoff.put([ev.ConnectionEnded(self.shard, end, was_connected)])
            if self._stop_requested.is_set() or end.reason is EndReason.STOPPED:
                return
            decision = budget.after(end, served_for)
            failures = decision.failures
            if decision.give_up:
                self._handoff.put([ev.ShardFailed(self.shard, end, failures)])
                return
            if decision.retry is Retry.WHEN_DRAINED:
                self._handoff.put([ev.Reconnecting(self.shard, failures, None, end)])
                stopping = self._stop_requested.is_set
                if not self._handoff.wait_for_room(self._handoff.limit // 2, stopping):
                    return
            else:
                delay = self._backoff.delay(end.reason, failures, end.retry_after)
                self._handoff.put([
                    ev.Reconnecting(self.shard, failures, delay, end, end.retry_after)
                ])
                if self._stop_requested.wait(delay):
                    return

    def _wanted(self) -> list[SubscriptionKey]:
        return [key for key in self.keys if key not in self._rejected]

    def _attempt(self) -> tuple[ConnectionEnd, bool, float | None]:
        """One connection from connect to close: (how it ended, reached
        connection.connected, when every subscription had been answered: None if never)."""
        try:
            ws = self._connect(
                self.settings.url, self.settings.api_key, timeout=self.settings.connect_timeout
            )
        except ConnectFailed as exc:
            return end_for_connect_failure(exc, self.settings.url), False, None
        try:
            return _Pump(self, ws).run()
        finally:
            with contextlib.suppress(Exception):
                ws.shutdown()  # type: ignore[no-untyped-call]

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while self._wake_reader.recv(256):
                pass


class _Pump:
    """One connection's loop: socket <-> session, events -> hand-off."""

    def __init__(self, worker: ShardWorker, ws: BufferedWebSocket) -> None:
        self.worker = worker
        self.ws = ws
        self.clock = worker._clock
        self.wall = worker._wall
        now = self.clock()
        self.session = ClientSession(
            request_id_prefix=f"c2ws-{secrets.token_hex(4)}",
            stream_filter=worker._filter,
            now=now,
            timeouts=worker.settings.timeouts,
            shard=worker.shard,
            max_subscriptions=worker.settings.per_connection,
            report_heartbeats=worker.settings.report_heartbeats,
            decoded_payloads=worker.settings.decoded_payloads,
        )
        for key in worker._wanted():
            self.session.subscribe(key, now=now, wall=self.wall())
        self.traffic = worker.settings.traffic
        self.redactor = worker.redactor
        self.batch: list[ev.Event] = []
        self.served_since: float | None = None  # when every subscription was answered
        self.close_frame_received = False
        self.unannounced = 0  # events handed over without waking the output thread
        self.leave_by: float | None = None

    def run(self) -> tuple[ConnectionEnd, bool, float | None]:
        session = self.session
        self.ws.frame_timeout = self.ws.send_timeout = self.worker.settings.io_timeout
        # open_connection hands over a connected socket.
        readiness = Readiness(self.ws.sock, self.worker._wake_reader)  # type: ignore[arg-type]
        try:
            while session.ended is None:
                self._step(readiness)
                self._hand_over()
        except FrameTooLarge as exc:
            self._close_with(CLOSE_MESSAGE_TOO_BIG, f"c2ws closed the connection (1009): {exc}")
        except FrameTimeout as exc:
            session.fail(EndReason.FRAME_STALLED, str(exc))
        except SendBlocked as exc:
            session.fail(EndReason.SEND_BLOCKED, str(exc))
        except (websocket.WebSocketConnectionClosedException, OSError) as exc:
            session.fail(EndReason.LOST, f"connection lost: {_reason(exc)}")
        except websocket.WebSocketException as exc:
            # A violation at the framing level: say why in our close frame (RFC 6455).
            self._close_with(CLOSE_PROTOCOL_ERROR, f"c2ws closed the connection (1002): {exc}")
        finally:
            readiness.close()
        end = session.ended
        assert end is not None
        if end.reason in _POLITE_CLOSE and not self.close_frame_received:
            with contextlib.suppress(Exception):
                self.ws.close(status=spec.CLOSE_NORMAL, timeout=CLOSE_HANDSHAKE_TIMEOUT)
        self._hand_over()
        return end, session.connected_at is not None, self.served_since

    def _step(self, readiness: Readiness) -> None:
        session, now = self.session, self.clock()
        if self.worker._stop_requested.is_set() and self.leave_by is None:
            session.close(now=now, wall=self.wall())
            self.leave_by = now + UNSUBSCRIBE_WAIT
            return
        if self.leave_by is not None and (
            session.awaiting_unsubscribe == 0 or now >= self.leave_by
        ):
            session.fail(EndReason.STOPPED, "closed by c2ws", spec.CLOSE_NORMAL)
            return
        deadline = session.next_deadline()
        if self.leave_by is not None:
            deadline = self.leave_by if deadline is None else min(deadline, self.leave_by)
        woke_for = self._wait(readiness, deadline)
        if woke_for == "frame":
            self._read_frames()
        elif woke_for == "timeout":
            session.handle_timeout(now=self.clock(), wall=self.wall())

    def _wait(self, readiness: Readiness, deadline: float | None) -> str:
        """Block until a frame can be read ("frame"), another thread wakes us ("woken")
        or ``deadline`` passes ("timeout"); never a busy loop."""
        if self.ws.has_buffered_data():
            return "frame"
        timeout = None if deadline is None else max(0.0, deadline - self.clock())
        frame = woken = False
        if self.unannounced:
            # Events not yet announced: if more data is already waiting, read it first;
            # the output thread is woken when the burst is over.
            frame, woken = readiness.wait(0)
            if not (frame or woken):
                self.unannounced = 0
                self.worker._handoff.wake_consumer()
        if not (frame or woken):
            frame, woken = readiness.wait(timeout)
        if woken:
            self.worker._drain_wake()
        if frame:
            return "frame"
        return "woken" if woken else "timeout"

    def _read_frames(self) -> None:
        """The frames of one socket read: one hand-over.  Plain text frames take the
        buffered fast path; the first other frame (a control frame, a fragment, a long
        or incomplete frame) is read by websocket-client, and ends the batch."""
        ws, session, batch = self.ws, self.session, self.batch
        receive = session.receive
        ws.fill()
        frames = ws.read_buffered_text()
        if frames:
            self.redactor.redact_frames(frames)
            now, wall = self.clock(), self.wall()  # once per burst
            if self.traffic:  # each frame next to what it caused
                for data in frames:
                    batch.append(ev.Traffic("<", data, self.worker.shard, wall))
                    receive(data, now=now, wall=wall)
                    batch.extend(session.events_received())
            else:
                session.receive_frames(frames, now=now, wall=wall)
                batch.extend(session.events_received())
        if session.ended is not None or not ws.has_buffered_data():
            return
        opcode, frame = ws.recv_data_frame(control_frame=True)
        if opcode in (ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY):
            data = self.redactor.redact_frame(frame.data)
            if self.traffic:
                batch.append(ev.Traffic("<", data, self.worker.shard, self.wall()))
            receive(data, now=self.clock(), wall=self.wall())
            batch.extend(session.events_received())
        elif opcode == ABNF.OPCODE_CLOSE:
            self.close_frame_received = True  # websocket-client has already replied
            code, reason = _parse_close(frame.data)
            session.close_received(code, reason)

    def _hand_over(self) -> None:
        """Send what the session queued, then pass its events on."""
        session = self.session
        for data in session.data_to_send():
            if self.traffic:
                self.batch.append(ev.Traffic(">", data, self.worker.shard, self.wall()))
            try:
                self.ws.send_text(data)
            except SendBlocked as exc:
                session.fail(EndReason.SEND_BLOCKED, str(exc))
                break
        self.batch.extend(session.events_received())
        if self.served_since is None and session.all_answered:
            self.served_since = self.clock()
            self._note_rejections()
        if not self.batch:
            return
        batch, self.batch = self.batch, []
        handoff = self.worker._handoff
        # The output thread is woken once the burst is over (see _wait), or every
        # WAKE_EVERY events during a long one: not for every socket read.
        self.unannounced += len(batch)
        wake = self.unannounced >= WAKE_EVERY
        if wake:
            self.unannounced = 0
        backlog = handoff.put(batch, wake=wake)
        if handoff.above(handoff.limit) and self.leave_by is None:
            session.fail(EndReason.OVERFLOW, _behind(handoff, backlog))
        elif handoff.above(handoff.limit // 2) and handoff.progressing(PROGRESS_WINDOW):
            # The output thread is writing, only slower than we read: let it catch up a
            # little before reading on, instead of running into the limit (and a close
            # and resume) during a burst.  Bounded, so heartbeats are still answered in
            # time; a reader that has stopped makes no progress and gets no such wait.
            self.unannounced = 0
            handoff.wake_consumer()  # it must be awake to catch up
            handoff.wait_below(handoff.limit // 2, FAIRNESS_WAIT)

    def _note_rejections(self) -> None:
        """Rejected subscriptions are not asked for again on the next connection; a
        connection left with nothing to carry is closed."""
        subs = self.session.subscriptions.values()
        self.worker._rejected.update(
            sub.key for sub in subs if sub.state is SubscriptionState.REJECTED
        )
        if not self.worker._wanted():
            self.worker._stop_requested.set()

    def _close_with(self, code: int, detail: str) -> None:
        with contextlib.suppress(Exception):
            self.ws.close(status=code, timeout=CLOSE_HANDSHAKE_TIMEOUT)
        self.session.fail(EndReason.PROTOCOL_ERROR, detail[:300], code)


def _behind(handoff: Handoff[ev.Event], backlog: int) -> str:
    """Why the output is too far behind: stream messages past --max-buffer, or (a flood
    of control events while stdout is slow) events past their bound."""
    if backlog > handoff.limit:
        return f"stdout is {backlog} messages behind (over --max-buffer {handoff.limit})"
    return (f"the output is {handoff.pending} events behind, {backlog} of them messages "
            f"(over {spec.BACKLOG_EVENTS_PER_MESSAGE} x --max-buffer {handoff.limit})")


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _parse_close(data: bytes) -> tuple[int | None, str]:
    if len(data) < 2:
        return None, ""
    code = int.from_bytes(data[:2], "big")
    return code, data[2:].decode("utf-8", "replace")
