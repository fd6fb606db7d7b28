"""Events the client session emits and the renderers consume.

Renderers never see raw frames: everything the user can be shown is one of these.
"""

from __future__ import annotations

from dataclasses import dataclass

from c2ws.protocol import Envelope, ErrorDetail


@dataclass(frozen=True, slots=True)
class SubscriptionKey:
    strategy_id: int
    channel: str

    def __str__(self) -> str:
        return f"{self.channel}:{self.strategy_id}"


@dataclass(frozen=True, slots=True)
class Connected:
    """``connection.connected`` arrived: the connection is ready."""

    message: Envelope


@dataclass(frozen=True, slots=True)
class SubscriptionConfirmed:
    key: SubscriptionKey
    request_id: str
    message: Envelope


@dataclass(frozen=True, slots=True)
class SubscriptionRejected:
    key: SubscriptionKey
    request_id: str
    errors: tuple[ErrorDetail, ...]
    message: Envelope


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    key: SubscriptionKey
    message: Envelope


@dataclass(frozen=True, slots=True)
class StreamMessage:
    """A ``strategy.signal`` or ``strategy.positions`` message, new to this client."""

    key: SubscriptionKey | None  # None: the payload named no strategy we could place
    message: Envelope


@dataclass(frozen=True, slots=True)
class DuplicateDropped:
    """A replayed or repeated stream message already delivered (seq_id not above cursor)."""

    key: SubscriptionKey
    seq_id: int


@dataclass(frozen=True, slots=True)
class GapReported:
    """The server could not replay everything: signals after ``last_replayed`` are missing."""

    strategy_id: int | None
    channel: str
    last_replayed: int | None
    text: str
    message: Envelope


@dataclass(frozen=True, slots=True)
class SequenceJump:
    """A stream's seq_id skipped ahead with no ``gap`` message: possible silent loss."""

    key: SubscriptionKey
    expected: int
    received: int


@dataclass(frozen=True, slots=True)
class HeartbeatAnswered:
    message: Envelope


@dataclass(frozen=True, slots=True)
class ServerError:
    """An ``error`` message not tied to one of our subscription requests."""

    errors: tuple[ErrorDetail, ...]
    message: Envelope


@dataclass(frozen=True, slots=True)
class OtherControl:
    """Control traffic with nothing to act on: an ack we did not ask for, or
    ``connection.disconnected``."""

    message: Envelope


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    """A msg_type this client does not know: skipped, with a warning."""

    message: Envelope


@dataclass(frozen=True, slots=True)
class MalformedFrame:
    """A frame that could not be decoded; ``reason`` is already safe to print."""

    reason: str
    size: int


@dataclass(frozen=True, slots=True)
class ConnectionStale:
    """Nothing arrived for too long: the connection is presumed dead."""

    silent_for: float


Event = (
    Connected
    | SubscriptionConfirmed
    | SubscriptionRejected
    | Unsubscribed
    | StreamMessage
    | DuplicateDropped
    | GapReported
    | SequenceJump
    | HeartbeatAnswered
    | ServerError
    | OtherControl
    | UnknownMessage
    | MalformedFrame
    | ConnectionStale
)
