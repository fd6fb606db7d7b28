"""What the engine reports: session events, connection lifecycle, and how connections end.

Renderers and library callers never see raw frames: everything the user can be shown
is one of these small immutable classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from operator import countOf
from typing import NamedTuple, Protocol

import orjson

from c2ws.endings import ConnectionEnd, EndReason
from c2ws.protocol import Envelope, ErrorDetail, JsonObject

__all__ = ["ConnectionEnd", "EndReason"]  # re-exported: part of what the engine reports


class SubscriptionKey(NamedTuple):
    """One subscription: a strategy on a channel.  A tuple, so hashing it (per message,
    for the cursors) happens in C."""

    strategy_id: int
    channel: str

    def __str__(self) -> str:
        return f"{self.channel}:{self.strategy_id}"


# --- session events -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connected:
    """``connection.connected`` arrived: connection ``shard`` is ready."""

    message: Envelope
    shard: int = 0


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


@dataclass(slots=True)  # built per message: not frozen (3x cheaper); never mutated
class StreamMessage:
    """A ``strategy.signal`` or ``strategy.positions`` message, new to this client.

    ``cursor``: the seq_id the stream's cursor moves to once this message is written
    (None when the message carries no usable seq_id, or is held as suspect)."""

    key: SubscriptionKey | None  # None: the payload named no strategy we could place
    message: Envelope
    cursor: int | None = None


class StreamHead(Protocol):
    """The header fields of a stream frame, as :mod:`c2ws.stream_head` reads them."""

    @property
    def msg_type(self) -> str: ...
    @property
    def id(self) -> str | None: ...
    @property
    def seq_id(self) -> int | None: ...
    @property
    def request_id(self) -> str | None: ...
    @property
    def timestamp(self) -> str | None: ...
    @property
    def v(self) -> int | str | None: ...


class StreamRun:
    """Consecutive stream messages of one subscription that arrived together (a burst
    of one socket read), each the next of its stream: one event instead of one
    :class:`StreamMessage` per message, the same messages in the same order
    (:meth:`messages`).  Only sessions of pass-through consumers (frames not decoded,
    ``EngineConfig.message_runs``) make them.

    ``ndjson``: the messages' frames as received, each followed by a newline (a run
    holds only frames without line breaks, so this is exactly what NDJSON output writes
    of them); ``count``: how many; ``cursor``: the seq_id of the last, where the stream's
    cursor moves once the run is written; :attr:`heads`: their header fields, in order
    (read when first asked for, unless the session had them already)."""

    __slots__ = ("_heads", "count", "cursor", "key", "ndjson")

    def __init__(self, key: SubscriptionKey, ndjson: bytes, count: int, cursor: int,
                 heads: Sequence[StreamHead] | None = None) -> None:
        self.key = key
        self.ndjson = ndjson
        self.count = count
        self.cursor = cursor
        self._heads = heads

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return (f"StreamRun(key={self.key!r}, count={self.count}, cursor={self.cursor}, "
                f"ndjson=<{len(self.ndjson)} bytes>)")

    def __eq__(self, other: object) -> bool:
        if type(other) is not StreamRun:
            return NotImplemented
        return (self.key, self.ndjson, self.count, self.cursor) == (
            other.key, other.ndjson, other.count, other.cursor)

    __hash__ = None  # type: ignore[assignment]

    @property
    def heads(self) -> Sequence[StreamHead]:
        """The messages' header fields, in order."""
        if self._heads is None:
            from c2ws.stream_head import read_burst_heads

            heads = read_burst_heads(self.ndjson, self.count)
            if heads is None:  # the session admitted these lines: they read as ever
                raise AssertionError("a run's lines no longer read as its messages")
            self._heads = heads
        return self._heads

    @property
    def frames(self) -> list[bytes]:
        """Each message's frame (made now, one bytes object each)."""
        frames = self.ndjson.split(b"\n")
        frames.pop()  # after the last newline
        return frames

    def split(self, keep: int) -> tuple[StreamRun, StreamRun]:
        """The first ``keep`` messages and the rest, as two runs (0 < keep < count): for
        a consumer that may take only so many messages at once (grouped commits)."""
        if not 0 < keep < self.count:
            raise ValueError(f"a run of {self.count} cannot keep {keep}")
        heads = self.heads
        end = -1
        for _ in range(keep):  # the keep-th newline ends the first part
            end = self.ndjson.index(b"\n", end + 1)
        cut = end + 1
        cursor = heads[keep - 1].seq_id
        assert cursor is not None  # a run holds placed messages only
        first = StreamRun(self.key, self.ndjson[:cut], keep, cursor, heads[:keep])
        rest = StreamRun(self.key, self.ndjson[cut:], self.count - keep, self.cursor,
                         heads[keep:])
        return first, rest

    def messages(self) -> list[StreamMessage]:
        """The run as the :class:`StreamMessage` events it stands for (built now)."""
        key = self.key
        return [
            StreamMessage(key, Envelope(head.msg_type, {}, head.id, head.seq_id,
                                        head.request_id, head.timestamp, head.v, {}, data),
                          head.seq_id)
            for data, head in zip(self.frames, self.heads, strict=True)
        ]


def message_count(events: Sequence[Event]) -> int:
    """How many stream messages ``events`` hold, a run counting as its messages (C speed
    but for the runs: it runs per hand-over)."""
    count = countOf(map(type, events), StreamMessage)
    if countOf(map(type, events), StreamRun):
        count += sum(len(event) for event in events if type(event) is StreamRun)
    return count


def split_run(event: Event, keep: int) -> tuple[Event, Event]:
    """:meth:`StreamRun.split` for a hand-off of any events (only runs hold more than
    one message, so only runs are ever split)."""
    assert type(event) is StreamRun
    return event.split(keep)


def expand_runs(events: list[Event]) -> list[Event]:
    """``events`` with every :class:`StreamRun` replaced by its messages (``events``
    itself when it holds none)."""
    if not countOf(map(type, events), StreamRun):
        return events
    expanded: list[Event] = []
    for event in events:
        if type(event) is StreamRun:
            expanded.extend(event.messages())
        else:
            expanded.append(event)
    return expanded


@dataclass(slots=True)  # built per message: not frozen (3x cheaper); never mutated
class DuplicateDropped:
    """A replayed message already delivered (seq_id not above the cursor); in a replay, a
    message at or below the cursor is held aside until it is known not to start a
    :class:`SequenceReset`."""

    key: SubscriptionKey
    seq_id: int


@dataclass(frozen=True, slots=True)
class SequenceBackwards:
    """Outside a replay, a seq_id at or below the cursor: not delivered; held aside in case
    the stream was renumbered (:class:`SequenceReset`), else dropped."""

    key: SubscriptionKey
    cursor: int
    received: int


@dataclass(frozen=True, slots=True)
class SequenceReset:
    """The server restarted a stream's numbering (or the cursor was ahead of it): the
    messages at or below the cursor persisted (see ``spec.REPLAY_WINDOW_SECONDS``).
    ``last_seq``: the old cursor (``last_timestamp``: its message's, None when it came
    from a state file); ``next_seq``: the first seq_id of the new numbering c2ws
    received; ``released``: how many held-aside messages follow this event, delivered.
    ``cursor``: where the stream's cursor moves once this is written, just before
    ``next_seq``, so a restart resumes in the new numbering."""

    key: SubscriptionKey
    last_seq: int
    last_timestamp: str | None
    next_seq: int
    next_timestamp: str | None
    released: int
    cursor: int

    @property
    def strategy_id(self) -> int:
        return self.key.strategy_id

    @property
    def channel(self) -> str:
        return self.key.channel


@dataclass(frozen=True, slots=True)
class SequenceJump:
    """A stream's seq_id skipped ahead with no ``gap`` message: possible silent loss.
    ``suspect``: the jump is implausibly large; the message is delivered but the cursor
    stays put unless the next message continues from it."""

    key: SubscriptionKey
    expected: int
    received: int
    suspect: bool = False


@dataclass(frozen=True, slots=True)
class GapAnnounced:
    """The server said it could not replay everything after ``last_seq`` (stderr at once;
    :class:`GapReported` follows when the far end of the hole is known)."""

    key: SubscriptionKey
    last_seq: int | None
    text: str
    message: Envelope


@dataclass(frozen=True, slots=True)
class GapReported:
    """A hole the server could not fill: every seq_id strictly between ``last_seq`` and
    ``next_seq`` is missing (``next_seq`` None: no message has arrived after it yet).
    The timestamps are those of the messages at both ends, so a script can backfill."""

    key: SubscriptionKey
    last_seq: int | None
    last_timestamp: str | None
    next_seq: int | None
    next_timestamp: str | None
    text: str
    message: Envelope

    @property
    def strategy_id(self) -> int:
        return self.key.strategy_id

    @property
    def channel(self) -> str:
        return self.key.channel


@dataclass(frozen=True, slots=True)
class GapFilled:
    """An announced gap turned out to be filled by a later replay: nothing is missing."""

    key: SubscriptionKey
    last_seq: int | None


@dataclass(slots=True)  # built per message: not frozen (3x cheaper); never mutated
class HeartbeatAnswered:
    """A server ``heartbeat`` on connection ``shard``, answered at once."""

    message: Envelope
    shard: int = 0


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
class UnexpectedStream:
    """A stream message or gap for a strategy/channel we are not subscribed to: dropped,
    and no state is kept for it."""

    strategy_id: int | None
    channel: str


@dataclass(frozen=True, slots=True)
class MalformedFrame:
    """A frame that could not be decoded; ``reason`` is already safe to print."""

    reason: str
    size: int


@dataclass(slots=True)  # built per message: not frozen (3x cheaper); never mutated
class Traffic:
    """One frame in (``<``) or out (``>``) on connection ``shard``, as it crossed the wire
    but for the API key (redacted, see :mod:`c2ws.redaction`), with the wall-clock time
    it did (``EngineConfig.traffic``: for ``-v`` and for recordings; renderers escape it)."""

    direction: str
    data: bytes | str
    shard: int = 0
    at: float = 0.0


# --- from the REST API (issue 24: --snapshot, --heal-gaps) -------------------------------
# Not engine events: c2ws.stream() adds them to what it delivers, in order with the
# stream.  None of them is a stream message: no seq_id, no cursor of its own.  ``obj``
# is the line c2ws writes for it (c2ws/rest/lines.py), ``line`` that object compact.


@dataclass(frozen=True, slots=True)
class PositionsSnapshot:
    """The open positions of ``strategy_id`` as the REST API gave them at ``taken_at``
    (UTC ISO 8601): ``positions`` are the REST ``PositionDTO`` objects, as received."""

    strategy_id: int
    positions: tuple[JsonObject, ...]
    taken_at: str
    obj: JsonObject

    @property
    def line(self) -> bytes:
        return orjson.dumps(self.obj)


@dataclass(frozen=True, slots=True)
class SnapshotFailed:
    """The REST snapshot of ``strategy_id`` could not be taken (a warning: the stream
    goes on); ``reason`` is one line, safe to print."""

    strategy_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class BackfillOrder:
    """An order of the REST order history that fills ``gap`` (the stream did not deliver
    its SignalId): written right after the gap, before the first signal after the hole."""

    key: SubscriptionKey
    order: JsonObject
    gap: GapReported
    obj: JsonObject

    @property
    def line(self) -> bytes:
        return orjson.dumps(self.obj)


@dataclass(frozen=True, slots=True)
class BackfillFailed:
    """The backfill of ``gap`` failed after its retries (``written`` orders of it were
    written before it did, or it was cut at the backfill limit); ``reason``: one line."""

    key: SubscriptionKey
    gap: GapReported
    reason: str
    written: int
    obj: JsonObject

    @property
    def line(self) -> bytes:
        return orjson.dumps(self.obj)


@dataclass(frozen=True, slots=True)
class BackfillDone:
    """What the backfill of ``gap`` did (for stderr, through ``on_event``): ``written``
    orders, ``left_out`` ones the stream had delivered, the ``window`` asked for (the
    line's ``window`` object); ``failed``: a :class:`BackfillFailed` was written too."""

    key: SubscriptionKey
    gap: GapReported
    written: int
    left_out: int
    window: JsonObject
    failed: bool


# --- connection lifecycle (from the socket threads) -------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectionEnded:
    """Connection ``shard`` ended; ``was_connected``: it had reached connection.connected."""

    shard: int
    end: ConnectionEnd
    was_connected: bool


@dataclass(frozen=True, slots=True)
class Reconnecting:
    """Connection ``shard`` will try again after ``delay`` seconds (None: once stdout's
    reader has caught up).  ``attempt`` counts consecutive failures, from 1.
    ``retry_after``: the wait the server asked for (its Retry-After header), when it did;
    ``delay`` is then at least that long, unless --max-backoff (the cap) is shorter."""

    shard: int
    attempt: int
    delay: float | None
    after: ConnectionEnd
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class ProxySetting:
    """Once per run, before any connection: the environment names a proxy for the URL.
    ``variable``: the variable it came from (``http_proxy``, ``ALL_PROXY``...);
    ``scheme``: its URL's scheme; ``address``: host:port, never its credentials.
    ``used`` False: c2ws cannot use that kind of proxy (only HTTP CONNECT) and connects
    directly.  ``key_in_clear``: a ws:// URL through the proxy, so the API key crosses it
    in clear text (the proxy, and anyone on the way to it, can read it)."""

    variable: str
    scheme: str
    address: str
    used: bool
    key_in_clear: bool


@dataclass(frozen=True, slots=True)
class ShardFailed:
    """Connection ``shard`` gave up for good: the run ends with ``end``.  ``attempts``:
    its consecutive failures, this one included."""

    shard: int
    end: ConnectionEnd
    attempts: int = 1


@dataclass(frozen=True, slots=True)
class WorkerCrashed:
    """A bug: an unexpected exception in a socket thread.  ``summary`` is one line."""

    shard: int
    summary: str
    traceback: str


@dataclass(frozen=True, slots=True)
class SubscriptionsRequested:
    """A request to change the subscriptions of the running stream to ``keys`` (from
    ``Stream.set_subscriptions``, any thread): handed over like any other event so that
    the engine applies it on the consumer's thread, where it becomes a
    :class:`SubscriptionsChanged`.  ``source``: what asked (a file name), for the report."""

    keys: tuple[SubscriptionKey, ...]
    source: str = ""


@dataclass(frozen=True, slots=True)
class SubscriptionsChanged:
    """The subscriptions of the running stream changed without a reconnect: ``added``
    are being subscribed (on connections with room, a new one when none has),
    ``removed`` unsubscribed; the other streams and their cursors are untouched.
    ``plan``: the subscriptions of each connection now, in shard order; ``source``:
    what asked for the change."""

    added: tuple[SubscriptionKey, ...]
    removed: tuple[SubscriptionKey, ...]
    plan: tuple[tuple[SubscriptionKey, ...], ...]
    source: str = ""
    # Added, but no connection could take them (connections had given up for good).
    unplaced: tuple[SubscriptionKey, ...] = ()


Event = (
    Connected
    | SubscriptionConfirmed
    | SubscriptionRejected
    | Unsubscribed
    | StreamMessage
    | StreamRun
    | DuplicateDropped
    | SequenceBackwards
    | SequenceJump
    | SequenceReset
    | GapAnnounced
    | GapReported
    | GapFilled
    | HeartbeatAnswered
    | ServerError
    | OtherControl
    | UnknownMessage
    | UnexpectedStream
    | MalformedFrame
    | Traffic
    | ConnectionEnded
    | Reconnecting
    | ProxySetting
    | ShardFailed
    | WorkerCrashed
    | PositionsSnapshot
    | SnapshotFailed
    | BackfillOrder
    | BackfillFailed
    | BackfillDone
    | SubscriptionsRequested
    | SubscriptionsChanged
)
