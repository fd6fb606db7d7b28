"""The typed errors that end a stream: one class per ending a caller may handle
differently, each with exactly one exit status of ``c2ws subscribe`` (the one map is
:mod:`c2ws.exitcodes`).

``str()`` of each is one line, safe to print, and never contains the API key::

    C2wsError
    ├── ConfigError              2  bad settings: no or unusable key, bad URL, strategies
    ├── ConnectionFailed            a connection ended for good (``.end`` says how)
    │   ├── AuthenticationFailed 3  HTTP 401, or UNAUTHORIZED: missing or invalid key
    │   ├── CannotConnect        4  DNS, refused, TLS, timeout, an HTTP status, a redirect
    │   ├── ServerBusy           5  HTTP 429 / 503, or closed with 1008 (per-key limit)
    │   ├── ConnectionLost       6  dropped, closed or silent, and retries ran out
    │   │                           (or reconnect=False)
    │   └── BacklogOverflow      8  reconnect=False and the reader fell max_buffer behind
    ├── SubscriptionsRejected    7  every subscription was rejected
    ├── BacklogFull              8  max_buffer messages delivered and not acknowledged
    ├── StateFileError          10  the cursor store is corrupt, foreign, locked or failing
    ├── GapDetected             11  fail_on_gap: a gap, or a sequence reset, was delivered
    └── InternalError            1  a bug in c2ws (an unexpected exception in a thread)

Importing this module loads nothing else of c2ws but :mod:`c2ws.endings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Final

from c2ws.endings import ConnectionEnd, EndReason

if TYPE_CHECKING:
    from c2ws.events import SubscriptionKey

__all__ = [
    "AuthenticationFailed",
    "BacklogFull",
    "BacklogOverflow",
    "C2wsError",
    "CannotConnect",
    "ConfigError",
    "ConnectionFailed",
    "ConnectionLost",
    "EngineError",
    "GapDetected",
    "InternalError",
    "NothingToStream",
    "ServerBusy",
    "SinkFailed",
    "StateError",
    "StateFileError",
    "SubscriptionsRejected",
    "connection_error",
]


class C2wsError(Exception):
    """Base of every error that ends a stream (and of nothing else)."""


# The engine's name for the base, kept for the code and tests that know it.
EngineError = C2wsError


class ConfigError(C2wsError):
    """Bad settings: a key that cannot travel in a header, a bad URL, no strategies, too
    many subscriptions, an unusable config file.  ``param`` names the option at fault,
    when there is one (``--api-key``, ``--url``...)."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ConnectionFailed(C2wsError):
    """A connection ended in a way that is not retried, or retries ran out.  ``end``:
    how it ended (``end.reason``, ``end.detail``, ``end.close_code``).  Never raised as
    itself: :func:`connection_error` picks the subclass that says what to do about it.
    ``message`` replaces the one-line text (by default the end's detail)."""

    def __init__(self, end: ConnectionEnd, message: str | None = None) -> None:
        super().__init__(message or end.detail or end.reason.value)
        self.end = end


class AuthenticationFailed(ConnectionFailed):
    """The server refused the API key (HTTP 401 at the upgrade, or an UNAUTHORIZED error
    afterwards): it is missing, wrong or revoked.  Retrying cannot help."""


class CannotConnect(ConnectionFailed):
    """No connection could be opened: DNS, connection refused, TLS, a timeout, an HTTP
    status or a redirect at the upgrade."""


class ServerBusy(ConnectionFailed):
    """The server is overloaded or this key has too many connections (HTTP 429 / 503, or
    closed with 1008)."""


class ConnectionLost(ConnectionFailed):
    """An open connection was dropped, closed by the server or went silent, and it was
    not re-opened: retries ran out (``max_retries``) or ``reconnect=False``."""


class BacklogOverflow(ConnectionFailed):
    """``reconnect=False`` and the consumer fell ``max_buffer`` messages behind the
    connection: it was closed rather than let memory grow."""


class SubscriptionsRejected(C2wsError):
    """The server rejected every requested subscription: nothing to stream."""


# The engine's former name.
NothingToStream = SubscriptionsRejected


class BacklogFull(C2wsError):
    """``auto_ack=False`` and ``max_buffer`` messages were delivered and not
    acknowledged: the stream cannot take more without losing the exactly-once promise,
    so it says so instead of waiting for ever.  Acknowledge (``s.ack(msg)``) as you go,
    or use ``auto_ack=True``.  ``unacknowledged``: how many; ``max_buffer``: the limit."""

    def __init__(self, unacknowledged: int, max_buffer: int) -> None:
        super().__init__(
            f"{unacknowledged} messages delivered and not acknowledged: ack them "
            f"(s.ack(msg), cumulative) or use auto_ack=True; max_buffer={max_buffer}"
        )
        self.unacknowledged = unacknowledged
        self.max_buffer = max_buffer


class StateFileError(C2wsError):
    """The cursor store (``--state`` file, :class:`~c2ws.cursors.FileCursors`,
    :class:`~c2ws.cursors.SqliteCursors`) is corrupt, belongs to another endpoint or API
    key, is locked by another run, or cannot be read or written
    (:mod:`c2ws.delivery.state` has a subclass for each).  ``path``: the file, when the
    store is one."""

    kind: ClassVar[str] = "state"

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


# The state file's former name.
StateError = StateFileError


class GapDetected(C2wsError):
    """``fail_on_gap=True``: the server could not replay every missed signal of
    ``key`` (a gap), or restarted its numbering (``reset`` True).  Raised once the gap
    (or reset) and the message after it were delivered, so the cursor is past the hole
    and a rerun does not stop at the same place."""

    def __init__(self, message: str, *, key: SubscriptionKey, reset: bool = False) -> None:
        super().__init__(message)
        self.key = key
        self.reset = reset


class SinkFailed(C2wsError):
    """The sink could not take a message (issue 23): an ``--exec`` handler failed after
    its retries with ``--exec-fail stop``, or NATS JetStream did not acknowledge a
    publish (unreachable, no stream for the subject, a timeout).  What the sink had made
    durable before it is acknowledged; the message that failed is not."""


class InternalError(C2wsError):
    """A bug in c2ws (an unexpected exception in a socket thread): please report it.
    ``traceback``: the thread's traceback (never shown unless asked for)."""

    def __init__(self, summary: str, traceback: str = "") -> None:
        super().__init__(summary)
        self.traceback = traceback


_CONNECTION_ERRORS: Final[dict[EndReason, type[ConnectionFailed]]] = {
    EndReason.AUTH_FAILED: AuthenticationFailed,
    EndReason.REFUSED: CannotConnect,
    EndReason.UNREACHABLE: CannotConnect,
    EndReason.BUSY: ServerBusy,
    EndReason.OVERFLOW: BacklogOverflow,
}


def connection_error(end: ConnectionEnd, message: str | None = None) -> C2wsError:
    """The error for a connection that ended for good with ``end``: the
    :class:`ConnectionFailed` subclass of its reason (every ending not named above is
    :class:`ConnectionLost`), or :class:`InternalError` for a bug."""
    if end.reason is EndReason.BUG:
        return InternalError(message or end.detail or end.reason.value)
    return _CONNECTION_ERRORS.get(end.reason, ConnectionLost)(end, message)
