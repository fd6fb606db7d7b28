"""Opening one WebSocket connection on websocket-client, and reading it smartly.

``open_connection`` connects and upgrades with the Bearer key within one deadline and
maps every failure to a classified, one-line, key-free :class:`ConnectFailed`.
:class:`BufferedWebSocket` serves websocket-client's small frame reads from one large
``recv``, bounds frame and message sizes, and puts deadlines on a frame's completion
and on each send.

Nothing of websocket-client is patched: we hand it a socket of ours through its
documented ``socket=`` option and subclass ``WebSocket`` through its ``class_`` option.
"""

from __future__ import annotations

import base64
import datetime
import email.utils
import enum
import ipaddress
import math
import os
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import websocket
from websocket import ABNF, continuous_frame, frame_buffer
from websocket._url import get_proxy_info, parse_url
from websocket._utils import validate_utf8

from c2ws import spec

READ_CHUNK = 65536
# FIN, no RSV bits, opcode 1 (text): the first header byte of an unfragmented text frame.
_FIN_TEXT: Final = 0x81
_HEAD_READ_CHUNK = 4096
MASK_KEY_BATCH = 256
_REDACTED = "****"
# websocket-client follows these (we never do); any other non-101 status is a rejection.
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_STATUS_LINE = re.compile(r"HTTP/\d(?:\.\d)?\s+(\d{3})(?:\s+(.*))?")

Clock = Callable[[], float]


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


class FrameTooLarge(websocket.WebSocketPayloadException):
    """A frame or fragmented message over spec.MAX_FRAME_BYTES: refused before it is read."""


class TooManyFragments(FrameTooLarge):
    """A message split into more than spec.MAX_FRAGMENTS_PER_MESSAGE frames."""


class FrameTimeout(websocket.WebSocketException):
    """A frame began to arrive but its remaining bytes did not follow in time."""


class SendBlocked(websocket.WebSocketException):
    """The socket took no more of a frame for ``send_timeout`` seconds: the server stopped
    reading.  Part of the frame may be on the wire, so the connection is unusable."""


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
    sock: socket.socket, deadline: _Deadline, peer: str, bad: ConnectFailure
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
            buffer += _recv_some(sock, deadline, f"waiting for {peer}'s answer")
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


def _recv_some(sock: socket.socket, deadline: _Deadline, doing: str) -> bytes:
    sock.settimeout(deadline.remaining(doing))
    try:
        data = sock.recv(_HEAD_READ_CHUNK)
    except TimeoutError:
        raise deadline.expired(doing) from None
    except OSError as exc:
        raise _connection_lost(doing, exc) from None
    if not data:
        raise ConnectFailed(
            ConnectFailure.NETWORK, f"the connection was closed {doing}"
        )
    return data


def _send_all(sock: socket.socket, data: bytes, deadline: _Deadline, doing: str) -> None:
    sock.settimeout(deadline.remaining(doing))
    try:
        sock.sendall(data)
    except TimeoutError:
        raise deadline.expired(doing) from None
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

    def __init__(self, sock: socket.socket, deadline: _Deadline, api_key: str) -> None:
        self.inner = sock
        self._deadline = deadline
        self._api_key = api_key
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
        _send_all(self.inner, data, self._deadline, "sending the upgrade request")
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
        head = _read_head(self.inner, self._deadline, "the server", ConnectFailure.BAD_RESPONSE)
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
        body = _read_rejection_body(self.inner, head, self._deadline)
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


def _read_rejection_body(sock: socket.socket, head: _AnswerHead, deadline: _Deadline) -> bytes:
    """At most MAX_REJECTION_BODY_BYTES of an announced body, what arrives in time.
    A body without Content-Length (chunked, or until close) is not read at all."""
    announced = (head.header("Content-Length") or "").strip()
    if not (announced.isascii() and announced.isdigit()):
        return b""
    # A long digit string is a huge length: no need to convert it (int() refuses some).
    wanted = spec.MAX_REJECTION_BODY_BYTES if len(announced) > 9 else int(announced)
    wanted = min(wanted, spec.MAX_REJECTION_BODY_BYTES)
    body = bytearray(head.rest[:wanted])
    while len(body) < wanted and deadline.left() > 0:
        sock.settimeout(deadline.left())
        try:
            data = sock.recv(wanted - len(body))
        except OSError:  # timeouts included: the status is what matters, keep what we have
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


def _resolve(host: str, port: int, deadline: _Deadline) -> list[AddrInfo]:
    """getaddrinfo within the deadline.  A blocking resolver cannot be interrupted, so a
    name lookup runs in a daemon thread that we stop waiting for at the deadline; the
    thread itself ends when the system resolver gives up (its own timeouts)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:  # a literal address: no lookup, nothing to wait for
        return _lookup(host, port)
    outcome: list[list[AddrInfo] | ConnectFailed] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            outcome.append(_lookup(host, port))
        except ConnectFailed as exc:
            outcome.append(exc)
        finally:
            done.set()

    threading.Thread(target=lookup, name="c2ws-resolve", daemon=True).start()
    if not done.wait(max(deadline.left(), 0.0)):
        raise deadline.expired("resolving the host name")
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


def _connect_tcp(host: str, port: int, deadline: _Deadline, what: str) -> socket.socket:
    """The first address of ``host`` that accepts, within the deadline."""
    last_error: OSError | None = None
    for family, kind, proto, _, address in _resolve(host, port, deadline):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(deadline.remaining(f"connecting to {what}"))
            sock.connect(address)
        except TimeoutError as exc:
            sock.close()
            if deadline.left() <= 0:
                raise deadline.expired(f"connecting to {what}") from None
            last_error = exc  # the kernel gave up on this address: try the next one
            continue
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        except BaseException:
            sock.close()
            raise
        for option in websocket.DEFAULT_SOCKET_OPTION:  # TCP_NODELAY and keepalive probes
            sock.setsockopt(*option)
        return sock
    if isinstance(last_error, ConnectionRefusedError):
        raise ConnectFailed(ConnectFailure.REFUSED, "connection refused")
    if isinstance(last_error, TimeoutError):
        raise deadline.expired(f"connecting to {what}")
    if last_error is None:
        raise ConnectFailed(ConnectFailure.DNS, "cannot resolve host: no address found")
    raise ConnectFailed(ConnectFailure.NETWORK, _reason(last_error))


def _tunnel(
    sock: socket.socket, host: str, port: int, auth: tuple[str, str] | None, deadline: _Deadline
) -> None:
    """HTTP CONNECT through the proxy, as websocket-client does, within the deadline."""
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    request = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
    if auth and auth[0]:
        credentials = auth[0] + (f":{auth[1]}" if auth[1] else "")
        token = base64.b64encode(credentials.encode()).decode()
        request += f"Proxy-Authorization: Basic {token}\r\n"
    _send_all(sock, (request + "\r\n").encode(), deadline, "asking the proxy for a tunnel")
    head = _read_head(sock, deadline, "the proxy", ConnectFailure.PROXY)
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
    sock: socket.socket, host: str, deadline: _Deadline, context: ssl.SSLContext
) -> ssl.SSLSocket:
    doing = "in the TLS handshake"
    try:
        tls = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
    except (ssl.SSLError, ValueError) as exc:
        sock.close()
        raise ConnectFailed(ConnectFailure.TLS, f"TLS handshake failed: {_reason(exc)}") from None
    try:
        tls.settimeout(deadline.remaining(doing))
        tls.do_handshake()
    except ssl.SSLCertVerificationError as exc:
        tls.close()
        raise ConnectFailed(
            ConnectFailure.TLS_CERTIFICATE,
            f"TLS handshake failed: the server's certificate is not trusted "
            f"({exc.verify_message or _reason(exc)})",
        ) from None
    except TimeoutError:
        tls.close()
        raise deadline.expired(doing) from None
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
        proxy_host, proxy_port, proxy_auth = get_proxy_info(host, secure)
        if proxy_host:
            return ProxyRoute(variable, "http", str(proxy_host), int(proxy_port or 80),
                              proxy_auth, used=True)
        if os.environ.get(variable, "").strip():
            # Set, but no_proxy names this host (or websocket-client finds no host in it,
            # as in "proxy:3128" without a scheme: it connects directly then, and so do we).
            return None
        return _all_proxy_route(host, secure)
    except (ValueError, TypeError, websocket.WebSocketException):
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
        applies, _, _ = get_proxy_info(host, secure, proxy_host=variable, proxy_port=1)
    except (ValueError, TypeError, websocket.WebSocketException):
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
    host: str, port: int, secure: bool, deadline: _Deadline, context: ssl.SSLContext | None
) -> socket.socket:
    """TCP (through the environment's HTTP proxy when one applies), then TLS for wss."""
    route = _proxy_route(host, secure)
    if route is not None and route.used:
        sock = _connect_tcp(route.host, route.port, deadline, "the proxy")
        try:
            _tunnel(sock, host, port, route.auth, deadline)
        except BaseException:
            sock.close()
            raise
    else:
        sock = _connect_tcp(host, port, deadline, "the server")
    if not secure:
        return sock
    try:
        tls_context = context or _default_tls_context()
    except BaseException:
        sock.close()
        raise
    return _start_tls(sock, host, deadline, tls_context)


def _parse_url(url: str) -> tuple[str, int, bool]:
    try:
        host, port, _, secure = parse_url(url)
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
) -> BufferedWebSocket:
    """Connect and upgrade with the Bearer key, all within ``timeout`` seconds.

    The deadline covers name resolution, the TCP connect, the proxy tunnel, the TLS
    handshake and the HTTP upgrade together.  The answer's head is bounded
    (spec.MAX_UPGRADE_HEADER_BYTES, spec.MAX_UPGRADE_HEADER_LINES) and so is the body of
    a rejection (spec.MAX_REJECTION_BODY_BYTES).  Redirects are never followed.

    DNS: ``getaddrinfo`` cannot be interrupted, so the lookup runs in a daemon thread
    that is abandoned at the deadline (it ends when the system resolver gives up); a
    literal IP address needs no lookup and no thread.

    Proxies: an HTTP proxy from ``http_proxy``/``https_proxy``, else from ``ALL_PROXY``
    (``no_proxy`` honoured, with websocket-client's own rules) is tunnelled through here
    with HTTP CONNECT, under the same deadline; only HTTP CONNECT proxies are used (an
    ``ALL_PROXY`` naming another kind is passed over: see :func:`proxy_for`).

    TLS (wss): ``ssl.create_default_context()`` (certificate and host name checks on)
    unless ``ssl_context`` is given.

    Every failure is a :class:`ConnectFailed` whose ``kind`` classifies it (an HTTP error
    status is a :class:`HandshakeRejected`); none carries the API key.  The connection is
    returned with no socket timeout: between frames the caller waits (select) as it sees
    fit, :class:`BufferedWebSocket` bounds a frame's completion and each send.
    """
    deadline = _Deadline(timeout, clock)
    host, port, secure = _parse_url(url)
    sock = _open_stream(host, port, secure, deadline, ssl_context)
    upgrade = _UpgradeSocket(sock, deadline, api_key)
    try:
        ws = websocket.create_connection(
            url,
            timeout=None,
            class_=BufferedWebSocket,
            socket=upgrade,
            header=[f"Authorization: Bearer {api_key}"],
            suppress_origin=True,
            enable_multithread=True,
            # orjson checks UTF-8 when it decodes (in C); websocket-client's pure-Python
            # check costs ~200 us per kilobyte and would fail the whole connection.
            skip_utf8_validation=True,
            # A redirect would carry the Bearer key to wherever it points (and the answer
            # never reaches websocket-client anyway: _UpgradeSocket refuses it).
            redirect_limit=0,
        )
        if not isinstance(ws, BufferedWebSocket) or not upgrade.fully_served():
            raise _unparsed_answer()
    except ConnectFailed:
        upgrade.close()
        raise
    except websocket.WebSocketException:
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
    ws.sock = sock
    ws.settimeout(None)
    ws.clock = clock
    ws.adopt_received(upgrade.after_head)
    return ws


# --- reading and sending frames ------------------------------------------------------------


class _BoundedFrameBuffer(frame_buffer):
    """websocket-client's frame reader, refusing a frame whose header announces more
    than we accept, instead of reading (and holding) whatever length a server claims."""

    def recv_length(self) -> None:
        super().recv_length()
        if self.length is not None and self.length > spec.MAX_FRAME_BYTES:
            raise FrameTooLarge(
                f"frame of {self.length} bytes exceeds the limit of {spec.MAX_FRAME_BYTES}"
            )


class _LinearMessageJoiner(continuous_frame):
    """websocket-client's fragment joiner, keeping the fragments in a list joined once at
    the end: its own ``data += fragment`` costs time quadratic in the fragment count."""

    def __init__(self, fire_cont_frame: bool, skip_utf8_validation: bool) -> None:
        super().__init__(fire_cont_frame, skip_utf8_validation)
        self._fragments: list[bytes] = []

    def add(self, frame: ABNF) -> None:
        if self.cont_data is None:
            if frame.opcode in (ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY):
                self.recving_frames = frame.opcode
            self.cont_data = [frame.opcode, b""]
            self._fragments = []
        data = frame.data
        self._fragments.append(data.encode() if isinstance(data, str) else data)
        if frame.fin:
            self.recving_frames = None

    def extract(self, frame: ABNF) -> tuple[int, ABNF]:
        if self.cont_data is None:
            raise websocket.WebSocketProtocolException("No continuation data available")
        opcode: int = self.cont_data[0]
        self.cont_data = None
        frame.data = b"".join(self._fragments)
        self._fragments = []
        if (
            not self.fire_cont_frame
            and opcode == ABNF.OPCODE_TEXT
            and not self.skip_utf8_validation
            and not validate_utf8(frame.data)
        ):
            raise websocket.WebSocketPayloadException("cannot decode: invalid UTF-8 text")
        return opcode, frame


def client_text_frame(data: bytes, mask_key: bytes) -> bytes:
    """One unfragmented, masked text frame, byte for byte what websocket-client's
    ``ABNF.create_frame(data, OPCODE_TEXT).format()`` makes with the same mask key
    (tests/test_connection.py compares them), in a few operations instead of its
    per-frame object, validation and byte arrays."""
    length = len(data)
    if length < 126:
        header = bytes((_FIN_TEXT, 0x80 | length))
    elif length < 1 << 16:
        header = bytes((_FIN_TEXT, 0xFE)) + length.to_bytes(2, "big")
    else:
        header = bytes((_FIN_TEXT, 0xFF)) + length.to_bytes(8, "big")
    # XOR with the key repeated over the payload, as one big integer operation.
    key = (mask_key * (length // 4 + 1))[:length]
    masked = (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(
        length, "little"
    )
    return header + mask_key + masked


class BufferedWebSocket(websocket.WebSocket):
    """websocket-client reads a frame as 2 + 2/8 + n byte reads; this serves them from
    one large ``recv`` instead, so a burst of frames costs one system call, not three
    per frame.  On top of that it bounds:

    - frame and message sizes (:class:`FrameTooLarge`, spec.MAX_FRAME_BYTES) and the
      fragments of one message (:class:`TooManyFragments`);
    - a frame's completion: once its first byte is read, its last must follow within
      ``frame_timeout`` seconds (:class:`FrameTimeout`); for a frame begun in an earlier
      burst, counted from when we first wait for its rest.  Between frames there is no
      deadline from here;
    - each frame sent, pongs and close frames included: the socket must take it within
      ``send_timeout`` seconds (:class:`SendBlocked`); ``recv_data_frame`` can raise it
      too, when it answers a ping or a close.

    The deadlines set the socket's timeout for the duration of one read or send (and
    restore it), so reads and sends belong in one thread, as in the socket thread.
    Nothing of the library is patched: only its documented ``class_`` extension point is
    used, and the reader and joiner objects it builds are our subclasses of its own."""

    def __init__(
        self,
        *args: Any,
        frame_timeout: float = spec.FRAME_COMPLETION_TIMEOUT_SECONDS,
        send_timeout: float = spec.SEND_TIMEOUT_SECONDS,
        clock: Clock = time.monotonic,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.frame_timeout = frame_timeout
        self.send_timeout = send_timeout
        self.clock = clock
        self._chunk = b""
        self._offset = 0
        # The frame deadline runs from _frame_began_at: when the frame's first byte was
        # read off the socket, or, for a frame begun in an earlier burst, when we first
        # had to wait for more of it (so a slow consumer does not count against it).
        self._frame_started = False
        self._frame_began_at: float | None = None
        self._message_bytes = 0
        self._message_fragments = 0
        self._mask_keys = b""  # random bytes from the OS, 4 per frame sent
        self._mask_offset = 0
        self.frame_buffer = _BoundedFrameBuffer(self._recv, self.frame_buffer.skip_utf8_validation)
        self.cont_frame = _LinearMessageJoiner(
            self.cont_frame.fire_cont_frame, self.cont_frame.skip_utf8_validation
        )

    # --- reading ------------------------------------------------------------------------

    def recv_frame(self) -> ABNF:
        frame: ABNF = super().recv_frame()  # type: ignore[no-untyped-call]
        # Only a complete frame ends the deadline: after an exception mid-frame, the
        # reader resumes the same frame, still against the same start.
        self._frame_started = False
        self._frame_began_at = None
        if frame.opcode in (ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY):
            self._message_bytes = len(frame.data)
            self._message_fragments = 1
        elif frame.opcode == ABNF.OPCODE_CONT:
            self._message_bytes += len(frame.data)
            self._message_fragments += 1
        else:
            return frame  # control frames sit between fragments without counting
        if self._message_bytes > spec.MAX_FRAME_BYTES:
            raise FrameTooLarge(
                f"fragmented message over the limit of {spec.MAX_FRAME_BYTES} bytes"
            )
        if self._message_fragments > spec.MAX_FRAGMENTS_PER_MESSAGE:
            raise TooManyFragments(
                f"message split into more than {spec.MAX_FRAGMENTS_PER_MESSAGE} fragments"
            )
        return frame

    def read_buffered_text(self) -> list[bytes]:
        """Whole text frames already read from the socket, in order, without
        websocket-client's per-frame machinery: the fast path for a stream's frames.

        Only the plain case is parsed here: FIN set, no RSV bits, opcode text, unmasked,
        a 7- or 16-bit length (so at most 64 KiB), all of it buffered.  At the first frame
        that is anything else (a control frame, a fragment, a longer or incomplete frame,
        anything malformed) it stops and leaves the frame to ``recv_data_frame``, with
        every limit and deadline of the slow path.  Never reads from the socket."""
        reader = self.frame_buffer
        if (
            self.cont_frame.recving_frames is not None  # inside a fragmented message
            or not reader.needs_header()  # inside a frame the slow path began
            or reader.recv_buffer
        ):
            return []
        chunk, position = self._chunk, self._offset
        end = len(chunk)
        frames: list[bytes] = []
        append = frames.append
        while position + 2 <= end and chunk[position] == _FIN_TEXT:
            length = chunk[position + 1]
            if length < 126:
                start = position + 2
            elif length == 126 and position + 4 <= end:
                length = chunk[position + 2] << 8 | chunk[position + 3]
                start = position + 4
            else:  # masked (a server must not mask), a 64-bit length, or a split header
                break
            stop = start + length
            if stop > end:
                break
            append(chunk[start:stop])
            position = stop
        if frames:
            self._offset = position
            # Complete frames end any frame deadline; a frame left half in the buffer
            # began in this burst, so its deadline runs from when we first wait for it.
            self._frame_began_at = None
            self._frame_started = position < end
        return frames

    def fill(self) -> None:
        """One read from the socket when nothing is buffered (the caller has seen it
        readable, so this does not block)."""
        if self._offset >= len(self._chunk):
            self._chunk = self._read_chunk()
            self._offset = 0

    def _recv(self, bufsize: int) -> bytes:
        if self._offset >= len(self._chunk):
            self._chunk = self._read_chunk()
            self._offset = 0
        self._frame_started = True
        start = self._offset
        self._offset = min(start + bufsize, len(self._chunk))
        return self._chunk[start : self._offset]

    def _read_chunk(self) -> bytes:
        began = self._frame_began_at
        if began is None and (self._frame_started or self._tls_record_under_way()):
            # Part of the frame is in (or on the wire): from now on, the rest is late.
            began = self._frame_began_at = self.clock()
        if began is None:  # between frames: the caller's own timeout, if any, applies
            chunk: bytes = super()._recv(READ_CHUNK)  # type: ignore[no-untyped-call]
            self._frame_began_at = self.clock()  # the frame's first byte is in
        else:
            chunk = self._recv_before(began + self.frame_timeout)
        return chunk

    def _tls_record_under_way(self) -> bool:
        """A TLS socket can be readable yet block in ``recv`` (half a record arrived).
        Such a read has begun a frame as far as the deadline is concerned."""
        sock = self.sock
        if not isinstance(sock, ssl.SSLSocket) or sock.pending() > 0:
            return False
        # One poll (not a selector's create, register, wait and close): this runs for
        # every read between frames, heartbeats included.
        if hasattr(select, "poll"):  # no FD_SETSIZE limit
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable)

    def _recv_before(self, deadline: float) -> bytes:
        sock = self.sock
        if sock is None:
            raise websocket.WebSocketConnectionClosedException("Connection is closed")
        remaining = deadline - self.clock()
        if remaining <= 0:
            raise self._frame_timed_out()
        original = sock.gettimeout()
        if original is not None and original <= remaining:
            # The caller's own, shorter timeout applies (close() sets one, for instance).
            chunk: bytes = super()._recv(READ_CHUNK)  # type: ignore[no-untyped-call]
            return chunk
        sock.settimeout(remaining)
        try:
            chunk = super()._recv(READ_CHUNK)  # type: ignore[no-untyped-call]
        except websocket.WebSocketTimeoutException:
            raise self._frame_timed_out() from None
        finally:
            if self.sock is sock:  # still open (a closed connection drops its socket)
                sock.settimeout(original)
        return chunk

    def _frame_timed_out(self) -> FrameTimeout:
        return FrameTimeout(
            f"the server sent part of a frame but not the rest within {self.frame_timeout:g} s"
        )

    def adopt_received(self, data: bytes) -> None:
        """Bytes already read off this connection (past the upgrade answer): read first."""
        self._chunk = self._chunk[self._offset :] + data
        self._offset = 0

    def has_buffered_data(self) -> bool:
        """Bytes already read from the kernel (by us or by TLS) that select() cannot see."""
        if self._offset < len(self._chunk):
            return True
        return isinstance(self.sock, ssl.SSLSocket) and self.sock.pending() > 0

    # --- sending ------------------------------------------------------------------------

    def send_text(self, data: bytes | str) -> int:
        """Send one text frame (UTF-8 bytes, or a str) within ``send_timeout``; returns
        the bytes written.  Raises :class:`SendBlocked` when the server stopped reading.

        Framed here rather than through websocket-client's ``ABNF`` object: what we send
        is a heartbeat ack or a subscription request, and on an idle connection the ack
        is all the work there is (see :func:`client_text_frame`)."""
        payload = data.encode() if isinstance(data, str) else data
        frame = client_text_frame(payload, self._next_mask_key())
        with self.lock:
            self._send_within(frame, self.clock() + self.send_timeout)
        return len(frame)

    def _next_mask_key(self) -> bytes:
        """Four bytes from the OS's random source, fetched MASK_KEY_BATCH at a time: a
        heartbeat ack then costs one system call fewer.  Bytes held in memory are just
        as unpredictable to the network as fresh ones, which is what RFC 6455 asks of a
        mask."""
        if self.get_mask_key:
            key: bytes = self.get_mask_key(4)
            return key
        offset = self._mask_offset
        if offset >= len(self._mask_keys):
            self._mask_keys, offset = os.urandom(4 * MASK_KEY_BATCH), 0
        self._mask_offset = offset + 4
        return self._mask_keys[offset : offset + 4]

    def send_frame(self, frame: ABNF) -> int:
        """Every frame goes out here (websocket-client's pongs and close frames too), so
        none can block for longer than ``send_timeout``."""
        if self.get_mask_key:
            frame.get_mask_key = self.get_mask_key
        data = frame.format()
        with self.lock:
            self._send_within(data, self.clock() + self.send_timeout)
        return len(data)

    def _send_within(self, data: bytes, deadline: float) -> None:
        sock = self.sock
        if sock is None:
            raise websocket.WebSocketConnectionClosedException("socket is already closed.")
        view = memoryview(data)
        if not isinstance(sock, ssl.SSLSocket):
            # Nearly always the whole frame fits in the socket buffer: one send that cannot
            # block, and no timeout to set and restore (two system calls saved per send).
            try:
                view = view[sock.send(view, socket.MSG_DONTWAIT) :]
            except (BlockingIOError, InterruptedError):
                pass
            except (BrokenPipeError, ConnectionResetError):
                raise websocket.WebSocketConnectionClosedException(
                    "socket is already closed."
                ) from None
            if not view:
                return
        original = sock.gettimeout()
        try:
            while view:
                remaining = deadline - self.clock()
                if remaining <= 0:
                    raise self._send_blocked()
                if original is None or original == 0 or original > remaining:
                    sock.settimeout(remaining)
                try:
                    sent = sock.send(view)
                except TimeoutError:
                    raise self._send_blocked() from None
                except (ssl.SSLEOFError, BrokenPipeError, ConnectionResetError):
                    raise websocket.WebSocketConnectionClosedException(
                        "socket is already closed."
                    ) from None
                view = view[sent:]
        finally:
            if self.sock is sock:
                sock.settimeout(original)

    def _send_blocked(self) -> SendBlocked:
        return SendBlocked(
            f"the server stopped reading: could not send for {self.send_timeout:g} s"
        )
