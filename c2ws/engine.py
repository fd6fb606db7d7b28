"""The streaming engine: every published message exactly once, in order, across drops,
reconnects and restarts, or a precise report of what was lost.

No CLI, no terminal: ``c2ws subscribe``, the Python API and the sinks are shells around
it.  The engine owns a pool of :class:`~c2ws.net.worker.ShardWorker` socket threads (at
most 100 subscriptions each), one merged hand-off in arrival order, the *written*
cursors and the state file.  A consumer takes batches, writes them, then acknowledges
them; only an acknowledged message moves the cursor a restart resumes from (kept in a
:class:`~c2ws.cursors.CursorStore` when one is given)::

    with Engine(EngineConfig(url=..., api_key=..., keys=[...])) as engine:
        while True:
            batch = engine.next_batch(timeout=None)  # raises an EngineError at the end
            for event in batch:
                ...  # write it
            engine.acknowledge(batch)
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Final

from c2ws import events as ev
from c2ws import spec
from c2ws.config import check_api_key, check_url, proxy_setting
from c2ws.delivery.backoff import Backoff
from c2ws.delivery.dedupe import HeldAside, StreamFilter
from c2ws.delivery.shards import TooManySubscriptions, plan_shards
from c2ws.errors import (
    ConfigError,
    EngineError,
    InternalError,
    SubscriptionsRejected,
    connection_error,
)
from c2ws.events import ConnectionEnd, SubscriptionKey
from c2ws.net import poller as poller_module
from c2ws.net.handoff import Handoff
from c2ws.net.poller import Poller
from c2ws.net.worker import ConnectionSettings, ShardWorker
from c2ws.session import SessionTimeouts

if TYPE_CHECKING:
    from c2ws.cursors import CursorStore

_STREAM_MESSAGE: Final = ev.StreamMessage
_STREAM_RUN: Final = ev.StreamRun
_SEQUENCE_RESET: Final = ev.SequenceReset
_MESSAGES: Final = frozenset({ev.StreamMessage, ev.StreamRun})
# How long stop() waits for each socket thread to unsubscribe and close.
STOP_JOIN_TIMEOUT: Final = 5.0


def count_stream_messages(events: Sequence[ev.Event]) -> int:
    """How many stream messages ``events`` hold (C speed: it runs per hand-over)."""
    return ev.message_count(events)


@dataclass(frozen=True)
class EngineConfig:
    url: str
    api_key: str
    keys: Sequence[SubscriptionKey]
    max_buffer: int = spec.DEFAULT_MAX_BUFFER
    reconnect: bool = True
    max_retries: int | None = None
    max_backoff: float = spec.BACKOFF_MAX_SECONDS
    connect_timeout: float = spec.CONNECT_TIMEOUT_SECONDS
    timeouts: SessionTimeouts = field(default_factory=SessionTimeouts)
    io_timeout: float = spec.FRAME_COMPLETION_TIMEOUT_SECONDS
    per_connection: int = spec.MAX_SUBSCRIPTIONS_PER_CONNECTION
    # Hand over every frame in and out as a Traffic event (for -v and recordings).
    traffic: bool = False
    # Hand over a HeartbeatAnswered event per heartbeat (for status displays).
    report_heartbeats: bool = True
    # False: stream messages carry their frame (``message.data``, the JSON as received)
    # and header fields only; ``payload`` and ``raw`` are empty.  For consumers that pass
    # frames through (NDJSON): a plain frame's payload is never decoded at all
    # (c2ws.stream_head), any other's is freed on the socket thread that decoded it.
    # Frames received as text (not bytes, so never from a socket) keep theirs.
    decoded_payloads: bool = True
    # True (with decoded_payloads False): a burst of consecutive messages of one stream
    # is handed over as one StreamRun event (see c2ws.events), not one event per message.
    message_runs: bool = False
    seed: int | None = None


@dataclass
class ConnectionHealth:
    """What the run has seen of one connection slot (``shard``, counted from 0).

    ``up``: its connection reached ``connection.connected`` and has not ended since.
    ``failed``: it has ended at least once and not come back yet, or gave up for good
    (``gave_up``); a slot still opening its first connection is neither up nor failed.
    ``ever_up``: some connection of the slot reached ``connection.connected``.
    ``waiting_for_room``: it closed because the consumer fell ``max_buffer`` behind and
    reconnects once the backlog has drained to half of that.
    ``attempts``: its consecutive failures when it last failed (a connection that comes
    up briefly does not end the series: see RetryBudget); ``last_end``: how its last
    connection ended."""

    shard: int
    keys: tuple[SubscriptionKey, ...]
    up: bool = False
    ever_up: bool = False
    failed: bool = False
    gave_up: bool = False
    waiting_for_room: bool = False
    attempts: int = 0
    last_end: ConnectionEnd | None = None


def check_subscription_count(keys: Collection[SubscriptionKey], per_connection: int) -> None:
    """:class:`ConfigError` for a set of subscriptions no API key may hold at once."""
    if not keys:
        raise ConfigError("nothing to subscribe to", param="STRATEGY_ID")
    try:
        plan_shards(list(keys), per_connection=per_connection)
    except TooManySubscriptions as exc:
        raise ConfigError(str(exc), param="STRATEGY_ID") from None


def validate_config(config: EngineConfig) -> list[list[SubscriptionKey]]:
    """Raise :class:`ConfigError` for settings no connection could work with; else the
    subscriptions of each connection."""
    check_api_key(config.api_key)
    check_url(config.url)
    if not config.keys:
        raise ConfigError("nothing to subscribe to", param="STRATEGY_ID")
    if config.max_buffer < 1:
        raise ConfigError("the buffer must hold at least one message", param="--max-buffer")
    try:
        return plan_shards(config.keys, per_connection=config.per_connection)
    except TooManySubscriptions as exc:
        raise ConfigError(str(exc), param="STRATEGY_ID") from None


def planned_connections(config: EngineConfig) -> int:
    """How many connections an engine of ``config`` spreads its subscriptions over (1 for
    a config the engine refuses: it says why when it is built)."""
    try:
        return len(plan_shards(config.keys, per_connection=config.per_connection))
    except (TooManySubscriptions, ValueError):
        return 1


class Engine:
    """See the module docstring.  Not thread-safe: one consumer thread drives it.

    ``cursors``: a store already opened for this stream (its ``open`` hook called: see
    :mod:`c2ws.cursors`), loaded at :meth:`start` and committed to at every
    :meth:`acknowledge` that moves a cursor; its owner closes it.  None: the cursors live
    in memory for the run."""

    def __init__(self, config: EngineConfig, *, cursors: CursorStore | None = None) -> None:
        self._plan = validate_config(config)
        self.config = config
        self.keys = frozenset(config.keys)
        # The backlog is what stdout is behind by: stream messages, not control events
        # (which are bounded too, at a multiple of it).
        self.handoff: Handoff[ev.Event] = Handoff(
            config.max_buffer, count=count_stream_messages,
            items_per_counted=spec.BACKLOG_EVENTS_PER_MESSAGE,
            # A batch limit counts messages (grouped commits): a run may be cut.
            split=ev.split_run,
        )
        self.written: dict[SubscriptionKey, int] = {}
        self.rejected: set[SubscriptionKey] = set()
        self.ever_confirmed = False
        self.last_end: ConnectionEnd | None = None
        self.health = [
            ConnectionHealth(shard, tuple(keys)) for shard, keys in enumerate(self._plan)
        ]
        self._filters: list[StreamFilter] = []
        self._workers: list[ShardWorker] = []
        # One thread waiting on every connection, once the run has more than one.
        self._poller: Poller | None = None
        self._store = cursors
        self._failure: EngineError | None = None
        self._started = False
        # What a connection added by a live change is made with (set at start).
        self._settings: ConnectionSettings | None = None
        self._seeds = random.Random(config.seed)
        # The events the last next_batch returned were written ahead (see write_ahead).
        self.written_ahead = False

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> Engine:
        if self._started:
            raise RuntimeError("engine already started")
        self._started = True
        cursors = self._load_cursors()
        self.written = dict(cursors)
        settings = ConnectionSettings(
            url=self.config.url,
            api_key=self.config.api_key,
            connect_timeout=self.config.connect_timeout,
            timeouts=self.config.timeouts,
            io_timeout=self.config.io_timeout,
            traffic=self.config.traffic,
            reconnect=self.config.reconnect,
            max_retries=self.config.max_retries,
            per_connection=self.config.per_connection,
            report_heartbeats=self.config.report_heartbeats,
            decoded_payloads=self.config.decoded_payloads,
            message_runs=self.config.message_runs,
        )
        self._settings = settings
        proxy = proxy_setting(self.config.url)
        if proxy is not None:
            self.handoff.put([proxy])
        for keys in self._plan:
            self._add_worker(keys, cursors)
        self._share_a_poller()
        for worker in self._workers:
            worker.start()
        return self

    def _add_worker(
        self, keys: Sequence[SubscriptionKey], cursors: dict[SubscriptionKey, int]
    ) -> ShardWorker:
        """A socket thread for the next connection slot (not started)."""
        assert self._settings is not None
        stream_filter = StreamFilter(keys, cursors)
        self._filters.append(stream_filter)
        worker = ShardWorker(
            len(self._workers), keys, settings=self._settings, stream_filter=stream_filter,
            handoff=self.handoff,
            backoff=Backoff(cap=self.config.max_backoff,
                            rng=random.Random(self._seeds.getrandbits(64))),
        )
        self._workers.append(worker)
        return worker

    def _share_a_poller(self) -> None:
        """With more than one connection: one poller thread for all of them (a worker
        already connected moves to it at its next connection)."""
        if len(self._workers) < 2 or not poller_module.available():
            return
        if self._poller is None:
            self._poller = poller_module.Poller()
        for worker in self._workers:
            worker.poller = self._poller

    def write_ahead(self, writer: Callable[[list[ev.Event]], bool]) -> None:
        """Before :meth:`start`: let the socket threads write a hand-over of nothing but
        stream messages themselves when the consumer is waiting with everything before
        it done (``writer``: True when it wrote them, see :mod:`c2ws.net.handoff`).  Such
        a batch comes out of :meth:`next_batch` alone, with :attr:`written_ahead` set;
        it is acknowledged like any other.  Only for consumers that take without a
        limit."""
        if self._started:
            raise RuntimeError("write-ahead is set before the engine starts")
        self.handoff.write_ahead = writer

    def request_subscriptions(self, keys: Sequence[SubscriptionKey], source: str = "") -> None:
        """Ask for the running stream to carry exactly ``keys`` from now on, without a
        reconnect (any thread may ask): applied on the consumer's thread at its next
        :meth:`next_batch`, which hands over a :class:`~c2ws.events.SubscriptionsChanged`
        in its place.  Raises :class:`ConfigError` at once for a set no key may hold (none,
        or more than spec.MAX_SUBSCRIPTIONS_PER_KEY)."""
        wanted = tuple(dict.fromkeys(keys))
        check_subscription_count(wanted, self.config.per_connection)
        self.handoff.put([ev.SubscriptionsRequested(wanted, source)])

    def stop(self) -> None:
        """Unsubscribe and close every connection (bounded in time); idempotent."""
        for worker in self._workers:
            worker.request_stop()
        give_up = time.monotonic() + STOP_JOIN_TIMEOUT
        for worker in self._workers:
            worker.join(max(0.0, give_up - time.monotonic()))
        if self._poller is not None:
            self._poller.close()
        self.handoff.close()

    def __enter__(self) -> Engine:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- consuming -----------------------------------------------------------------------

    def next_batch(self, timeout: float | None, limit: int | None = None) -> list[ev.Event]:
        """The next events in arrival order (at most ``limit``), waiting up to ``timeout``
        seconds; [] when none came.  Raises the :class:`EngineError` that ends the run
        once everything before it has been returned."""
        if self._failure is not None:
            raise self._failure
        handoff = self.handoff
        batch = handoff.take(timeout, limit)
        ahead = handoff.taken_written_ahead
        self.written_ahead = ahead > 0
        if ahead:
            # Alone: the consumer's part of the rest was not done.
            if ahead < len(batch):
                handoff.give_back(batch[ahead:])
                del batch[ahead:]
            return batch  # stream messages only
        if set(map(type, batch)) <= _MESSAGES:
            return batch  # a burst: nothing to observe
        for index, event in enumerate(batch):
            if type(event) in _MESSAGES:
                continue  # most of them, and nothing to observe
            if type(event) is ev.SubscriptionsRequested:
                batch[index] = event = self._change_subscriptions(event)
            failure = self._observe(event)
            if failure is not None:
                self._failure = failure
                # What came before the ending is delivered (a rejection is shown too);
                # the rest of the batch is done with now.
                delivered = index + 1 if isinstance(failure, SubscriptionsRejected) else index
                self.handoff.done(batch[delivered:])
                if delivered == 0:
                    raise failure
                return batch[:delivered]
            if type(event) is _SEQUENCE_RESET and index + 1 < len(batch):
                # A sequence reset ends its batch: it is written and its cursor (down, in
                # the new numbering) committed before the messages after it, so a crash
                # never leaves the old numbering in the state file with new lines after
                # the reset line in the output (whose tail is read only up to the last
                # line of each stream).
                self.handoff.give_back(batch[index + 1 :])
                return batch[: index + 1]
        return batch

    def acknowledge(self, events: Sequence[ev.Event]) -> None:
        """``events`` (taken from :meth:`next_batch`) are written: advance the cursors,
        commit them to the cursor store when one moved, and make room in the backlog
        (also when the commit fails: the events are done with either way)."""
        # Only a placed message has a cursor (event.key is then set), a run of them, and
        # a sequence reset (which moves it down, to just before the new numbering); the
        # last one of each stream wins.
        moved: dict[SubscriptionKey, int] = {
            event.key: event.cursor for event in events  # type: ignore[misc]
            if (type(event) is _STREAM_MESSAGE and event.cursor is not None)
            or type(event) is _STREAM_RUN or type(event) is _SEQUENCE_RESET
        }
        try:
            if moved and self._store is not None and any(
                self.written.get(key) != seq for key, seq in moved.items()
            ):
                self._store.commit({**self.written, **moved})
            self.written.update(moved)
        finally:
            self.handoff.done(events)

    @property
    def connection_count(self) -> int:
        """How many connections the subscriptions are spread over."""
        return len(self._plan)

    def connections_down(self) -> list[ConnectionHealth]:
        """The connection slots that had failed and were not back up, as far as the
        events taken so far tell, with the subscriptions they carry that the server did
        not reject; slots left with none are not listed."""
        down = []
        for health in self.health:
            if health.up or not health.failed:
                continue
            keys = tuple(key for key in health.keys if key not in self.rejected)
            if keys:
                down.append(dataclasses.replace(health, keys=keys))
        return down

    def unresolved_gaps(self) -> list[ev.GapReported]:
        """Announced gaps whose far end never arrived (meaningful after :meth:`stop`)."""
        return [gap for stream_filter in self._filters for gap in stream_filter.unresolved_gaps()]

    def held_aside(self) -> list[HeldAside]:
        """Streams whose messages at or below the cursor were still awaiting the
        sequence-reset verdict, so not written (meaningful after :meth:`stop`)."""
        return [held for stream_filter in self._filters for held in stream_filter.held_aside()]

    # --- internals -----------------------------------------------------------------------

    def _observe(self, event: ev.Event) -> EngineError | None:
        """Keep the run's view of its subscriptions; the error that ends it, if any."""
        if isinstance(event, ev.SubscriptionConfirmed):
            self.rejected.discard(event.key)
            self.ever_confirmed = True
        elif isinstance(event, ev.SubscriptionRejected):
            if event.key not in self.keys:
                return None  # asked for, then taken out of the stream (a live change)
            self.rejected.add(event.key)
            if self.rejected >= self.keys:
                return SubscriptionsRejected("every subscription was rejected; nothing to stream")
        elif isinstance(event, ev.Connected):
            health = self.health[event.shard]
            health.up = health.ever_up = True
            health.failed = health.waiting_for_room = False
        elif isinstance(event, ev.ConnectionEnded):
            self.last_end = event.end
            health = self.health[event.shard]
            health.up = False
            health.last_end = event.end
        elif isinstance(event, ev.Reconnecting):
            health = self.health[event.shard]
            if event.delay is None:  # paused for a slow reader: it has not failed
                health.waiting_for_room = True
            else:
                health.failed = True
                health.waiting_for_room = False
                health.attempts = event.attempt
        elif isinstance(event, ev.ShardFailed):
            health = self.health[event.shard]
            health.failed = health.gave_up = True
            health.attempts = event.attempts
            return connection_error(event.end)
        elif isinstance(event, ev.WorkerCrashed):
            return InternalError(event.summary, event.traceback)
        return None

    def _change_subscriptions(self, request: ev.SubscriptionsRequested) -> ev.SubscriptionsChanged:
        """Carry ``request.keys`` from now on: each connection unsubscribes what is no
        longer wanted and subscribes what it is given; the streams that stay are
        untouched.  A new strategy goes back to the connection that carried it before
        (its cursor is there) when that has room, else to the first connection with
        room, else to a new connection."""
        wanted = dict.fromkeys(request.keys)
        current = [key for keys in self._plan for key in keys]
        removed = tuple(key for key in current if key not in wanted)
        added = [key for key in wanted if key not in self.keys]
        changed: set[int] = set()
        for shard, keys in enumerate(self._plan):
            kept = [key for key in keys if key in wanted]
            if len(kept) != len(keys):
                self._plan[shard] = kept
                changed.add(shard)
        room = self.config.per_connection
        resume: dict[SubscriptionKey, int | None] = {}
        stored: dict[SubscriptionKey, int] | None = None
        placed: list[SubscriptionKey] = []
        unplaced: list[SubscriptionKey] = []
        tracked = [stream_filter.keys for stream_filter in self._filters]
        for key in added:
            shards = [shard for shard, keys in enumerate(self._plan)
                      if len(keys) < room and self._workers[shard].accepts_keys]
            before = [shard for shard in shards if key in tracked[shard]]
            if before or shards:
                shard = (before or shards)[0]
            elif len(self._plan) < spec.MAX_CONNECTIONS_PER_KEY:
                shard = len(self._plan)
                self._plan.append([])
                self.health.append(ConnectionHealth(shard, ()))
            else:  # only when connections gave up for good: the run is ending anyway
                unplaced.append(key)
                continue
            self._plan[shard].append(key)
            changed.add(shard)
            placed.append(key)
            held = next((self._filters[shard].held(key)
                         for shard, keys in enumerate(tracked) if key in keys), None)
            if held is None:
                held = self.written.get(key)
            if held is None and self._store is not None:
                if stored is None:
                    stored = self._load_cursors(wanted)
                held = stored.get(key)
            resume[key] = held
        for shard in sorted(changed):
            keys = self._plan[shard]
            self.health[shard].keys = tuple(keys)
            given = {key: resume[key] for key in keys if key in resume}
            if shard < len(self._workers):
                self._workers[shard].set_keys(keys, given)
            else:
                worker = self._add_worker(keys, {k: v for k, v in given.items() if v is not None})
                self._share_a_poller()
                worker.start()
        self.keys = frozenset(key for keys in self._plan for key in keys)
        self.rejected -= set(removed) | set(placed)
        return ev.SubscriptionsChanged(
            tuple(placed), removed, tuple(tuple(keys) for keys in self._plan), request.source,
            tuple(unplaced),
        )

    def _load_cursors(self, keys: Collection[SubscriptionKey] | None = None
                      ) -> dict[SubscriptionKey, int]:
        if self._store is None:
            return {}
        from c2ws.cursors import checked_cursors

        return checked_cursors(self._store.load(), self.keys if keys is None else keys,
                               self._store)
