"""Opening one WebSocket connection, and the socket under it.

``open_connection`` connects and upgrades with the Bearer key within one deadline and
maps every failure to a classified, one-line, key-free :class:`ConnectFailed`.  Every wait
in it (the name lookup, the TCP connect, the proxy tunnel, the TLS handshake, the
upgrade) polls a :class:`StopSignal` along with its socket: a stop request ends a
connect at once, not at its deadline.  It hands over a :class:`SocketTransport`: the
upgraded socket, non-blocking, read by the connection driver (c2ws/net/driver.py) when
it is readable and written to within a deadline.

websocket-client only checks the upgrade (c2ws/net/wsclient_compat.py); framing is ours
(c2ws/net/frames.py).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import email.utils
import enum
import errno
import functools
import ipaddress
import math
import os
import re
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar
from urllib.parse import unquote, urlsplit

from c2ws import spec
from c2ws.net import wsclient_compat

READ_CHUNK = spec.SOCKET_READ_BYTES
_HEAD_READ_CHUNK = 4096
_REDACTED = "****"
# websocket-client follows these (we never do); any other non-101 status is a rejection.
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_STATUS_LINE = re.compile(r"HTTP/\d(?:\.\d)?\s+(\d{3})(?:\s+(.*))?")

Clock = Callable[[], float]
T = TypeVar("T")
# A non-blocking connect() under way (EWOULDBLOCK: Windows).
_CONNECT_IN_PROGRESS: Final = frozenset({errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN,
                                         errno.EALREADY})


# --- failures ------------------------------------------------------------------------


class ConnectFailure(enum.Enum):
    """Why a connection could not be opened; the caller decides what is worth a retry."""

    TIMEOUT = "timeout"  # connect + TLS + upgrade did not finish within the deadline
    DNS = "dns"  # the host name does not resolve (or the resolver failed)
    REFUSED = "refused"  # nothing listens on that address and port
    NETWORK = "network"  # unreachable, reset, or closed before the upgrade completed
    PROXY = "proxy"  # the HTTP proxy refused or botched the CONNECT tunnel
    TLS = "tls"  # the TLS handshake failed, not because of the certificate
    TLS_CERTIFICATE = "tls-certificate"  # the server's certificate did not verify
    REDIRECT = "redirect"  # a 3xx answer: never followed, it would carry the key
    BAD_URL = "bad-url"  # not a ws:// or wss:// URL with a valid host and port
    BAD_RESPONSE = "bad-response"  # not HTTP, over the header bounds, or a bad upgrade
    REJECTED = "rejected"  # an HTTP error status: see HandshakeRejected
    CANCELLED = "cancelled"  # a stop was requested while connecting


class ConnectFailed(Exception):
    """The WebSocket could not be opened.  ``str()`` is a one-line, key-free message."""

    def __init__(self, kind: ConnectFailure, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class HandshakeRejected(ConnectFailed):
    """The server answered the upgrade with an HTTP status other than 101 or a redirect.

    ``reason`` is the ``X-WS-Error`` header, else the status text: one line, at most
    ``spec.MAX_REJECTION_REASON_CHARS`` characters, the API key redacted.  ``body`` is at
    most ``spec.MAX_REJECTION_BODY_BYTES`` of the announced body (key redacted too).
    ``retry_after``: the seconds its ``Retry-After`` header asks for (see
    :func:`retry_after_seconds`), None when it has none or none that parses."""

    def __init__(
        self, status: int, reason: str, body: bytes = b"", retry_after: float | None = None
    ) -> None:
        message = f"HTTP {status}: {reason}" if reason else f"HTTP {status}"
        super().__init__(ConnectFailure.REJECTED, message)
        self.status = status
        self.reason = reason
        self.body = body
        self.retry_after = retry_after


class SendBlocked(Exception):
    """The socket took no more of a frame for the send timeout: the server stopped
    reading.  Part of the frame may be on the wire, so the connection is unusable."""


class SendStopped(Exception):
    """A stop was requested while a send waited for the socket.  Part of the frame may be
    on the wire, so the connection is unusable."""


class ConnectionLost(Exception):
    """The upgraded connection broke (reset, closed without a close frame...); ``str()``
    says how, in one line."""


# --- stopping a socket thread wherever it waits ------------------------------------------


class StopSignal:
    """A request to stop, made from any thread, that wakes the thread it is meant for
    wherever that thread waits: every wait of a connect, of the driver and of a blocked
    send polls :meth:`fileno` along with its socket (the name lookup included, which runs
    in a thread of its own).  :meth:`wait` serves the sleeps between connections."""

    def __init__(self) -> None:
        self._event = threading.Event()
        # True once the stop is requested: what is_set() says, read as an attribute by
        # the driver at every turn (no call).
        self.requested = False
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)

    def set(self) -> None:
        """Request the stop (safe to call more than once, from any thread)."""
        self.requested = True
        self._event.set()
        with contextlib.suppress(OSError):  # already woken (its buffer is full) or closed
            self._writer.send(b"\0")

    def nudge(self) -> None:
        """Wake the thread without asking it to stop (it has new work: see
        ``ShardWorker.set_keys``); a wait that is not the driver's drains it and waits on."""
        with contextlib.suppress(OSError):  # already woken (its buffer is full) or closed
            self._writer.send(b"\0")

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None) -> bool:
        """Sleep up to ``timeout`` seconds, or until the stop is requested (True)."""
        return self._event.wait(timeout)

    def fileno(self) -> int:
        """Readable once the stop is requested (until :meth:`clear_wakeups`)."""
        return self._reader.fileno()

    def clear_wakeups(self) -> None:
        """Drain the wake-up bytes (the stop stays requested: see :meth:`is_set`)."""
        with contextlib.suppress(OSError):
            while self._reader.recv(256):
                pass

    def close(self) -> None:
        for sock in (self._reader, self._writer):
            with contextlib.suppress(OSError):
                sock.close()


# --- the deadline --------------------------------------------------------------------


class _Deadline:
    def __init__(self, seconds: float, clock: Clock) -> None:
        self.seconds = seconds
        self._clock = clock
        self._at = clock() + seconds

    def left(self) -> float:
        return self._at - self._clock()

    def remaining(self, doing: str) -> float:
        """Seconds left (> 0), or ConnectFailed(TIMEOUT) naming what was under way."""
        left = self.left()
        if left <= 0:
            raise self.expired(doing)
        return left

    def expired(self, doing: str) -> ConnectFailed:
        return ConnectFailed(ConnectFailure.TIMEOUT, f"timed out after {self.seconds:g} s {doing}")


def _stopped(doing: str) -> ConnectFailed:
    return ConnectFailed(ConnectFailure.CANCELLED, f"stopped while {doing}")


def _wait_ready(
    sock: Any, write: bool, deadline: _Deadline, stop: StopSignal | None, doing: str
) -> None:
    """Until ``sock`` can be read (or written, ``write``); ConnectFailed(TIMEOUT) at the
    deadline, ConnectFailed(CANCELLED) as soon as ``stop`` is set.  (Connect paths only:
    a selector per wait is cheap next to a connect.)"""
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_WRITE if write else selectors.EVENT_READ)
        if stop is not None:
            selector.register(stop.fileno(), selectors.EVENT_READ)
        while True:
            if stop is not None and stop.is_set():
                raise _stopped(doing)
            ready = selector.select(deadline.remaining(doing))
            if stop is not None and stop.is_set():
                raise _stopped(doing)
            if stop is not None:
                stop.clear_wakeups()  # a nudge: the driver looks at it once connected
            if any(key.fileobj is sock for key, _ in ready):
                return


def _until_done(
    sock: Any, attempt: Callable[[], T], deadline: _Deadline, stop: StopSignal | None,
    doing: str, *, writing: bool = False,
) -> T:
    """Run one operation of a non-blocking socket (TLS included) to completion, waiting
    for the socket whenever it would block."""
    while True:
        try:
            return attempt()
        except (BlockingIOError, InterruptedError):
            want_write = writing
        except ssl.SSLWantReadError:
            want_write = False
        except ssl.SSLWantWriteError:
            want_write = True
        _wait_ready(sock, want_write, deadline, stop, doing)


# --- reading an HTTP answer head, bounded ----------------------------------------------


@dataclass(frozen=True)
class _AnswerHead:
    status: int
    status_text: str
    headers: tuple[tuple[str, str], ...]
    rest: bytes  # bytes read past the head: frames after a 101, or the start of a body

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)


def _read_head(
    sock: socket.socket, deadline: _Deadline, peer: str, bad: ConnectFailure,
    stop: StopSignal | None,
) -> _AnswerHead:
    """Read one HTTP answer head within the deadline and the size and line bounds.

    Lines are cut and stripped as websocket-client does (at LF, ``str.strip``), so that
    the head we hand it on a 101 ends where it expects."""
    buffer = bytearray()
    lines: list[str] = []
    scanned = 0
    while True:
        newline = buffer.find(b"\n", scanned)
        if newline < 0:
            if len(buffer) >= spec.MAX_UPGRADE_HEADER_BYTES:
                raise _too_large(peer, bad)
            buffer += _recv_some(sock, deadline, f"waiting for {peer}'s answer", stop)
            continue
        line = buffer[scanned:newline].decode("utf-8", "replace").strip()
        scanned = newline + 1
        if scanned > spec.MAX_UPGRADE_HEADER_BYTES:
            raise _too_large(peer, bad)
        if not line:
            break
        lines.append(line)
        if len(lines) > 1 + spec.MAX_UPGRADE_HEADER_LINES:
            raise ConnectFailed(
                bad, f"{peer} sent more than {spec.MAX_UPGRADE_HEADER_LINES} header lines"
            )
    if not lines:
        raise ConnectFailed(bad, f"{peer} answered with an empty line, not HTTP")
    status_line = _STATUS_LINE.fullmatch(lines[0])
    if status_line is None:
        raise ConnectFailed(bad, f"{peer} did not answer with an HTTP status line")
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise ConnectFailed(bad, f"{peer} sent a malformed header line")
        headers.append((name.strip(), value.strip()))
    status, status_text = int(status_line.group(1)), status_line.group(2) or ""
    return _AnswerHead(status, status_text, tuple(headers), bytes(buffer[scanned:]))


def _too_large(peer: str, bad: ConnectFailure) -> ConnectFailed:
    return ConnectFailed(
        bad, f"{peer}'s answer headers exceed {spec.MAX_UPGRADE_HEADER_BYTES} bytes"
    )


def _recv_some(
    sock: socket.socket, deadline: _Deadline, doing: str, stop: StopSignal | None
) -> bytes:
    try:
        data = _until_done(sock, lambda: sock.recv(_HEAD_READ_CHUNK), deadline, stop, doing)
    except OSError as exc:
        raise _connection_lost(doing, exc) from None
    if not data:
        raise ConnectFailed(
            ConnectFailure.NETWORK, f"the connection was closed {doing}"
        )
    return data


def _send_all(
    sock: socket.socket, data: bytes, deadline: _Deadline, doing: str, stop: StopSignal | None
) -> None:
    view = memoryview(data)
    try:
        while view:
            sent = _until_done(sock, functools.partial(sock.send, view), deadline, stop, doing,
                               writing=True)
            view = view[sent:]
    except OSError as exc:
        raise _connection_lost(doing, exc) from None


def _connection_lost(doing: str, exc: OSError) -> ConnectFailed:
    return ConnectFailed(ConnectFailure.NETWORK, f"connection lost {doing}: {_reason(exc)}")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    inner = exc.args[0] if exc.args else exc
    return str(getattr(inner, "strerror", None) or inner)


# --- the upgrade ------------------------------------------------------------------------


class _UpgradeSocket:
    """The socket websocket-client talks to during the upgrade (its ``socket=`` option).

    It sends the request within the deadline, then reads the whole answer head itself on
    the first ``recv``, bounded in time, size and line count.  A 101 is served back to
    websocket-client as a canonical head (for it to check ``Sec-WebSocket-Accept``), and
    whatever followed the head is kept for the connection's first frames.  Any other
    answer never reaches websocket-client: a redirect or a rejection is raised from here
    (websocket-client would read an error body of any announced length)."""

    def __init__(
        self, sock: socket.socket, deadline: _Deadline, api_key: str, stop: StopSignal | None
    ) -> None:
        self.inner = sock
        self._deadline = deadline
        self._api_key = api_key
        self._stop = stop
        self._served: bytes | None = None
        self._offset = 0
        self.after_head = b""

    def gettimeout(self) -> float:
        # Never 0: websocket-client would take that for a non-blocking socket.
        return max(self._deadline.left(), 0.001)

    def settimeout(self, timeout: float | None) -> None:
        """Ignored: the connect deadline rules until the upgrade is done."""

    def fileno(self) -> int:
        return self.inner.fileno()

    def close(self) -> None:
        self.inner.close()

    def send(self, data: bytes) -> int:
        # websocket-client ignores a short count here: send it all or fail.
        _send_all(self.inner, data, self._deadline, "sending the upgrade request", self._stop)
        return len(data)

    def recv(self, bufsize: int) -> bytes:
        if self._served is None:
            self._served = self._read_answer()
        if self._offset >= len(self._served):
            raise _unparsed_answer()
        start = self._offset
        self._offset = min(start + bufsize, len(self._served))
        return self._served[start : self._offset]

    def fully_served(self) -> bool:
        return self._served is not None and self._offset == len(self._served)

    def _read_answer(self) -> bytes:
        head = _read_head(self.inner, self._deadline, "the server", ConnectFailure.BAD_RESPONSE,
                          self._stop)
        if head.status == 101:
            self.after_head = head.rest
            lines = [f"HTTP/1.1 101 {head.status_text}"]
            lines += [f"{name}: {value}" for name, value in head.headers]
            return ("\r\n".join(lines) + "\r\n\r\n").encode()
        if head.status in _REDIRECT_STATUSES:
            raise ConnectFailed(
                ConnectFailure.REDIRECT,
                "the server answered with a redirect, which c2ws does not follow (it would "
                f"send the API key along); use the final URL (HTTP {head.status})",
            )
        body = _read_rejection_body(self.inner, head, self._deadline, self._stop)
        reason = head.header(spec.ERROR_HEADER) or head.status_text
        retry_after = head.header("Retry-After")
        raise HandshakeRejected(
            head.status,
            _bounded_reason(reason, self._api_key),
            _redact_bytes(body, self._api_key),
            None if retry_after is None else retry_after_seconds(retry_after, time.time()),
        )


# delta-seconds longer than this are a day or more anyway: not converted (int() refuses
# some very long digit strings).
_MAX_DELTA_SECONDS_DIGITS: Final = 9


def retry_after_seconds(value: str, now: float) -> float | None:
    """The wait a ``Retry-After`` header value asks for, in seconds, from ``now`` (epoch
    seconds): delta-seconds (``120``) or an HTTP-date in any of the three forms RFC 9110
    lets a recipient meet (a date without a zone is taken as GMT), rounded up to whole
    seconds as dates have no finer ones.  Total: None for anything else, never an
    exception.  Bounded to [0, spec.MAX_RETRY_AFTER_SECONDS]: a date in the past asks for
    no wait."""
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        if len(text) > _MAX_DELTA_SECONDS_DIGITS:
            return spec.MAX_RETRY_AFTER_SECONDS
        return min(float(int(text)), spec.MAX_RETRY_AFTER_SECONDS)
    try:
        moment = email.utils.parsedate_to_datetime(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.timezone.utc)
        seconds = moment.timestamp() - now
    except (ValueError, TypeError, OverflowError, IndexError, OSError):
        return None
    if not math.isfinite(seconds):  # no date makes one, but a bound must not rely on that
        return None
    return min(max(float(math.ceil(seconds)), 0.0), spec.MAX_RETRY_AFTER_SECONDS)


def _unparsed_answer() -> ConnectFailed:
    # websocket-client read less or more of the head we served than there was.
    return ConnectFailed(ConnectFailure.BAD_RESPONSE, "the upgrade answer could not be parsed")


def _read_rejection_body(
    sock: socket.socket, head: _AnswerHead, deadline: _Deadline, stop: StopSignal | None
) -> bytes:
    """At most MAX_REJECTION_BODY_BYTES of an announced body, what arrives in time.
    A body without Content-Length (chunked, or until close) is not read at all."""
    announced = (head.header("Content-Length") or "").strip()
    if not (announced.isascii() and announced.isdigit()):
        return b""
    # A long digit string is a huge length: no need to convert it (int() refuses some).
    wanted = spec.MAX_REJECTION_BODY_BYTES if len(announced) > 9 else int(announced)
    wanted = min(wanted, spec.MAX_REJECTION_BODY_BYTES)
    body = bytearray(head.rest[:wanted])
    while len(body) < wanted:
        try:
            data = _until_done(sock, functools.partial(sock.recv, wanted - len(body)), deadline,
                               stop, "reading the rejection")
        except ConnectFailed as exc:
            if exc.kind is ConnectFailure.CANCELLED:
                raise
            break  # the deadline: the status is what matters, keep what we have
        except OSError:
            break
        if not data:
            break
        body += data
    return bytes(body)


def _bounded_reason(text: str, api_key: str) -> str:
    """One printable line, the key redacted, then cut to length (redacting first, so the
    cut cannot leave a whole key behind)."""
    text = redact_key(text, api_key)
    text = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    limit = spec.MAX_REJECTION_REASON_CHARS
    return text if len(text) <= limit else text[: limit - 1] + "…"


def redact_key(text: str, api_key: str) -> str:
    """``text`` with every occurrence of the API key replaced by ``****``."""
    return text.replace(api_key, _REDACTED) if api_key else text


def _redact_bytes(data: bytes, api_key: str) -> bytes:
    if not api_key:
        return data
    return data.replace(api_key.encode("utf-8", "replace"), _REDACTED.encode())


# --- the transport under the upgrade: DNS, TCP, proxy tunnel, TLS --------------------------


# The resolver, as a module attribute so that tests can stand in a slow one.
_getaddrinfo = socket.getaddrinfo

# (family, type, proto, canonname, sockaddr), as getaddrinfo returns them.
AddrInfo = Any


def _resolve(
    host: str, port: int, deadline: _Deadline, stop: StopSignal | None
) -> list[AddrInfo]:
    """getaddrinfo within the deadline, or until stopped.  A blocking resolver cannot be
    interrupted, so a name lookup runs in a throwaway daemon thread that we stop waiting
    for at the deadline or the stop (its result is then discarded); the thread itself
    ends when the system resolver gives up (its own timeouts)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:  # a literal address: no lookup, nothing to wait for
        return _lookup(host, port)
    outcome: list[list[AddrInfo] | ConnectFailed] = []
    # The lookup thread says it is done on a socket, so that one poll waits for it and
    # for the stop together.  It closes its end itself: ours may be gone by then.
    done_reader, done_writer = socket.socketpair()

    def lookup() -> None:
        try:
            outcome.append(_lookup(host, port))
        except ConnectFailed as exc:
            outcome.append(exc)
        finally:
            with contextlib.suppress(OSError):
                done_writer.send(b"\0")
            done_writer.close()

    try:
        threading.Thread(target=lookup, name="c2ws-resolve", daemon=True).start()
        _wait_ready(done_reader, False, deadline, stop, "resolving the host name")
    finally:
        done_reader.close()
    if not outcome:  # the resolver raised something unforeseen
        raise ConnectFailed(ConnectFailure.DNS, "cannot resolve host")
    result = outcome[0]
    if isinstance(result, ConnectFailed):
        raise result
    return result


def _lookup(host: str, port: int) -> list[AddrInfo]:
    try:
        return _getaddrinfo(host, port, 0, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise ConnectFailed(ConnectFailure.DNS, f"cannot resolve host: {_reason(exc)}") from None
    except UnicodeError:
        raise ConnectFailed(ConnectFailure.BAD_URL, "the host name is not valid") from None
    except OSError as exc:
        raise ConnectFailed(ConnectFailure.DNS, f"cannot resolve host: {_reason(exc)}") from None


def _connect_tcp(
    host: str, port: int, deadline: _Deadline, what: str, stop: StopSignal | None
) -> socket.socket:
    """The first address of ``host`` that accepts, within the deadline (non-blocking:
    the wait polls the stop signal too).  The socket is handed over non-blocking."""
    last_error: OSError | None = None
    doing = f"connecting to {what}"
    for family, kind, proto, _, address in _resolve(host, port, deadline, stop):
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            error = sock.connect_ex(address)
            if error in _CONNECT_IN_PROGRESS:
                _wait_ready(sock, True, deadline, stop, doing)
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                raise OSError(error, os.strerror(error))
        except OSError as exc:  # the kernel gave up on this address: try the next one
            sock.close()
            last_error = exc
            continue
        except BaseException:  # our deadline, a stop, or worse
            sock.close()
            raise
        for option in wsclient_compat.DEFAULT_SOCKET_OPTIONS:  # TCP_NODELAY, keepalive
            sock.setsockopt(*option)
        return sock
    if isinstance(last_error, ConnectionRefusedError):
        raise ConnectFailed(ConnectFailure.REFUSED, "connection refused")
    if isinstance(last_error, TimeoutError):
        raise deadline.expired(doing)
    if last_error is None:
        raise ConnectFailed(ConnectFailure.DNS, "cannot resolve host: no address found")
    raise ConnectFailed(ConnectFailure.NETWORK, _reason(last_error))


def _tunnel(
    sock: socket.socket, host: str, port: int, auth: tuple[str, str] | None, deadline: _Deadline,
    stop: StopSignal | None,
) -> None:
    """HTTP CONNECT through the proxy, as websocket-client does, within the deadline."""
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    request = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
    if auth and auth[0]:
        credentials = auth[0] + (f":{auth[1]}" if auth[1] else "")
        token = base64.b64encode(credentials.encode()).decode()
        request += f"Proxy-Authorization: Basic {token}\r\n"
    _send_all(sock, (request + "\r\n").encode(), deadline, "asking the proxy for a tunnel",
              stop)
    head = _read_head(sock, deadline, "the proxy", ConnectFailure.PROXY, stop)
    if head.status != 200:
        raise ConnectFailed(
            ConnectFailure.PROXY, f"the proxy refused the tunnel (HTTP {head.status})"
        )
    if head.rest:
        raise ConnectFailed(ConnectFailure.PROXY, "the proxy sent data before the tunnel was used")


def _default_tls_context() -> ssl.SSLContext:
    """Certificate and host name verification on, system trust store; the
    WEBSOCKET_CLIENT_CA_BUNDLE variable websocket-client honours is honoured too."""
    context = ssl.create_default_context()
    bundle = os.environ.get("WEBSOCKET_CLIENT_CA_BUNDLE")
    try:
        if bundle and os.path.isfile(bundle):
            context.load_verify_locations(cafile=bundle)
        elif bundle and os.path.isdir(bundle):
            context.load_verify_locations(capath=bundle)
    except (OSError, ssl.SSLError, ValueError):
        raise ConnectFailed(
            ConnectFailure.TLS, "cannot load the certificates of WEBSOCKET_CLIENT_CA_BUNDLE"
        ) from None
    return context


def _start_tls(
    sock: socket.socket, host: str, deadline: _Deadline, context: ssl.SSLContext,
    stop: StopSignal | None,
) -> ssl.SSLSocket:
    doing = "in the TLS handshake"
    try:
        tls = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
    except (ssl.SSLError, ValueError) as exc:
        sock.close()
        raise ConnectFailed(ConnectFailure.TLS, f"TLS handshake failed: {_reason(exc)}") from None
    try:
        _until_done(tls, tls.do_handshake, deadline, stop, doing)
    except ssl.SSLCertVerificationError as exc:
        tls.close()
        raise ConnectFailed(
            ConnectFailure.TLS_CERTIFICATE,
            f"TLS handshake failed: the server's certificate is not trusted "
            f"({exc.verify_message or _reason(exc)})",
        ) from None
    except OSError as exc:  # SSLError included: a server that does not speak TLS, mostly
        tls.close()
        raise ConnectFailed(ConnectFailure.TLS, f"TLS handshake failed: {_reason(exc)}") from None
    except BaseException:
        tls.close()
        raise
    return tls


@dataclass(frozen=True)
class ProxyRoute:
    """The proxy the environment names for one host.  ``variable``: the variable it came
    from (``http_proxy``, ``HTTPS_PROXY``, ``ALL_PROXY``...); ``scheme``: its URL's scheme.
    ``used`` False: c2ws cannot use it (``ALL_PROXY`` naming anything but an ``http://``
    proxy, a SOCKS proxy mostly) and connects directly.  ``address`` never holds the
    proxy's credentials: it is fit to print."""

    variable: str
    scheme: str
    host: str
    port: int
    auth: tuple[str, str] | None
    used: bool

    @property
    def address(self) -> str:
        """host:port ("" for a proxy c2ws does not use)."""
        if not self.host:
            return ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


# ALL_PROXY applies to every scheme when the scheme's own variable is not set, as curl
# has it; websocket-client does not read it.  Lower case first, as for the others.
_ALL_PROXY_VARIABLES: Final = ("all_proxy", "ALL_PROXY")
_PROXY_SETTING_INVALID: Final = "the {} setting is not a valid proxy URL"


def _proxy_route(host: str, secure: bool) -> ProxyRoute | None:
    """Which proxy connections to ``host`` go through.  ``https_proxy`` (wss) or
    ``http_proxy`` (ws) as websocket-client reads them (lower case first, then upper
    case), else ``ALL_PROXY``; ``no_proxy`` is applied with websocket-client's own rules.
    Raises ConnectFailed(PROXY) for a setting that is not a proxy URL."""
    wanted = "https_proxy" if secure else "http_proxy"
    variable = wanted if wanted in os.environ else wanted.upper()
    try:
        proxy_host, proxy_port, proxy_auth = wsclient_compat.get_proxy_info(host, secure)
        if proxy_host:
            return ProxyRoute(variable, "http", str(proxy_host), int(proxy_port or 80),
                              proxy_auth, used=True)
        if os.environ.get(variable, "").strip():
            # Set, but no_proxy names this host (or websocket-client finds no host in it,
            # as in "proxy:3128" without a scheme: it connects directly then, and so do we).
            return None
        return _all_proxy_route(host, secure)
    except (ValueError, TypeError, wsclient_compat.WebSocketException):
        raise ConnectFailed(
            ConnectFailure.PROXY, _PROXY_SETTING_INVALID.format(f"{wanted}/{wanted.upper()}")
        ) from None


def _all_proxy_route(host: str, secure: bool) -> ProxyRoute | None:
    variable = next((name for name in _ALL_PROXY_VARIABLES if name in os.environ), None)
    value = os.environ.get(variable, "").replace(" ", "") if variable else ""
    if variable is None or not value:
        return None
    invalid = ConnectFailed(ConnectFailure.PROXY, _PROXY_SETTING_INVALID.format(variable))
    try:
        # An explicit proxy makes websocket-client apply no_proxy to the host, and no more.
        applies, _, _ = wsclient_compat.get_proxy_info(host, secure, proxy_host=variable,
                                                        proxy_port=1)
    except (ValueError, TypeError, wsclient_compat.WebSocketException):
        raise invalid from None
    if not applies:
        return None
    scheme, separator, _ = value.partition("://")
    scheme = scheme.lower() if separator else "http"  # as curl: no scheme is an HTTP proxy
    if scheme != "http":  # socks5://, https://...: not a proxy we can tunnel through
        return ProxyRoute(variable, scheme, "", 0, None, used=False)
    try:
        proxy = urlsplit(value if separator else f"http://{value}")
        proxy_host, proxy_port = proxy.hostname, proxy.port
    except ValueError:
        raise invalid from None
    if not proxy_host:
        raise invalid
    auth = (unquote(proxy.username), unquote(proxy.password or "")) if proxy.username else None
    return ProxyRoute(variable, scheme, proxy_host, proxy_port or 80, auth, used=True)


def proxy_for(url: str) -> ProxyRoute | None:
    """The proxy the environment names for connections to ``url`` (None: they go
    direct), exactly as :func:`open_connection` will see it.  Raises
    :class:`ConnectFailed` for a URL or proxy setting it could not use either."""
    host, _, secure = _parse_url(url)
    return _proxy_route(host, secure)


def _open_stream(
    host: str, port: int, secure: bool, deadline: _Deadline, context: ssl.SSLContext | None,
    stop: StopSignal | None,
) -> socket.socket:
    """TCP (through the environment's HTTP proxy when one applies), then TLS for wss."""
    route = _proxy_route(host, secure)
    if route is not None and route.used:
        sock = _connect_tcp(route.host, route.port, deadline, "the proxy", stop)
        try:
            _tunnel(sock, host, port, route.auth, deadline, stop)
        except BaseException:
            sock.close()
            raise
    else:
        sock = _connect_tcp(host, port, deadline, "the server", stop)
    if not secure:
        return sock
    try:
        tls_context = context or _default_tls_context()
    except BaseException:
        sock.close()
        raise
    return _start_tls(sock, host, deadline, tls_context, stop)


def _parse_url(url: str) -> tuple[str, int, bool]:
    try:
        host, port, _, secure = wsclient_compat.parse_url(url)
    except ValueError as exc:
        raise ConnectFailed(ConnectFailure.BAD_URL, f"bad URL: {exc}") from None
    return str(host), int(port), bool(secure)


def open_connection(
    url: str,
    api_key: str,
    *,
    timeout: float,
    clock: Clock = time.monotonic,
    ssl_context: ssl.SSLContext | None = None,
    stop: StopSignal | None = None,
) -> SocketTransport:
    """Connect and upgrade with the Bearer key, all within ``timeout`` seconds, or until
    ``stop`` is set (ConnectFailed(CANCELLED), at once).

    The deadline covers name resolution, the TCP connect, the proxy tunnel, the TLS
    handshake and the HTTP upgrade together.  The answer's head is bounded
    (spec.MAX_UPGRADE_HEADER_BYTES, spec.MAX_UPGRADE_HEADER_LINES) and so is the body of
    a rejection (spec.MAX_REJECTION_BODY_BYTES).  Redirects are never followed.

    DNS: ``getaddrinfo`` cannot be interrupted, so the lookup runs in a daemon thread
    that is abandoned at the deadline or the stop (it ends when the system resolver gives
    up); a literal IP address needs no lookup and no thread.

    Proxies: an HTTP proxy from ``http_proxy``/``https_proxy``, else from ``ALL_PROXY``
    (``no_proxy`` honoured, with websocket-client's own rules) is tunnelled through here
    with HTTP CONNECT, under the same deadline; only HTTP CONNECT proxies are used (an
    ``ALL_PROXY`` naming another kind is passed over: see :func:`proxy_for`).

    TLS (wss): ``ssl.create_default_context()`` (certificate and host name checks on)
    unless ``ssl_context`` is given.

    Every failure is a :class:`ConnectFailed` whose ``kind`` classifies it (an HTTP error
    status is a :class:`HandshakeRejected`); none carries the API key.
    """
    deadline = _Deadline(timeout, clock)
    host, port, secure = _parse_url(url)
    sock = _open_stream(host, port, secure, deadline, ssl_context, stop)
    upgrade = _UpgradeSocket(sock, deadline, api_key, stop)
    try:
        # websocket-client writes the request and checks the 101 (Sec-WebSocket-Accept).
        wsclient_compat.upgrade(url, api_key, upgrade)
        if not upgrade.fully_served():
            raise _unparsed_answer()
    except ConnectFailed:
        upgrade.close()
        raise
    except wsclient_compat.WebSocketException:
        upgrade.close()
        # Its messages quote the server's headers: say what failed, not what was sent.
        raise ConnectFailed(
            ConnectFailure.BAD_RESPONSE,
            "the server's answer is not a valid WebSocket upgrade (Sec-WebSocket-Accept, "
            "Upgrade or Connection header)",
        ) from None
    except ValueError as exc:
        upgrade.close()
        raise ConnectFailed(ConnectFailure.BAD_URL, f"bad URL: {exc}") from None
    except OSError as exc:
        upgrade.close()
        raise ConnectFailed(ConnectFailure.NETWORK, _reason(exc)) from None
    except BaseException:
        upgrade.close()
        raise
    return SocketTransport(sock, upgrade.after_head, clock)


# --- the upgraded connection ----------------------------------------------------------------


class SocketTransport:
    """The socket of one upgraded connection, non-blocking.  The driver reads it when it
    is readable (:meth:`read` never waits) and writes to it within a deadline
    (:meth:`send` waits only for the socket to take more, polling the stop signal too).
    ``received``: bytes that arrived with the 101 answer (the first frames), to be read
    first.  One thread uses it."""

    def __init__(self, sock: socket.socket, received: bytes = b"",
                 clock: Clock = time.monotonic) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.received = received
        self.clock = clock
        self._tls = isinstance(sock, ssl.SSLSocket)

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self, limit: int = READ_CHUNK) -> bytes | None:
        """What the socket holds now, up to ``limit`` bytes; None when nothing can be read
        yet (a TLS record only partly in).  Raises :class:`ConnectionLost`."""
        try:
            data = self.sock.recv(limit)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return None
        except OSError as exc:
            raise ConnectionLost(_reason(exc)) from None
        if not data:
            raise ConnectionLost("the server closed the TCP connection without a close frame")
        return data

    @property
    def encrypted(self) -> bool:
        """TLS: a read may find only part of a record (``read`` returns None)."""
        return self._tls

    def pending(self) -> bool:
        """Bytes already decrypted by TLS, which poll() cannot see."""
        return self._tls and self.sock.pending() > 0  # type: ignore[attr-defined]

    def send(self, data: bytes, timeout: float, stop: StopSignal | None = None) -> None:
        """All of ``data``, the socket taking more within ``timeout`` seconds, else
        :class:`SendBlocked`; :class:`SendStopped` when ``stop`` is set while it waits.
        Nearly always the frame fits in the socket buffer: one send, no wait."""
        sock = self.sock
        view = memoryview(data)
        deadline: float | None = None
        while True:
            want_read = False
            try:
                sent = sock.send(view)
            except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError):
                sent = 0
            except ssl.SSLWantReadError:
                sent, want_read = 0, True
            except OSError as exc:
                raise ConnectionLost(_reason(exc)) from None
            if sent == len(view):
                return
            view = view[sent:]
            if deadline is None:
                deadline = self.clock() + timeout
            self._wait_to_send(want_read, deadline, timeout, stop)

    def _wait_to_send(
        self, want_read: bool, deadline: float, timeout: float, stop: StopSignal | None
    ) -> None:
        if stop is not None and stop.is_set():
            raise SendStopped("stopped while sending")
        left = deadline - self.clock()
        if left <= 0:
            raise SendBlocked(f"the server stopped reading: could not send for {timeout:g} s")
        with selectors.DefaultSelector() as selector:
            selector.register(self.sock, selectors.EVENT_READ if want_read
                              else selectors.EVENT_WRITE)
            if stop is not None:
                selector.register(stop.fileno(), selectors.EVENT_READ)
            selector.select(left)
        if stop is not None and not stop.is_set():
            # A nudge (not a stop) must not make the next wait return at once: the driver
            # looks at what it was for after the send.
            stop.clear_wakeups()

    def close(self) -> None:
        """Shut the connection down (no close frame: the driver sends that)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()
