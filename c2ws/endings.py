"""How a connection ends: the reason (an Enum) and its one-line detail.

Kept apart from the events so that the exit-code map can use it without loading them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class EndReason(Enum):
    """Why one connection ended.  Which of these are retried, and how soon, is decided in
    one place: :mod:`c2ws.delivery.backoff`."""

    STOPPED = "stopped"  # we closed it on request (Ctrl-C, --count, --timeout, stop())
    AUTH_FAILED = "auth-failed"  # HTTP 401 at the upgrade, or UNAUTHORIZED afterwards
    REFUSED = "refused"  # an HTTP status, redirect, URL or certificate retrying cannot fix
    BUSY = "busy"  # HTTP 429 / 503, or the documented 1008 close (per-key limit race)
    UNREACHABLE = "unreachable"  # DNS, refused, timeout, network or TLS trouble, HTTP 5xx
    LOST = "lost"  # the network connection broke after the upgrade
    SERVER_CLOSED = "server-closed"  # the server sent a close frame
    SILENT = "silent"  # nothing at all arrived for the silence timeout
    NO_CONNECTED = "no-connected"  # no connection.connected after the upgrade
    NO_ACK = "no-ack"  # a subscription.request went unanswered
    FRAME_STALLED = "frame-stalled"  # a frame started but never completed
    SEND_BLOCKED = "send-blocked"  # the server stopped reading what we send
    PROTOCOL_ERROR = "protocol-error"  # bad framing, or a frame/message over our limits
    OVERFLOW = "overflow"  # stdout fell --max-buffer behind: we closed, resume once drained
    BUG = "bug"  # an unexpected exception in the socket thread


@dataclass(frozen=True, slots=True)
class ConnectionEnd:
    """How one connection ended; ``detail`` is one line, already safe to print.
    ``retry_after``: seconds the server asked us to wait before trying again (its
    ``Retry-After`` header on a 429/503 answer), bounded by spec.MAX_RETRY_AFTER_SECONDS."""

    reason: EndReason
    detail: str = ""
    close_code: int | None = None
    retry_after: float | None = None
