"""The socket shell: one websocket-client connection pumped by one thread.

Everything protocol-related is decided by :class:`c2ws.session.ClientSession`;
this module only moves bytes between it and the socket, and hands events to a
consumer.  The thread blocks in ``select`` until a frame arrives, the session's
deadline passes or another thread wakes it: an idle subscription costs no CPU.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import websocket
from websocket import ABNF

from c2ws import events as ev
from c2ws import spec
from c2ws.net.connection import BufferedWebSocket, FrameTooLarge
from c2ws.session import ClientSession

log = logging.getLogger("c2ws.transport")

CLOSE_PROTOCOL_ERROR = 1002
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_HANDSHAKE_TIMEOUT = 2.0
UNSUBSCRIBE_WAIT = 1.0


# --- the socket thread --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectionEnded:
    """The last item the worker hands over: why the connection is gone."""

    # "closed-by-us", "closed-by-server", "lost", "stale", "overflow", "protocol-error"
    reason: str
    close_code: int | None = None
    close_reason: str = ""


WorkerItem = list[ev.Event] | ConnectionEnded
# Hands items to the consumer; returns False when it can take no more (overflow).
Deliver = Callable[[WorkerItem], bool]


@dataclass
class TrafficLog:
    """``-v``: frames in and out on stderr, with the API key redacted wherever it shows."""

    secret: str
    sink: Callable[[str], None]
    enabled: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def frame(self, direction: str, data: bytes | str) -> None:
        if not self.enabled:
            return
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        if self.secret:
            text = text.replace(self.secret, "****")
        with self._lock:
            self.sink(f"{direction} {text}")


class SocketWorker(threading.Thread):
    """Pumps one connection: frames -> session -> (frames to send, events to deliver)."""

    def __init__(
        self,
        ws: BufferedWebSocket,
        session: ClientSession,
        deliver: Deliver,
        *,
        traffic: TrafficLog | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name="c2ws-socket", daemon=True)
        self._ws = ws
        self._session = session
        self._deliver = deliver
        self._traffic = traffic
        self._clock = clock
        self._stop_requested = threading.Event()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self.ended: ConnectionEnded | None = None

    # Called from other threads.
    def request_stop(self) -> None:
        """Unsubscribe, close with 1000 and end; safe to call more than once."""
        self._stop_requested.set()
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"\0")

    def run(self) -> None:
        ended = ConnectionEnded("lost")
        try:
            ended = self._pump()
        except websocket.WebSocketTimeoutException:
            ended = ConnectionEnded("stale")
        except (websocket.WebSocketConnectionClosedException, OSError) as exc:
            log.debug("connection lost: %s", exc)
            ended = ConnectionEnded("lost")
        except websocket.WebSocketException as exc:
            # A violation at the framing level (bad opcode, oversized frame...): say why
            # in our close frame, as RFC 6455 asks, then give up on the connection.
            code = CLOSE_MESSAGE_TOO_BIG if isinstance(exc, FrameTooLarge) else CLOSE_PROTOCOL_ERROR
            with contextlib.suppress(Exception):
                self._ws.close(status=code, timeout=CLOSE_HANDSHAKE_TIMEOUT)
            ended = ConnectionEnded("protocol-error", code, str(exc)[:200])
        finally:
            self.ended = ended
            self._shutdown_socket()
            self._deliver(ended)

    # --- internals ---------------------------------------------------------------------

    def _pump(self) -> ConnectionEnded:
        ws, session = self._ws, self._session
        session.connection_opened(self._clock())
        ws.settimeout(session.stale_after)  # bounds a read stuck in the middle of a frame
        selector = selectors.DefaultSelector()
        selector.register(ws.sock, selectors.EVENT_READ, "socket")  # type: ignore[arg-type]
        selector.register(self._wake_reader, selectors.EVENT_READ, "wake")
        try:
            while True:
                if self._stop_requested.is_set():
                    return self._close_gracefully(selector)
                readiness = self._wait(selector, session.next_deadline())
                if readiness == "woken":
                    continue
                if readiness == "timeout":
                    session.handle_timeout(self._clock())
                else:
                    ended = self._read_one_frame()
                    if ended is not None:
                        return ended
                if not self._hand_over():
                    return self._refused(selector)
                if session.stale:
                    return ConnectionEnded("stale")
        finally:
            selector.close()

    def _wait(self, selector: selectors.BaseSelector, deadline: float | None) -> str:
        """Block until a frame can be read ("frame"), another thread wakes us ("woken")
        or ``deadline`` passes ("timeout"); never a busy loop."""
        if self._ws.has_buffered_data():
            return "frame"
        ready = {key.data for key, _ in selector.select(self._time_left(deadline))}
        if "wake" in ready:
            self._drain_wake()
        if "socket" in ready:
            return "frame"
        return "woken" if ready else "timeout"

    def _read_one_frame(self) -> ConnectionEnded | None:
        opcode, frame = self._ws.recv_data_frame(control_frame=True)
        if opcode in (ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY):
            if self._traffic is not None:
                self._traffic.frame("<", frame.data)
            self._session.receive(frame.data, self._clock())
            return None
        if opcode == ABNF.OPCODE_CLOSE:
            code, reason = _parse_close(frame.data)
            return ConnectionEnded("closed-by-server", code, reason)
        return None  # ping/pong: websocket-client already answered

    def _hand_over(self) -> bool:
        """Send what the session queued, then pass its events on.  False on overflow."""
        for data in self._session.data_to_send():
            if self._traffic is not None:
                self._traffic.frame(">", data)
            self._ws.send(data, ABNF.OPCODE_TEXT)
        batch = self._session.events_received()
        return not batch or self._deliver(batch)

    def _refused(self, selector: selectors.BaseSelector) -> ConnectionEnded:
        """The consumer took no more: it is stopping us, or it fell too far behind."""
        if self._stop_requested.is_set():
            return self._close_gracefully(selector)
        return self._overflowed()

    def _overflowed(self) -> ConnectionEnded:
        with contextlib.suppress(Exception):
            self._ws.close(status=spec.CLOSE_NORMAL, timeout=CLOSE_HANDSHAKE_TIMEOUT)
        return ConnectionEnded("overflow")

    def _close_gracefully(self, selector: selectors.BaseSelector) -> ConnectionEnded:
        """Unsubscribe (briefly waiting for acks), then the closing handshake with 1000."""
        session = self._session
        if session.unsubscribe_all():
            self._hand_over()
            give_up = self._clock() + UNSUBSCRIBE_WAIT
            while session.awaiting_unsubscribe and self._clock() < give_up:
                readiness = self._wait(selector, give_up)
                if readiness == "timeout":
                    break
                if readiness == "frame":
                    ended = self._read_one_frame()
                    self._hand_over()  # the consumer has stopped taking: acks only matter here
                    if ended is not None:
                        return ended
        self._ws.close(status=spec.CLOSE_NORMAL, timeout=CLOSE_HANDSHAKE_TIMEOUT)
        return ConnectionEnded("closed-by-us", spec.CLOSE_NORMAL)

    def _time_left(self, deadline: float | None) -> float | None:
        if deadline is None:
            return None
        return max(0.0, deadline - self._clock())

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while self._wake_reader.recv(256):
                pass

    def _shutdown_socket(self) -> None:
        with contextlib.suppress(Exception):
            self._ws.shutdown()  # type: ignore[no-untyped-call]
        for sock in (self._wake_reader, self._wake_writer):
            with contextlib.suppress(OSError):
                sock.close()


def _parse_close(data: bytes) -> tuple[int | None, str]:
    if len(data) < 2:
        return None, ""
    code = int.from_bytes(data[:2], "big")
    return code, data[2:].decode("utf-8", "replace")
