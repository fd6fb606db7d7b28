"""What a run has seen of its connections, subscriptions and output: sans-I/O, the clock
passed in.

:class:`StreamHealth` is fed on the consumer's thread with every event a stream passes to
``on_event`` (:meth:`StreamHealth.observe`) and every batch written
(:meth:`StreamHealth.written`); it tells when a connection came back
(:class:`Reconnected`, the line that ends a "reconnecting in 24.9 s"), whether heartbeats
flow on every connection (``/healthz``, systemd's watchdog), when every subscription was
first answered (systemd's ``READY=1``), and keeps the counters the metrics show.  Other
threads (the metrics server) read it through :meth:`StreamHealth.snapshot`.

**How many were replayed.**  Replayed signals look exactly like live ones (the protocol
marks nothing), so a reconnect's count is the signals of the connection's streams written
from its ``connection.connected`` until c2ws had caught up after the last subscription
answer: the server sends the replay right after each ``subscription.ack``, so that is the
replay, plus whatever went live within the same burst.  The line is said once the
backlog is empty after the last answer, or :data:`c2ws.spec.REPLAY_WINDOW_SECONDS` after
it at the latest, or when the connection ends again first.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from c2ws import events as ev
from c2ws import spec
from c2ws.events import SubscriptionKey

if TYPE_CHECKING:
    from c2ws.cursors import CursorStore
    from c2ws.streaming import Stream

__all__ = [
    "ConnectionSnapshot",
    "CountingCommits",
    "HealthSnapshot",
    "Reconnected",
    "StreamHealth",
    "socket_heartbeats",
]

_STREAM_MESSAGE: Final = ev.StreamMessage
_MESSAGES: Final = frozenset({ev.StreamMessage, ev.StreamRun})
_SIGNAL: Final = spec.CHANNEL_SIGNAL

# Why a message was dropped (the metric's ``reason`` label), by the event that says so.
DROP_REASONS: Final[dict[type, str]] = {
    ev.DuplicateDropped: "duplicate",
    ev.UnexpectedStream: "not_subscribed",
    ev.MalformedFrame: "malformed",
    ev.UnknownMessage: "unknown_type",
}


@dataclass(frozen=True)
class Reconnected:
    """Connection ``shard`` is back (``first``: it came up for the first time, after
    failed attempts) ``down_for`` seconds after it went down (or after the run started),
    on attempt ``attempt`` (0: the first try); ``renewed`` subscriptions confirmed and
    ``rejected`` refused on it; ``replayed``: signals of its streams written since (see
    the module docstring; None when it carries no signal stream)."""

    shard: int
    down_for: float
    attempt: int
    renewed: int
    rejected: int
    replayed: int | None
    first: bool = False

    def text(self) -> str:
        """The stderr line (without the ``c2ws:`` prefix)."""
        done = "connected" if self.first else "reconnected"
        attempt = f" (attempt {self.attempt})" if self.attempt else ""
        renewed = f"{self.renewed} subscription(s) {'confirmed' if self.first else 'renewed'}"
        if self.rejected:
            renewed += f", {self.rejected} rejected"
        if self.replayed is None:
            tail = "positions resume live"
        else:
            tail = f"{self.replayed} missed signal(s) replayed"
        return (f"connection {self.shard + 1} {done} after {self.down_for:.1f} s{attempt}: "
                f"{renewed}; {tail}")


@dataclass(frozen=True)
class ConnectionSnapshot:
    """One connection slot as last heard of (times are the health clock's)."""

    shard: int
    subscriptions: int
    up: bool
    up_since: float | None
    down_since: float | None
    last_heartbeat: float | None
    attempt: int
    gave_up: bool


@dataclass(frozen=True)
class HealthSnapshot:
    """A consistent copy of everything :class:`StreamHealth` counts, for another thread."""

    now: float
    started: float
    connections: tuple[ConnectionSnapshot, ...]
    requested: int
    active: int
    rejected: int
    ready: bool
    written: int
    written_per_stream: dict[SubscriptionKey, int]
    gaps: dict[SubscriptionKey, int]
    resets: dict[SubscriptionKey, int]
    dropped: dict[str, int]
    reconnects: dict[str, int]
    commits: int
    last_message: float | None
    heartbeat_deadline: float

    def heartbeat_age(self, connection: ConnectionSnapshot) -> float:
        """Seconds since the connection's last heartbeat (since the run started when none
        came yet: a run that never gets one is not healthy for ever)."""
        last = connection.last_heartbeat
        return self.now - (self.started if last is None else last)

    def message_age(self) -> float:
        """Seconds since the last message was written (since the start when none was)."""
        return self.now - (self.started if self.last_message is None else self.last_message)

    def unhealthy(self) -> list[str]:
        """Why the run is not healthy: each connection without a heartbeat for longer than
        ``heartbeat_deadline``; [] when heartbeats flow on every one."""
        return [
            f"no heartbeat on connection {c.shard + 1} for {self.heartbeat_age(c):.0f} s "
            f"(more than {self.heartbeat_deadline:g} s)"
            + ("" if c.up else "; it is down")
            for c in self.connections if self.heartbeat_age(c) > self.heartbeat_deadline
        ]


@dataclass
class _Connection:
    shard: int
    keys: tuple[SubscriptionKey, ...]
    signal_keys: frozenset[SubscriptionKey]
    up: bool = False
    ever_up: bool = False
    gave_up: bool = False
    up_since: float | None = None
    down_since: float | None = None
    last_heartbeat: float | None = None
    attempt: int = 0
    # The subscriptions of its current connection not answered yet, and whether they
    # all were (at least once: READY=1).
    pending: set[SubscriptionKey] = field(default_factory=set)
    answered_at: float | None = None
    ever_answered: bool = False
    # A connection that came back and whose line is not said yet.
    back: _Back | None = None


@dataclass
class _Back:
    down_for: float
    attempt: int
    first: bool
    renewed: int = 0
    rejected: int = 0
    replayed: int = 0


class StreamHealth:
    """See the module docstring.  ``plan``: the subscriptions of each connection, in the
    engine's order (:meth:`of` takes them from a stream).  ``count_streams``: also count
    the messages written per stream (for the metrics: a little work per message).
    ``heartbeat_deadline``: the longest a connection may go without a heartbeat and be
    healthy (the server's interval plus its grace, unless told shorter).
    ``heartbeats``: when each connection last had one, by its own account (read at each
    snapshot, on the same clock; :func:`socket_heartbeats` for the CLI), besides the
    ``HeartbeatAnswered`` events observed: a stream need not report heartbeats (an event
    per heartbeat wakes the consumer, which an idle run should not pay for)."""

    def __init__(
        self, plan: Sequence[Sequence[SubscriptionKey]], *,
        clock: Callable[[], float] = time.monotonic, count_streams: bool = False,
        heartbeat_deadline: float = spec.HEALTH_HEARTBEAT_DEADLINE_SECONDS,
        heartbeats: Callable[[], Mapping[int, float]] | None = None,
    ) -> None:
        self._clock = clock
        self._heartbeats = heartbeats
        self.count_streams = count_streams
        self.heartbeat_deadline = heartbeat_deadline
        self.started = clock()
        self._connections = [
            _Connection(shard, tuple(keys),
                        frozenset(key for key in keys if key.channel == _SIGNAL))
            for shard, keys in enumerate(plan)
        ]
        self._shard_of = {key: c.shard for c in self._connections for key in c.keys}
        self._active: set[SubscriptionKey] = set()
        self._rejected: set[SubscriptionKey] = set()
        self._written = 0
        self._per_stream: Counter[SubscriptionKey] = Counter()
        self._gaps: Counter[SubscriptionKey] = Counter()
        self._resets: Counter[SubscriptionKey] = Counter()
        self._dropped: Counter[str] = Counter()
        self._reconnects: Counter[str] = Counter()
        self._commits = 0
        self._last_message: float | None = None
        # Connections that came back and whose line is not said yet (a cheap test per
        # batch: nearly always False).
        self.coming_back = False
        # Reentrant: a signal handler (SIGUSR1's report) may read it on the thread that
        # holds it.
        self._lock = threading.RLock()

    @classmethod
    def of(cls, stream: Stream, **options: object) -> StreamHealth:
        """The health of ``stream`` (its subscriptions spread as its engine spreads them)."""
        from c2ws.delivery.shards import plan_shards

        plan = plan_shards(stream.keys, per_connection=stream.config.per_connection)
        return cls(plan, **options)  # type: ignore[arg-type]

    @property
    def plan(self) -> list[tuple[SubscriptionKey, ...]]:
        """The subscriptions of each connection."""
        return [c.keys for c in self._connections]

    @property
    def ready(self) -> bool:
        """Every connection has had each of its subscriptions answered (confirmed or
        rejected) at least once."""
        return all(c.ever_answered for c in self._connections)

    # --- feeding ----------------------------------------------------------------------------

    def observe(self, event: ev.Event) -> Reconnected | None:
        """An event the stream passed to ``on_event``; a connection's line that is due
        before it (the connection ends again before its replay was over), if any."""
        kind = type(event)
        if kind is ev.HeartbeatAnswered:  # the usual one: keep it short
            connection = self._connections[event.shard]  # type: ignore[union-attr]
            connection.last_heartbeat = self._clock()
            return None
        drop = DROP_REASONS.get(kind)
        with self._lock:
            if drop is not None:
                self._dropped[drop] += 1
                return None
            match event:
                case ev.Connected(shard=shard):
                    self._connected(self._connections[shard])
                case ev.ConnectionEnded(shard=shard):
                    return self._ended(self._connections[shard])
                case ev.Reconnecting(shard=shard, attempt=attempt, after=after):
                    self._connections[shard].attempt = attempt
                    self._reconnects[after.reason.value] += 1
                case ev.ShardFailed(shard=shard):
                    self._connections[shard].gave_up = True
                case ev.SubscriptionConfirmed(key=key):
                    self._active.add(key)
                    self._rejected.discard(key)
                    self._answered(key, confirmed=True)
                case ev.SubscriptionRejected(key=key):
                    self._active.discard(key)
                    self._rejected.add(key)
                    self._answered(key, confirmed=False)
                case ev.Unsubscribed(key=key):
                    self._active.discard(key)
                case ev.SubscriptionsChanged(removed=removed, plan=plan):
                    self._replan(plan, removed)
                case _:
                    pass
        return None

    def written(self, events: Sequence[ev.Event]) -> None:
        """A batch was written (the events of :attr:`c2ws.Batch.handed_events`: a
        :class:`~c2ws.events.StreamRun` counts as its messages)."""
        now = self._clock()
        with self._lock:
            if set(map(type, events)) <= _MESSAGES:
                messages: Sequence[ev.Event] = events
                count = ev.message_count(events)
                self._written += count
                if count:
                    self._last_message = now
                if not self.count_streams and not self.coming_back:
                    return
            else:
                messages = [e for e in events if type(e) in _MESSAGES]
                count = ev.message_count(messages)
                self._written += count
                if count:
                    self._last_message = now
                for event in events:
                    if isinstance(event, ev.GapReported):
                        self._gaps[event.key] += 1
                    elif isinstance(event, ev.SequenceReset):
                        self._resets[event.key] += 1
            keys = [event.key for event in messages
                    if type(event) is _STREAM_MESSAGE and event.key is not None]
            runs = [event for event in messages if isinstance(event, ev.StreamRun)]
            if self.count_streams:
                self._per_stream.update(keys)
                for run in runs:
                    self._per_stream[run.key] += run.count
            if self.coming_back:
                for connection in self._connections:
                    back = connection.back
                    if back is not None:
                        back.replayed += sum(key in connection.signal_keys for key in keys)
                        back.replayed += sum(
                            run.count for run in runs if run.key in connection.signal_keys)

    def committed(self) -> None:
        """The cursor store committed the cursors (the ``--state`` file was written)."""
        with self._lock:
            self._commits += 1

    def due(self, backlog: int) -> list[Reconnected]:
        """The lines of connections that came back and have caught up: every subscription
        answered and nothing received waits to be written (``backlog``: stream messages
        received and not yet written), or the replay window passed since the answers."""
        if not self.coming_back:
            return []
        now = self._clock()
        with self._lock:
            return self._take_lines(lambda c: c.answered_at is not None and (
                backlog == 0 or now - c.answered_at >= spec.REPLAY_WINDOW_SECONDS))

    def finish(self) -> list[Reconnected]:
        """The run ended: the lines still due of connections that came back."""
        with self._lock:
            return self._take_lines(lambda c: c.answered_at is not None)

    # --- reading ----------------------------------------------------------------------------

    def snapshot(self) -> HealthSnapshot:
        reported = self._heartbeats() if self._heartbeats is not None else {}
        with self._lock:
            return HealthSnapshot(
                now=self._clock(), started=self.started,
                connections=tuple(
                    ConnectionSnapshot(
                        c.shard, len(c.keys), c.up, c.up_since, c.down_since,
                        _latest(c.last_heartbeat, reported.get(c.shard)), c.attempt,
                        c.gave_up)
                    for c in self._connections),
                requested=len(self._shard_of), active=len(self._active),
                rejected=len(self._rejected), ready=self.ready, written=self._written,
                written_per_stream=dict(self._per_stream), gaps=dict(self._gaps),
                resets=dict(self._resets), dropped=dict(self._dropped),
                reconnects=dict(self._reconnects), commits=self._commits,
                last_message=self._last_message, heartbeat_deadline=self.heartbeat_deadline,
            )

    def summary(self, snapshot: HealthSnapshot | None = None) -> str:
        """One short line: connections up, subscriptions, messages written, the oldest
        heartbeat (systemd's STATUS=, the first line of SIGUSR1's report)."""
        snap = snapshot or self.snapshot()
        up = sum(c.up for c in snap.connections)
        ages = [snap.heartbeat_age(c) for c in snap.connections if c.last_heartbeat is not None]
        heartbeat = f"; last heartbeat {max(ages):.0f} s ago" if ages else ""
        rejected = f", {snap.rejected} rejected" if snap.rejected else ""
        return (f"{up}/{len(snap.connections)} connection(s) up; subscriptions "
                f"{snap.active}/{snap.requested}{rejected}; {snap.written:,} message(s) "
                f"written{heartbeat}")

    # --- internals --------------------------------------------------------------------------

    def _connected(self, connection: _Connection) -> None:
        now = self._clock()
        if connection.down_since is not None or connection.ever_up:
            since = connection.down_since if connection.down_since is not None else now
            connection.back = _Back(now - since, connection.attempt,
                                    first=not connection.ever_up)
            self.coming_back = True
        connection.up = connection.ever_up = True
        connection.up_since, connection.down_since = now, None
        connection.pending = {key for key in connection.keys if key not in self._rejected}
        connection.answered_at = None
        if not connection.pending:
            self._all_answered(connection, now)

    def _ended(self, connection: _Connection) -> Reconnected | None:
        now = self._clock()
        line = None
        if connection.back is not None and connection.answered_at is not None:
            line = self._line(connection)
        connection.back = None
        self.coming_back = any(c.back is not None for c in self._connections)
        connection.up = False
        connection.answered_at = None
        connection.pending.clear()
        if connection.down_since is None:
            # A connection that never came up is down since the run started.
            connection.down_since = now if connection.ever_up else self.started
        self._active.difference_update(connection.keys)
        return line

    def _replan(self, plan: Sequence[Sequence[SubscriptionKey]],
                removed: Sequence[SubscriptionKey]) -> None:
        """A live change (--strategies-file): each connection carries ``plan``'s keys."""
        for shard, keys in enumerate(plan):
            if shard == len(self._connections):
                self._connections.append(_Connection(shard, (), frozenset()))
            connection = self._connections[shard]
            connection.keys = tuple(keys)
            connection.signal_keys = frozenset(key for key in keys if key.channel == _SIGNAL)
        self._shard_of = {key: c.shard for c in self._connections for key in c.keys}
        self._active.difference_update(removed)
        self._rejected.difference_update(removed)

    def _answered(self, key: SubscriptionKey, *, confirmed: bool) -> None:
        shard = self._shard_of.get(key)
        if shard is None:
            return
        connection = self._connections[shard]
        if key not in connection.pending:
            return
        connection.pending.discard(key)
        back = connection.back
        if back is not None:
            if confirmed:
                back.renewed += 1
            else:
                back.rejected += 1
        if not connection.pending:
            self._all_answered(connection, self._clock())

    @staticmethod
    def _all_answered(connection: _Connection, now: float) -> None:
        connection.answered_at = now
        connection.ever_answered = True

    def _take_lines(self, due: Callable[[_Connection], bool]) -> list[Reconnected]:
        lines = [self._line(c) for c in self._connections if c.back is not None and due(c)]
        self.coming_back = any(c.back is not None for c in self._connections)
        return lines

    @staticmethod
    def _line(connection: _Connection) -> Reconnected:
        back = connection.back
        assert back is not None
        connection.back = None
        return Reconnected(
            connection.shard, back.down_for, back.attempt, back.renewed, back.rejected,
            back.replayed if connection.signal_keys else None, first=back.first)


class CountingCommits:
    """A cursor store that tells ``health`` of each commit it makes (the metrics'
    ``c2ws_state_commits_total``); everything else is ``store``'s own."""

    def __init__(self, store: CursorStore | Any, health: StreamHealth) -> None:
        self._store = store
        self._health = health

    def load(self) -> Mapping[tuple[int, str], int]:
        return self._store.load()

    def commit(self, cursors: Mapping[SubscriptionKey, int], **where: object) -> None:
        # ``position=`` (where the output file's committed lines end) goes through as is.
        self._store.commit(cursors, **where)
        self._health.committed()

    def __getattr__(self, name: str) -> object:
        # open/close hooks, commits_each_message: the store's (see c2ws.cursors).
        return getattr(self._store, name)


def _latest(first: float | None, second: float | None) -> float | None:
    if first is None or second is None:
        return second if first is None else first
    return max(first, second)


def socket_heartbeats() -> dict[int, float]:
    """When each connection slot of this process last answered a heartbeat, as its
    socket thread's session recorded it (monotonic clock): read, not reported, so that
    no heartbeat wakes the consumer.  Process-wide: for a process that runs one stream
    (the command line)."""
    from c2ws.net.driver import last_heartbeats

    return last_heartbeats()
