"""Replay: a recording (or plain NDJSON output) back into the events a live run produced.

Sans-I/O: feed it the entries of :func:`c2ws.recording.read_entries` one by one, get the
events back, and render them with the very renderers of ``c2ws subscribe``.  The frames
go through the connection driver's own frame -> session -> events core
(:class:`~c2ws.net.driver.SessionFeed`, with the same
:class:`~c2ws.session.ClientSession` and :class:`~c2ws.delivery.dedupe.StreamFilter` as
live): each recorded connection is a recorded transport, its frames read from the file
and what the session sends going nowhere.  Each recorded connection is a
session subscribed, in the same order, to what its live twin was asked for (the
recording's header lists it, and the connections are planned as the engine plans them),
so the answers match their requests and every duplicate, jump and gap is judged again
exactly as it was.  Request ids carry a random prefix per connection: it is read from
the first answer, and the frames before it (``connection.connected``) wait for it, a
bounded few.

Plain NDJSON (``c2ws subscribe -o ndjson`` output) has no header and no control frames:
a synthetic ``connection.connected`` and one ``subscription.ack`` per stream first seen
are fed for it, and what they produce is not shown.  Its ``sequence.reset`` lines are
taken as written: the stream's cursor follows the new numbering from there.

Not reproduced: the socket threads' own events (reconnect waits, Traffic) and, for a
run with ``--state``, the cursors it started from (the replay starts from none).

Recordings hold no API key (the socket thread redacts frames before they are recorded),
but older ones may: given a :class:`~c2ws.redaction.KeyRedactor`, the replayer redacts
every frame and connection end with it first, as a live run would have.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Final

import orjson

from c2ws import events as ev
from c2ws import protocol, spec
from c2ws.delivery.dedupe import StreamFilter
from c2ws.delivery.shards import TooManySubscriptions, plan_shards
from c2ws.events import ConnectionEnd, EndReason, SubscriptionKey
from c2ws.lines import read_reset_object
from c2ws.net.driver import SessionFeed
from c2ws.recording import (
    BareMessage,
    Entry,
    RecordedEnd,
    RecordedFrame,
    RecordedSnapshot,
    RecordingHeader,
    Unusable,
)
from c2ws.redaction import KeyRedactor
from c2ws.session import ClientSession, SubscriptionLimitError, SubscriptionState

_REQUEST_ID: Final = re.compile(r"(.+)-([0-9]+)")
_FALLBACK_PREFIX: Final = "c2ws-replay"
_MAX_PREFIX: Final = spec.MAX_REQUEST_ID_LENGTH - 8
# Connections a recording may name (the engine opens one per 100 subscriptions).
_MAX_CONNECTIONS: Final = spec.MAX_SUBSCRIPTIONS_PER_KEY
# The synthetic frames fed for plain NDJSON are never shown; their time does not matter.
_SYNTHETIC_TIME: Final = protocol.format_timestamp(0)
_RESET_MARK: Final = spec.SEQUENCE_RESET.encode()


def _prefix_of(data: bytes | str) -> str | None:
    """The request-id prefix of the answer a frame carries, if it carries one."""
    try:
        message = protocol.decode(data)
    except protocol.MalformedMessage:
        return None
    if message.request_id is None:
        return None
    match = _REQUEST_ID.fullmatch(message.request_id)
    if match is None or len(match.group(1)) > _MAX_PREFIX:
        return None
    return match.group(1)


@dataclass
class _Connection:
    """One recorded connection: its frames come from the file, what its session sends
    goes nowhere."""

    shard: int
    session: ClientSession | None = None
    feed: SessionFeed | None = None
    pending: list[RecordedFrame] = field(default_factory=list)
    noted: bool = False


class _RecordedRun:
    """One recorded run: its connections, one stream filter per connection slot."""

    def __init__(self, header: RecordingHeader) -> None:
        self.keys = header.keys
        self.per_connection = header.per_connection
        try:
            self.plan = plan_shards(header.keys, per_connection=header.per_connection)
        except TooManySubscriptions:
            self.plan = [list(header.keys)]
        self.filters = [StreamFilter(keys, {}) for keys in self.plan]
        self.rejected: list[set[SubscriptionKey]] = [set() for _ in self.plan]
        self.connections: dict[int, _Connection] = {}

    def _slot(self, shard: int) -> bool:
        """Make room for connection slot ``shard`` (a recording may name one the header
        did not plan: it subscribes to nothing)."""
        if shard >= _MAX_CONNECTIONS:
            return False
        while len(self.plan) <= shard:
            self.plan.append([])
            self.filters.append(StreamFilter((), {}))
            self.rejected.append(set())
        return True

    def frame(self, frame: RecordedFrame) -> list[ev.Event]:
        shard = frame.connection - 1
        if not self._slot(shard):
            return []
        connection = self.connections.setdefault(shard, _Connection(shard))
        if connection.session is None:
            prefix = _prefix_of(frame.data)
            if prefix is None and len(connection.pending) < spec.REPLAY_MAX_PENDING_FRAMES:
                connection.pending.append(frame)
                return []
            return self._open(connection, prefix or _FALLBACK_PREFIX, [*connection.pending, frame])
        return self._receive(connection, frame)

    def _open(
        self, connection: _Connection, prefix: str, frames: list[RecordedFrame]
    ) -> list[ev.Event]:
        shard = connection.shard
        start = frames[0].at or 0.0
        session = ClientSession(
            request_id_prefix=prefix, stream_filter=self.filters[shard], now=start,
            shard=shard, max_subscriptions=max(self.per_connection, len(self.plan[shard]), 1),
        )
        for key in self.plan[shard]:
            if key not in self.rejected[shard]:
                session.subscribe(key, now=start, wall=start)
        connection.session, connection.pending = session, []
        connection.feed = SessionFeed(session, shard=shard)
        events: list[ev.Event] = []
        for frame in frames:
            events.extend(self._receive(connection, frame))
        return events

    def _receive(self, connection: _Connection, frame: RecordedFrame) -> list[ev.Event]:
        session, feed = connection.session, connection.feed
        assert session is not None and feed is not None
        at = frame.at or 0.0
        data = frame.data
        # As bytes, the frame is written as it came (a str would be re-encoded from its
        # decoded JSON); read_entries gives bytes, a frame built by hand may be text.
        feed.message(data.encode("utf-8", "surrogatepass") if type(data) is str else data,
                     at, at)
        feed.outgoing(at)  # what the live session sent is not ours to send
        if not connection.noted and session.all_answered:
            # As the socket thread does: a rejected subscription is not asked for again.
            connection.noted = True
            self.rejected[connection.shard].update(
                sub.key for sub in session.subscriptions.values()
                if sub.state is SubscriptionState.REJECTED
            )
        return feed.take_events()

    def end(self, end: RecordedEnd) -> list[ev.Event]:
        shard = end.connection - 1
        connection = self.connections.pop(shard, None)
        if connection is None:
            return []
        events: list[ev.Event] = []
        if connection.session is None and connection.pending:
            events.extend(self._open(connection, _FALLBACK_PREFIX, connection.pending))
        session = connection.session
        try:
            reason = EndReason(end.reason)
        except ValueError:
            reason = EndReason.LOST
        was_connected = session is not None and session.connected_at is not None
        events.append(ev.ConnectionEnded(shard, ConnectionEnd(reason, end.detail), was_connected))
        return events

    def finish(self) -> list[ev.Event]:
        events: list[ev.Event] = []
        for connection in list(self.connections.values()):
            if connection.session is None and connection.pending:
                events.extend(self._open(connection, _FALLBACK_PREFIX, connection.pending))
        for stream_filter in self.filters:
            events.extend(stream_filter.unresolved_gaps())
        return events


def _reset_of(data: bytes) -> ev.SequenceReset | None:
    if _RESET_MARK not in data:
        return None
    try:
        return read_reset_object(orjson.loads(data))
    except ValueError:
        return None


class _BareRun:
    """Plain NDJSON output: one synthetic connection, subscribed as streams appear."""

    def __init__(self) -> None:
        self.filter = StreamFilter((), {})
        self.session = ClientSession(
            request_id_prefix=_FALLBACK_PREFIX, stream_filter=self.filter, now=0.0,
            max_subscriptions=spec.MAX_SUBSCRIPTIONS_PER_KEY,
        )
        connected = protocol.server_message(spec.MSG_CONNECTED, message_id="replay",
                                            timestamp=_SYNTHETIC_TIME, payload={})
        self.session.receive(protocol.encode(connected), now=0.0, wall=0.0)
        self.session.events_received()  # synthetic: not shown
        self.feed = SessionFeed(self.session)

    def message(self, bare: BareMessage) -> list[ev.Event]:
        at = bare.at or 0.0
        reset = _reset_of(bare.data)
        if reset is not None:
            # The live run's verdict, written down: no server frame stands for it.
            if reset.key not in self.session.subscriptions:
                self._subscribe(reset.key, at)
            self.filter.follow_reset(reset)
            return [reset]
        key = self._key_of(bare.data)
        if key is not None and key not in self.session.subscriptions:
            self._subscribe(key, at)
        self.feed.message(bare.data, at, at)
        self.feed.outgoing(at)
        return self.feed.take_events()

    @staticmethod
    def _key_of(data: bytes) -> SubscriptionKey | None:
        try:
            message = protocol.decode(data)
        except protocol.MalformedMessage:
            return None
        if message.msg_type in spec.STREAM_MSG_TYPES:
            strategy_id = protocol.strategy_id_of(message.payload)
            return SubscriptionKey(strategy_id, message.msg_type) if strategy_id else None
        if message.msg_type == spec.MSG_GAP:
            strategy_id = protocol.parse_int(message.payload.get("strategy_id"))
            if strategy_id is not None and strategy_id > 0:
                return SubscriptionKey(strategy_id, spec.CHANNEL_SIGNAL)
        return None

    def _subscribe(self, key: SubscriptionKey, at: float) -> None:
        try:
            self.session.subscribe(key, now=at, wall=at)
        except SubscriptionLimitError:
            return
        for request in self.session.data_to_send():
            request_id = protocol.decode(request).request_id
            ack = protocol.server_message(
                spec.MSG_SUBSCRIPTION_ACK, message_id="replay", timestamp=_SYNTHETIC_TIME,
                payload={"action": spec.ACTION_SUBSCRIBE, "channel": key.channel,
                         "strategy_id": key.strategy_id},
                request_id=request_id,
            )
            self.session.receive(protocol.encode(ack), now=at, wall=at)
        self.session.events_received()  # synthetic: not shown

    def finish(self) -> list[ev.Event]:
        return list(self.filter.unresolved_gaps())


def _redacted(entry: Entry, redactor: KeyRedactor) -> Entry:
    """``entry`` without the API key (a recording made before frames were redacted)."""
    if isinstance(entry, RecordedFrame):
        return replace(entry, data=redactor.redact_frame(entry.data))
    if isinstance(entry, BareMessage):
        return replace(entry, data=redactor.redact_frame(entry.data))
    if isinstance(entry, RecordedEnd):
        return replace(entry, detail=redactor.redact_text(entry.detail))
    return entry


class Replayer:
    """Feeds recording entries through client sessions; see the module docstring.

    ``skipped`` counts unusable lines (and recorded connections past the bound)."""

    def __init__(self, redactor: KeyRedactor | None = None) -> None:
        self._run: _RecordedRun | _BareRun | None = None
        self._redactor = redactor
        self.skipped = 0
        self.skip_reasons: list[str] = []

    def feed(self, entry: Entry) -> list[ev.Event]:
        if self._redactor is not None:
            entry = _redacted(entry, self._redactor)
        if isinstance(entry, RecordingHeader):
            events = self.finish()
            self._run = _RecordedRun(entry)
            return events
        if isinstance(entry, BareMessage):
            events = []
            if not isinstance(self._run, _BareRun):
                events = self.finish()
                self._run = _BareRun()
            return events + self._run.message(entry)
        if isinstance(entry, RecordedSnapshot):
            # Taken from the REST API by the run, beside its connections: shown again as is.
            return [ev.PositionsSnapshot(entry.strategy_id, entry.positions, entry.taken_at,
                                         entry.obj)]
        if isinstance(entry, (RecordedFrame, RecordedEnd)):
            if not isinstance(self._run, _RecordedRun):
                # Frames with no header before them: nothing was asked for.
                events = self.finish()
                self._run = _RecordedRun(RecordingHeader(keys=()))
                return events + self._recorded(self._run, entry)
            return self._recorded(self._run, entry)
        self._skip(entry)
        return []

    @staticmethod
    def _recorded(run: _RecordedRun, entry: RecordedFrame | RecordedEnd) -> list[ev.Event]:
        return run.frame(entry) if isinstance(entry, RecordedFrame) else run.end(entry)

    def _skip(self, entry: Unusable) -> None:
        self.skipped += 1
        if len(self.skip_reasons) < 3:
            self.skip_reasons.append(entry.reason)

    def finish(self) -> list[ev.Event]:
        """The end of the current run: frames still waiting, then gaps whose far end
        never came (as a live run reports them when it stops)."""
        run, self._run = self._run, None
        return run.finish() if run is not None else []
