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
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import websocket
from websocket import ABNF
from websocket._abnf import frame_buffer

from c2ws import events as ev
from c2ws import spec
from c2ws.session import ClientSession

log = logging.getLogger("c2ws.transport")

READ_CHUNK = 65536
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_HANDSHAKE_TIMEOUT = 2.0
UNSUBSCRIBE_WAIT = 1.0


# --- connecting ---------------------------------------------------------------------


class ConnectFailed(Exception):
    """The WebSocket could not be opened.  ``str()`` is a one-line, key-free message."""


class HandshakeRejected(ConnectFailed):
    """The server answered the upgrade with an HTTP error (401, 429, 503, ...)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status}: {reason}")
        self.status = status
        self.reason = reason


class FrameTooLarge(websocket.WebSocketPayloadException):
    """A frame or fragmented message over spec.MAX_FRAME_BYTES: refused before it is read."""


class _BoundedFrameBuffer(frame_buffer):
    """websocket-client's frame reader, refusing a frame whose header announces more
    than we accept, instead of reading (and holding) whatever length a server claims."""

    def recv_length(self) -> None:
        super().recv_length()
        if self.length is not None and self.length > spec.MAX_FRAME_BYTES:
            raise FrameTooLarge(
                f"frame of {self.length} bytes exceeds the limit of {spec.MAX_FRAME_BYTES}"
            )


class BufferedWebSocket(websocket.WebSocket):
    """websocket-client reads a frame as 2 + 2/8 + n byte reads; this serves them from
    one large ``recv`` instead, so a burst of frames costs one system call, not three
    per frame.  It also bounds frame and message sizes.  Nothing of the library is
    patched: only its documented ``class_`` extension point is used."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._chunk = b""
        self._offset = 0
        self._message_bytes = 0
        self.frame_buffer = _BoundedFrameBuffer(self._recv, self.frame_buffer.skip_utf8_validation)

    def recv_frame(self) -> ABNF:
        frame: ABNF = super().recv_frame()  # type: ignore[no-untyped-call]
        if frame.opcode in (ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY):
            self._message_bytes = len(frame.data)
        elif frame.opcode == ABNF.OPCODE_CONT:
            self._message_bytes += len(frame.data)
        if self._message_bytes > spec.MAX_FRAME_BYTES:
            raise FrameTooLarge(
                f"fragmented message over the limit of {spec.MAX_FRAME_BYTES} bytes"
            )
        return frame

    def _recv(self, bufsize: int) -> bytes:
        if self._offset >= len(self._chunk):
            self._chunk = super()._recv(READ_CHUNK)  # type: ignore[no-untyped-call]
            self._offset = 0
        start = self._offset
        self._offset = min(start + bufsize, len(self._chunk))
        return self._chunk[start : self._offset]

    def has_buffered_data(self) -> bool:
        """Bytes already read from the kernel (by us or by TLS) that select() cannot see."""
        if self._offset < len(self._chunk):
            return True
        return isinstance(self.sock, ssl.SSLSocket) and self.sock.pending() > 0


def _header(headers: dict[str, str] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            return value
    return None


def open_connection(url: str, api_key: str, *, timeout: float) -> BufferedWebSocket:
    """Connect and upgrade with the Bearer key; map every failure to ConnectFailed."""
    try:
        ws = websocket.create_connection(
            url,
            timeout=timeout,
            class_=BufferedWebSocket,
            header=[f"Authorization: Bearer {api_key}"],
            suppress_origin=True,
            enable_multithread=True,
            # orjson checks UTF-8 when it decodes (in C); websocket-client's pure-Python
            # check costs ~200 us per kilobyte and would fail the whole connection.
            skip_utf8_validation=True,
            # A redirect would carry the Bearer key to wherever it points.
            redirect_limit=0,
        )
    except websocket.WebSocketBadStatusException as exc:
        reason = _header(exc.resp_headers, spec.ERROR_HEADER) or exc.status_message or ""
        raise HandshakeRejected(exc.status_code, reason.strip()) from None
    except websocket.WebSocketAddressException as exc:
        raise ConnectFailed(f"cannot resolve host: {_first_arg(exc)}") from None
    except ssl.SSLError as exc:
        raise ConnectFailed(f"TLS handshake failed: {exc.reason or exc}") from None
    except (TimeoutError, websocket.WebSocketTimeoutException):
        raise ConnectFailed(f"timed out after {timeout:g} s") from None
    except ConnectionRefusedError:
        raise ConnectFailed("connection refused") from None
    except OSError as exc:
        raise ConnectFailed(exc.strerror or str(exc)) from None
    except websocket.WebSocketException as exc:
        if "Redirect" in str(exc):
            raise ConnectFailed(
                "the server answered with a redirect, which c2ws does not follow "
                "(it would send the API key along); use the final URL"
            ) from None
        raise ConnectFailed(f"WebSocket handshake failed: {exc}") from None
    except ValueError as exc:  # websocket-client's verdict on a malformed URL
        raise ConnectFailed(f"bad URL: {exc}") from None
    assert isinstance(ws, BufferedWebSocket)
    return ws


def _first_arg(exc: BaseException) -> str:
    inner = exc.args[0] if exc.args else exc
    return str(getattr(inner, "strerror", None) or inner)


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
