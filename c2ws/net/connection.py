"""Opening one WebSocket connection on websocket-client, and reading it smartly.

``open_connection`` connects and upgrades with the Bearer key and maps every failure
to a one-line, key-free :class:`ConnectFailed`.  :class:`BufferedWebSocket` serves
websocket-client's small frame reads from one large ``recv`` and bounds frame sizes.
"""

from __future__ import annotations

import ssl
from typing import Any

import websocket
from websocket import ABNF
from websocket._abnf import frame_buffer

from c2ws import spec

READ_CHUNK = 65536


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
