"""``c2ws.stream()``: the engine as an iterator of typed messages, with the guarantees of
``c2ws subscribe`` (reconnect, resume, dedupe, sharding, durable cursors) and its
endings (``count``, ``timeout``, ``fail_on_gap``)::

    with c2ws.stream([12345678], cursors=c2ws.FileCursors("state.json")) as s:
        for msg in s:                  # Signal | Position | Gap | SequenceReset
            print(msg.seq_id, msg.symbol if isinstance(msg, c2ws.Signal) else msg.line)

One consumer thread drives a :class:`Stream` (the socket threads are the engine's).
Messages come in batches (:meth:`Stream.batches`, what one socket read or a burst
brought); iterating the stream yields the messages of each batch in turn.  Every engine
event that is not a message (connection life-cycle, subscriptions, heartbeats, warnings,
``Traffic``) goes to ``on_event`` on the consumer's thread, in arrival order relative
to the messages (see :class:`Stream`).

Acknowledgement moves the cursor.  ``auto_ack=True``: a message counts as handled when
the caller asks for the next one (committed once per batch, or per group of batches for
a store with ``commit_groups``: see :mod:`c2ws.delivery.groups`), and at a clean close.
``auto_ack=False``: :meth:`Stream.ack` is cumulative; what was never acknowledged is
replayed after a crash.  A caller that stops acknowledging gets
:class:`~c2ws.errors.BacklogFull` once ``max_buffer`` messages wait for it, never a
silent stall.

Sans-I/O where it matters: this module decides what to deliver, acknowledge and raise;
the sockets are the engine's, the clock is passed in.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from operator import countOf
from types import TracebackType
from typing import TYPE_CHECKING, Final, overload

from c2ws import events as ev
from c2ws import spec
from c2ws.endings import ConnectionEnd, EndReason
from c2ws.errors import (
    BacklogFull,
    C2wsError,
    ConfigError,
    GapDetected,
    connection_error,
)
from c2ws.events import SubscriptionKey
from c2ws.lines import gap_line, is_one_line, line_of, reset_line
from c2ws.messages import Gap, Message, Position, SequenceReset, Signal
from c2ws.protocol import JsonObject

if TYPE_CHECKING:
    from c2ws.commits import BackgroundCommits
    from c2ws.cursors import CursorStore
    from c2ws.delivery.dedupe import HeldAside
    from c2ws.engine import ConnectionHealth, Engine, EngineConfig

__all__ = ["Batch", "Message", "Stream", "StreamEnd", "stream"]

_STREAM_MESSAGE: Final = ev.StreamMessage
_STREAM_RUN: Final = ev.StreamRun
_GAP: Final = ev.GapReported
_RESET: Final = ev.SequenceReset
_TRAFFIC: Final = ev.Traffic
_MESSAGES: Final = frozenset({ev.StreamMessage, ev.StreamRun})
_MESSAGE_TYPES: Final = (ev.StreamMessage, ev.GapReported, ev.SequenceReset)
# Issue 24: lines of c2ws's own from the REST API (heal_gaps, snapshot), delivered in
# order with the stream; never handed back to the engine (they are none of its events).
_REST_EVENTS: Final = frozenset({ev.BackfillOrder, ev.BackfillFailed, ev.PositionsSnapshot})
_POSITIONS: Final = spec.CHANNEL_POSITIONS


class StreamEnd(Enum):
    """Why a stream ended (:attr:`Stream.end_reason`)."""

    COUNT = "count"  # ``count`` messages were delivered
    TIMEOUT = "timeout"  # ``timeout`` seconds passed
    CLOSED = "closed"  # the caller closed it (``close()``, the end of a ``with`` block)
    ERROR = "error"  # an error of c2ws.errors ended it (raised to the caller)
    END = "end"  # the recording had nothing more (c2ws.replay)


# --- typed messages of engine events ------------------------------------------------------


def _reset_message(event: ev.SequenceReset) -> SequenceReset:
    return SequenceReset(event.key, event.last_seq, event.next_seq, reset_line(event),
                         event.next_timestamp, event.last_timestamp)


def typed(event: ev.StreamMessage | ev.GapReported | ev.SequenceReset) -> Message:
    """The typed message of one message event (cheap: nothing is decoded)."""
    kind = type(event)
    if kind is _STREAM_MESSAGE:
        if event.message.msg_type == _POSITIONS:  # type: ignore[union-attr]
            return Position(event)  # type: ignore[arg-type]
        return Signal(event)  # type: ignore[arg-type]
    if kind is _GAP:
        return Gap(event)  # type: ignore[arg-type]
    if kind in _REST_EVENTS:  # --- issue 24: what heal_gaps and snapshot add ---
        from c2ws.rest.results import rest_message

        return rest_message(event)  # type: ignore[arg-type,return-value]
    return _reset_message(event)  # type: ignore[arg-type]


def _line(event: ev.Event) -> bytes:
    kind = type(event)
    if kind is _STREAM_RUN:
        raise TypeError("a run has one line per message")
    if kind is _STREAM_MESSAGE:
        data = event.message.data  # type: ignore[union-attr]
        return data if is_one_line(data) else line_of(event.message)  # type: ignore[union-attr]
    if kind is _GAP:
        return gap_line(event)  # type: ignore[arg-type]
    if kind in _REST_EVENTS:
        return event.line  # type: ignore[union-attr]
    return reset_line(event)  # type: ignore[arg-type]


class Batch(Sequence[Message]):
    """An immutable sequence of typed messages, built lazily: a message object is made
    only when it is indexed or iterated.  ``events``: the engine's message events of the
    batch (``StreamMessage``, ``GapReported``, ``SequenceReset``) in arrival order, for
    renderers; :meth:`lines` and :meth:`ndjson` give the NDJSON bytes without building
    any message object (nor event: a burst stays one :class:`~c2ws.events.StreamRun`
    until ``events`` is read).  ``written_ahead``: its NDJSON is out already, written by
    the socket thread that read it (see :meth:`Stream.write_ahead`)."""

    __slots__ = ("_events", "_runs", "_size", "_taken", "written_ahead")

    def __init__(self, events: list[ev.Event], taken: list[ev.Event] | None = None) -> None:
        self._events = events
        # Everything the batch acknowledges, in order: its events and the messages a
        # ``select`` left out (the same list when there are none).
        self._taken = events if taken is None else taken
        runs = countOf(map(type, events), _STREAM_RUN)
        self._runs = runs > 0
        self._size = len(events) + (
            sum(len(e) - 1 for e in events if type(e) is _STREAM_RUN)
            if runs else 0)
        self.written_ahead = False

    @property
    def events(self) -> Sequence[ev.Event]:
        """The message events, one per message: runs are expanded here, the first time,
        in place (the list is the stream's record of what it delivered, which must name
        every message a caller may acknowledge)."""
        if self._runs:
            self._runs = False
            self._events[:] = ev.expand_runs(self._events)
        return self._events

    @property
    def handed_events(self) -> Sequence[ev.Event]:
        """The events as the engine handed them over: a burst of one stream's messages
        may be one :class:`~c2ws.events.StreamRun` (nothing is built; for consumers that
        count messages per stream, e.g. :class:`c2ws.monitor.StreamHealth`)."""
        return self._events

    def __len__(self) -> int:
        return self._size

    @property
    def only_signals_and_positions(self) -> bool:
        """No :class:`~c2ws.messages.Gap` or :class:`~c2ws.messages.SequenceReset` in the
        batch (told without building anything)."""
        return set(map(type, self._events)) <= _MESSAGES

    @overload
    def __getitem__(self, index: int) -> Message: ...

    @overload
    def __getitem__(self, index: slice) -> list[Message]: ...

    def __getitem__(self, index: int | slice) -> Message | list[Message]:
        if isinstance(index, slice):
            return [typed(event) for event in self.events[index]]  # type: ignore[arg-type]
        return typed(self.events[index])  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Message]:
        return map(typed, self.events)  # type: ignore[arg-type]

    def lines(self) -> list[bytes]:
        """The NDJSON line of each message (no newline), byte for byte what ``c2ws
        subscribe -o ndjson`` writes."""
        if not self._runs:
            return [
                event.message.data
                if type(event) is _STREAM_MESSAGE and is_one_line(event.message.data)
                else _line(event)
                for event in self._events
            ]
        lines: list[bytes] = []
        for event in self._events:
            if type(event) is _STREAM_RUN:
                lines.extend(event.frames)  # none holds a line break
            elif type(event) is _STREAM_MESSAGE and is_one_line(event.message.data):
                lines.append(event.message.data)
            else:
                lines.append(_line(event))
        return lines

    def ndjson(self) -> bytes:
        """The batch as NDJSON: every line with its newline."""
        if not self._runs:
            lines = self.lines()
            if not lines:
                return b""
            lines.append(b"")
            return b"\n".join(lines)
        # Runs are NDJSON already: taken as they are, the other events' lines between.
        chunks: list[bytes] = []
        lines = []
        for event in self._events:
            if type(event) is not _STREAM_RUN:
                lines.append(_line(event))
                continue
            if lines:
                lines.append(b"")
                chunks.append(b"\n".join(lines))
                lines = []
            chunks.append(event.ndjson)
        if lines:
            lines.append(b"")
            chunks.append(b"\n".join(lines))
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def __repr__(self) -> str:
        return f"<Batch of {self._size} message(s)>"


# --- the settings ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamOptions:
    """What :class:`Stream` decides on its own (the engine's settings are apart)."""

    count: int | None = None
    timeout: float | None = None
    fail_on_gap: bool = False
    auto_ack: bool = True
    select: Callable[[Signal | Position], bool] | None = None
    on_event: Callable[[ev.Event], object] | None = None
    clock: Callable[[], float] = field(default=time.monotonic)
    # Issue 24: the REST side (see stream()).
    heal_gaps: bool = False
    snapshot: bool | str = False
    rest_url: str | None = None


def subscription_keys(
    strategies: Iterable[int | str] | int | str, channels: Iterable[str] | str
) -> list[SubscriptionKey]:
    """The subscriptions of ``strategies`` (positive ints, or their digits as text) on
    ``channels`` (``signal``, ``positions`` or the full names); :class:`ConfigError` for
    anything else."""
    if isinstance(strategies, (int, str)):
        strategies = [strategies]
    if isinstance(channels, str):
        channels = [channels]
    ids: list[int] = []
    for strategy in strategies:
        if isinstance(strategy, str) and strategy.strip().isascii() and (
                strategy.strip().isdigit()):
            strategy = int(strategy.strip())
        if not isinstance(strategy, int) or isinstance(strategy, bool) or strategy <= 0:
            raise ConfigError(f"{strategy!r} is not a strategy id (a positive integer)",
                              param="STRATEGY_ID")
        if strategy not in ids:
            ids.append(strategy)
    names: list[str] = []
    for channel in channels:
        name = spec.CHANNEL_ALIASES.get(channel.strip().lower()) if isinstance(
            channel, str) else None
        if name is None:
            raise ConfigError(f"{channel!r} is not a channel; use signal, positions, "
                              f"{spec.CHANNEL_SIGNAL} or {spec.CHANNEL_POSITIONS}",
                              param="--channel")
        if name not in names:
            names.append(name)
    return [SubscriptionKey(sid, name) for sid in ids for name in names]


def _subscription_key(key: SubscriptionKey | tuple[int, str]) -> SubscriptionKey:
    """``key`` as a SubscriptionKey (a channel's short name accepted); ConfigError for
    anything that names no subscription."""
    try:
        strategy, channel = key
    except (TypeError, ValueError):
        raise ConfigError(f"{key!r} is not a (strategy id, channel) pair",
                          param="STRATEGY_ID") from None
    return subscription_keys([strategy], [channel])[0]


def stream(
    strategies: Iterable[int | str] | int | str,
    channels: Iterable[str] | str = ("signal", "positions"),
    *,
    api_key: str | None = None,
    url: str | None = None,
    profile: str | None = None,
    cursors: CursorStore | None = None,
    auto_ack: bool = True,
    count: int | None = None,
    timeout: float | None = None,
    fail_on_gap: bool = False,
    max_buffer: int = spec.DEFAULT_MAX_BUFFER,
    on_event: Callable[[ev.Event], object] | None = None,
    select: Callable[[Signal | Position], bool] | None = None,
    reconnect: bool = True,
    max_retries: int | None = None,
    max_backoff: float = spec.BACKOFF_MAX_SECONDS,
    connect_timeout: float = spec.CONNECT_TIMEOUT_SECONDS,
    silence_timeout: float = spec.CLIENT_STALE_AFTER_SECONDS,
    traffic: bool = False,
    heartbeats: bool = False,
    decode_payloads: bool = False,
    heal_gaps: bool = False,
    snapshot: bool | str = False,
    rest_url: str | None = None,
    subscriptions: Iterable[SubscriptionKey | tuple[int, str]] = (),
) -> Stream:
    """A stream of the signals and positions of ``strategies`` (see docs/library.md).

    ``subscriptions``: (strategy id, channel) pairs followed besides ``strategies`` x
    ``channels`` (``strategies`` may then be empty); :meth:`Stream.set_subscriptions`
    changes them all while the stream runs.

    ``api_key``, ``url``, ``profile``: as ``c2ws subscribe`` resolves them when not
    given (``C2_API_KEY`` or ``C2WS_API_KEY_FILE``, ``C2WS_URL``, ``C2WS_PROFILE``, the
    config file's profile, the default URL).  ``cursors``: where acknowledged cursors are
    kept (:class:`~c2ws.cursors.FileCursors`, :class:`~c2ws.cursors.SqliteCursors`, any
    :class:`~c2ws.cursors.CursorStore`; None: in memory for the run).  ``count``: end after
    that many Signal/Position messages (those ``select`` keeps); ``timeout``: end after that
    many seconds; ``fail_on_gap``: raise :class:`~c2ws.errors.GapDetected` after a gap or a
    sequence reset and the message after it.  ``max_buffer``: messages the stream holds
    for a slow consumer (and delivered unacknowledged ones, with ``auto_ack=False``).
    ``on_event``: called with every engine event that is not a message; ``heartbeats``:
    include one per heartbeat answered; ``traffic``: include every frame in and out
    (``Traffic``, the key redacted).  ``decode_payloads``: decode every payload on the
    socket thread (for consumers of ``Batch.events`` that read ``message.payload``;
    typed messages decode on first read either way).

    The REST side (the ``rest`` extra; ``rest_url``: the REST base URL, derived from
    ``url`` unless given or in ``C2WS_REST_URL``): ``heal_gaps``: after each ``Gap``,
    yield the orders of the hole from the REST history (``c2ws.rest.results.
    BackfillOrder``, or a ``BackfillFailed``), before the first signal after it; with
    ``fail_on_gap``, only a gap that could not be healed raises.  ``snapshot=True``: yield
    each strategy's open positions (``PositionsSnapshot``) first, before the live stream
    (the stream waits for the REST API: at most its timeouts); a failure is a
    ``SnapshotFailed`` event to ``on_event``, never the end of the stream.
    ``snapshot="reconnect"`` (what the CLI's table uses): at the start and after each
    reconnect, taken on a thread of its own so that the live stream never waits for the
    REST API; its ``PositionsSnapshot`` (or ``SnapshotFailed``) events come to
    ``on_event`` when they are ready, in order with the other events.

    Raises :class:`~c2ws.errors.ConfigError` at once for settings no connection could
    work with; nothing connects until the stream starts (``with``, or the first
    request)."""
    from c2ws.engine import EngineConfig, validate_config
    from c2ws.session import SessionTimeouts

    keys = list(dict.fromkeys([*subscription_keys(strategies, channels),
                               *map(_subscription_key, subscriptions)]))
    if api_key is None or url is None:
        from c2ws.config import Flags, connection_of

        url, api_key = connection_of(Flags(profile=profile, url=url, api_key=api_key),
                                     os.environ)
    if count is not None and (isinstance(count, bool) or count < 1):
        raise ConfigError(f"count must be at least 1, not {count!r}", param="--count")
    if timeout is not None and not timeout > 0:
        raise ConfigError(f"timeout must be a positive number of seconds, not {timeout!r}",
                          param="--timeout")
    if snapshot not in (False, True, "reconnect"):
        raise ConfigError(f"snapshot is True, False or 'reconnect', not {snapshot!r}",
                          param="--snapshot")
    if heal_gaps or snapshot:
        from c2ws.rest.api import RestUrlError, resolve_rest_url

        try:
            rest_url = resolve_rest_url(rest_url, os.environ, url)
        except RestUrlError as exc:
            raise ConfigError(str(exc), param="--rest-url") from None
    config = EngineConfig(
        url=url, api_key=api_key, keys=keys, max_buffer=max_buffer, reconnect=reconnect,
        max_retries=max_retries, max_backoff=max_backoff, connect_timeout=connect_timeout,
        timeouts=SessionTimeouts(silence=silence_timeout), traffic=traffic,
        report_heartbeats=heartbeats, decoded_payloads=decode_payloads,
        # heal_gaps remembers each signal's SignalId: message by message, never runs.
        message_runs=not decode_payloads and not heal_gaps,
    )
    validate_config(config)
    options = StreamOptions(count=count, timeout=timeout, fail_on_gap=fail_on_gap,
                            auto_ack=auto_ack, select=select, on_event=on_event,
                            heal_gaps=heal_gaps, snapshot=snapshot, rest_url=rest_url)
    return Stream(config, options, cursors=cursors)


# --- the stream -----------------------------------------------------------------------------


class Stream:
    """A running subscription: a context manager (``with`` starts it; leaving the block
    unsubscribes and closes every connection cleanly) and an iterator of typed messages
    (``Signal | Position | Gap | SequenceReset``).  Iterating without ``with`` starts it
    on the first request; then only :meth:`close` (or the stream's own end) closes it.

    **Order.**  ``on_event`` gets every other engine event on the consumer's thread:
    those that arrived before a message before that message is yielded, those after it
    once the caller asks for what follows.  With :meth:`batches` a batch is delivered at
    once: the events that arrived among its messages are never inside it (a batch ends
    before one), except ``Traffic`` (the frames themselves), which is passed before the
    batch that holds its message.  An exception ``on_event`` raises propagates to the
    caller; the event counts as handled.

    **Ends.**  ``count`` and ``timeout`` end the iteration (:attr:`end_reason`,
    :attr:`delivered`); announced gaps whose far end never arrived are then yielded as
    :class:`~c2ws.messages.Gap` messages, last.  An error of :mod:`c2ws.errors` ends it
    too, raised once those gaps were yielded.  A timeout before any subscription was
    confirmed raises the connection's error.

    Not thread-safe: one thread iterates, acknowledges and closes (the socket threads
    are the engine's)."""

    def __init__(
        self, config: EngineConfig, options: StreamOptions | None = None, *,
        cursors: CursorStore | None = None,
        engine_factory: Callable[..., Engine] | None = None,
    ) -> None:
        from c2ws.engine import planned_connections

        self.config = config
        self.options = options or StreamOptions()
        self.cursors_store = cursors
        self.keys: tuple[SubscriptionKey, ...] = tuple(config.keys)
        self.connection_count = planned_connections(config)
        self.delivered = 0
        self.end_reason: StreamEnd | None = None
        # Stream messages received and never delivered (counted when the stream stops).
        self.undelivered = 0
        self._engine_factory = engine_factory
        self._engine: Engine | None = None
        self._started = self._stopped = self._closed = False
        self._store_opened = False
        self._deadline: float | None = None
        # Events taken from the engine and not yet handed out; written ahead (the
        # inbox is then one batch of stream messages, see write_ahead).
        self._inbox: list[ev.Event] = []
        self._inbox_at = 0
        self._inbox_written_ahead = False
        self._write_ahead: Callable[[list[ev.Event]], bool] | None = None
        # Event lists handed out (batches, with what ``select`` left out), not yet
        # acknowledged, oldest first; and how many stream messages they hold.
        self._delivered: list[list[ev.Event]] = []
        self._unacked = 0
        # The batch ``for msg in s`` is yielding from, and how many of it were yielded.
        self._current: Batch | None = None
        self._current_at = 0
        # fail_on_gap: the gap (or reset) to stop after, and the error once that is due.
        self._gap: ev.GapReported | ev.SequenceReset | None = None
        self._pending_error: C2wsError | None = None
        self._final_gaps: list[ev.GapReported] | None = None
        self._gaps_given = self._gaps_yielded = False
        self._interrupted = False
        self._ready: Batch | None = None
        # Issue 24 (heal_gaps, snapshot): the REST client, made at the first call.
        self._rest_side = _RestSide(self) if (
            self.options.heal_gaps or self.options.snapshot) else None
        # Commits grouped for a store that asks for it (commit_groups), else None.
        self._commits: BackgroundCommits | None = None

    # --- life cycle ------------------------------------------------------------------------

    def start(self) -> Stream:
        """Open the cursor store, connect and subscribe (in the background: messages
        and errors come through the iteration).  Idempotent."""
        if self._started:
            return self
        if self._closed:
            raise RuntimeError("the stream is closed")
        from c2ws.engine import Engine

        store = self.cursors_store
        if store is not None:
            opener = getattr(store, "open", None)
            if opener is not None:
                from c2ws.cursors import StreamIdentity

                opener(StreamIdentity.of(self.config.url, self.config.api_key, self.keys))
            self._store_opened = True
        groups = getattr(store, "commit_groups", None)
        if store is not None and groups is not None:
            from c2ws.commits import BackgroundCommits

            # The engine commits into it; it commits each group to the store when due.
            self._commits = BackgroundCommits(store, groups)
        factory = self._engine_factory or Engine
        config = self.config
        if config.message_runs and getattr(store, "commits_each_message", False):
            # One message at a time, as the store asks: never a burst as one run.
            config = dataclasses.replace(config, message_runs=False)
        try:
            self._engine = factory(config, cursors=self._commits or store)
            self._started = True
            if self._write_ahead is not None:
                self._engine.write_ahead(self._write_ahead)
            self._engine.start()
        except BaseException:
            self._started = True
            self.close(clean=False)
            raise
        timeout = self.options.timeout
        if timeout is not None:
            self._deadline = self.options.clock() + timeout
        return self

    def close(self, *, clean: bool = True) -> None:
        """Stop: acknowledge what was handled (``auto_ack``: everything delivered when
        ``clean``, else all but the message being handled), unsubscribe, close every
        connection with 1000 (bounded in time), and close the cursor store.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._gaps_given = True  # unresolved_gaps() has them
        try:
            if self._started and self.options.auto_ack:
                self._ack_handled(including_last=clean)
        finally:
            try:
                if self.end_reason is None:
                    self.end_reason = StreamEnd.CLOSED
                self._stop_engine()
            finally:
                self._close_store()
                if self._rest_side is not None:
                    self._rest_side.close()

    def __enter__(self) -> Stream:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(clean=exc_type is None)

    def interrupt(self) -> None:
        """From another thread: make a request blocked waiting for messages return (the
        stream then ends as CLOSED).  Never blocks; :meth:`close` still has to run."""
        self._interrupted = True
        engine = self._engine
        if engine is not None:
            engine.handoff.close()

    def wake(self) -> None:
        """From another thread: make a request blocked waiting for messages look again,
        nothing else changed (it waits on unless the stream has ended).  For a program
        whose main thread must run a signal's handler now: Python runs one only between
        two steps of the main thread, never in the middle of a wait."""
        engine = self._engine
        if engine is not None:
            engine.handoff.wake()

    def write_ahead(self, writer: Callable[[list[ev.Event]], bool]) -> bool:
        """Before :meth:`start`: let a socket thread hand a burst of nothing but stream
        messages to ``writer`` itself (True: it wrote them) when this stream's consumer
        is waiting for messages with everything before them done, sparing the wake-up of
        the consumer's thread on the way out.  The burst is then delivered as a
        :class:`Batch` with ``written_ahead`` set, acknowledged already (it is out, and
        everything before it was acknowledged: acknowledging it again does nothing).
        With ``count``, only a burst that does not reach it (the one that does ends the
        stream on the consumer's side).  Only where nothing else decides per
        message on the consumer's side: no cursor store, ``select``, ``fail_on_gap`` or
        REST side; False (and nothing set) otherwise.  For ``c2ws subscribe``
        (c2ws.sinks.ahead)."""
        if self._started:
            raise RuntimeError("write-ahead is set before the stream starts")
        options = self.options
        if (self.cursors_store is not None or options.select is not None
                or options.fail_on_gap or self._rest_side is not None):
            return False
        count = options.count
        if count is None:
            self._write_ahead = writer
        else:
            # Read on a socket thread while the consumer waits with all before done:
            # ``delivered`` is then what it will be when the burst is taken.
            def within_count(events: list[ev.Event]) -> bool:
                return count - self.delivered > ev.message_count(events) and writer(events)

            self._write_ahead = within_count
        return True

    # --- changing what it follows ---------------------------------------------------------

    def set_subscriptions(
        self, keys: Iterable[SubscriptionKey | tuple[int, str]], *, source: str = ""
    ) -> None:
        """Follow exactly ``keys`` ((strategy id, channel) pairs) from now on, on the
        running connections, without a reconnect: new streams are subscribed on
        connections with room (a new connection when none has; resumed from the cursor
        store like the others), streams no longer wanted are unsubscribed, and the others
        and their cursors are untouched.  Any thread may call it; the change is applied
        on the consumer's thread, in order with the events, and reported to ``on_event``
        as a :class:`~c2ws.events.SubscriptionsChanged` (``source``: what asked, for that
        report).  Raises :class:`~c2ws.errors.ConfigError` at once for a set no API key
        may hold (empty, or more than 1000 subscriptions) or a key that is none, and
        RuntimeError before the stream has started."""
        from c2ws.engine import check_subscription_count

        wanted = [_subscription_key(key) for key in keys]
        check_subscription_count(wanted, self.config.per_connection)
        engine = self._engine
        if engine is None:
            raise RuntimeError("start the stream before changing its subscriptions")
        engine.request_subscriptions(wanted, source)

    def set_strategies(
        self, strategies: Iterable[int | str] | int | str,
        channels: Iterable[str] | str = ("signal", "positions"), *, source: str = "",
    ) -> None:
        """:meth:`set_subscriptions` of ``strategies`` on ``channels`` (as in
        :func:`stream`)."""
        self.set_subscriptions(subscription_keys(strategies, channels), source=source)

    def _subscriptions_changed(self, event: ev.SubscriptionsChanged) -> None:
        self.keys = tuple(key for keys in event.plan for key in keys)
        self.connection_count = len(event.plan)
        if self._rest_side is not None:
            self._rest_side.strategies_changed(self.keys)

    # --- consuming -------------------------------------------------------------------------

    def batches(
        self, *, include_empty: bool = False, idle: Callable[[], float | None] | None = None,
    ) -> Iterator[Batch]:
        """The messages batch by batch (see :class:`Batch`).  ``include_empty``: also an
        empty batch when other events came (handed to ``on_event``) and no message after
        them, for a consumer that must flush what ``on_event`` wrote.  ``idle``: see
        :meth:`next_batch` (the empty batch it ends a wait with is yielded too)."""
        while True:
            batch = self.next_batch(idle=idle)
            if batch is None:
                return
            if batch or include_empty or idle is not None:
                yield batch

    def next_batch(self, *, idle: Callable[[], float | None] | None = None) -> Batch | None:
        """The next batch, waiting for it (empty: see :meth:`batches`); None once the
        stream has ended (by count, timeout or close).  Raises the error that ended it.
        ``idle``: asked before each wait for messages; seconds (not None) end that wait
        after as long with an empty batch, for a consumer with work of its own to look
        at while the stream is quiet (the acknowledgements of a sink that makes batches
        durable after it took them: :func:`c2ws.sinks.deliver`)."""
        self._current = None
        return self._next_batch(idle)

    def __iter__(self) -> Iterator[Message]:
        return self

    def __next__(self) -> Message:
        current = self._current
        if current is not None:
            at = self._current_at
            events = current.events
            if at < len(events):
                deadline = self._deadline
                if (deadline is not None and self.options.clock() >= deadline
                        and not current.written_ahead):
                    # The consumer is behind: the rest of this batch is not delivered.
                    self._cut_current(at)
                else:
                    self._current_at = at + 1
                    return typed(events[at])  # type: ignore[arg-type]
        batch = self._next_batch()
        while batch is not None and not batch:
            batch = self._next_batch()
        if batch is None:
            self._current = None
            raise StopIteration
        self._current, self._current_at = batch, 1
        return typed(batch.events[0])  # type: ignore[arg-type]

    def ack(self, item: Message | Batch) -> None:
        """Acknowledge ``item`` and everything delivered before it (cumulative): the
        cursor of each stream moves to the highest seq_id acknowledged, and is committed
        to the cursor store.  Acknowledging what was acknowledged already does nothing."""
        if isinstance(item, Batch):
            if item._taken:
                self._ack_through(item._taken[-1], None)
            return
        event = _event_of(item)
        if event is None:
            raise TypeError(f"{item!r} is not a message")
        if not self._ack_through(event, item) and (
                SubscriptionKey(item.strategy_id or 0, item.channel) not in self.keys):
            raise ValueError(f"{item!r} is not a message of this stream")

    # --- reports ---------------------------------------------------------------------------

    @property
    def cursors(self) -> Mapping[SubscriptionKey, int]:
        """The acknowledged cursor of each stream (a copy)."""
        return dict(self._engine.written) if self._engine is not None else {}

    @property
    def backlog(self) -> int:
        """Stream messages received and not yet acknowledged (waiting, or delivered and
        being handled): 0 when the consumer has caught up.  Any thread may read it."""
        engine = self._engine
        return engine.handoff.backlog if engine is not None else 0

    @property
    def ever_confirmed(self) -> bool:
        """Some subscription was confirmed by the server."""
        return self._engine is not None and self._engine.ever_confirmed

    def connections_down(self) -> list[ConnectionHealth]:
        """The connections that were down when last heard of, with the subscriptions
        they carry that the server did not reject."""
        return self._engine.connections_down() if self._engine is not None else []

    def held_aside(self) -> list[HeldAside]:
        """Streams whose messages at or below the cursor were held aside awaiting a
        sequence-reset verdict when the stream stopped (not delivered)."""
        return self._engine.held_aside() if self._engine is not None and self._stopped else []

    def unresolved_gaps(self) -> Batch:
        """After the stream stopped: the announced gaps whose far end never arrived that
        the iteration did not yield (a close or an exception ended it first)."""
        if self._gaps_yielded or not self._stopped:
            return Batch([])
        return Batch(list(self._final_gaps or []))

    # --- internals: delivering ---------------------------------------------------------------

    def _next_batch(self, idle: Callable[[], float | None] | None = None) -> Batch | None:
        if not self._started:
            self.start()
        if self._closed:
            self.end_reason = self.end_reason or StreamEnd.CLOSED
            return self._finish()
        ready = self._ready
        if ready is not None:  # on_event raised before it was returned
            self._ready = None
            return ready
        if self.options.auto_ack and self._delivered:
            self._acknowledge_lists(len(self._delivered))
        engine = self._engine
        assert engine is not None
        rest_side = self._rest_side
        if rest_side is not None and rest_side.snapshot_due and self.end_reason is None:
            if rest_side.in_background:
                rest_side.snapshot_in_background(engine)
            else:
                snapshot = rest_side.take_snapshot()
                if snapshot:
                    self._delivered.append(snapshot)
                    return Batch(snapshot)
        while True:
            if self._interrupted and self.end_reason is None:
                self.end_reason = StreamEnd.CLOSED
            if self.end_reason is not None:
                return self._finish()
            deadline = self._deadline
            if deadline is not None and self.options.clock() >= deadline:
                # Defect 1: checked at every request, also while batches keep coming.
                self._timed_out(engine)
                continue
            if self._inbox_at >= len(self._inbox):
                until, woken = deadline, False
                seconds = idle() if idle is not None else None
                if seconds is not None:
                    quiet_until = self.options.clock() + seconds
                    if until is None or quiet_until < until:
                        until, woken = quiet_until, True
                if not self._take(engine, until):
                    if woken and self.end_reason is None:
                        return Batch([])  # idle: the caller looks at its own work
                    continue
            batch = self._cut(engine)
            if batch is not None:
                return batch

    def _take(self, engine: Engine, deadline: float | None) -> bool:
        """Fill the inbox from the engine, waiting until the deadline at most; False when
        nothing came (or the stream ended)."""
        limit = self._batch_limit()
        if self._backlog_full(engine, limit):
            return True  # what was queued is in the inbox
        wait = None if deadline is None else max(0.0, deadline - self.options.clock())
        try:
            events = engine.next_batch(wait, limit)
        except C2wsError as error:
            self._end_with(error)
            return False
        if not events:
            return False
        self._inbox, self._inbox_at = events, 0
        self._inbox_written_ahead = engine.written_ahead
        return True

    def _cut(self, engine: Engine) -> Batch | None:
        """The next batch out of the inbox: the events before its first message go to
        ``on_event``; it ends before the next other event, or where ``count`` or
        ``fail_on_gap`` ends the stream.  None when the inbox held no message to give."""
        events, start = self._inbox, self._inbox_at
        options = self.options
        count, select = options.count, options.select
        if start == 0 and select is None and self._gap is None and (
                set(map(type, events)) <= _MESSAGES):
            size = ev.message_count(events)
            if count is None or count - self.delivered > size:
                # A burst: nothing but stream messages, none of them an ending.
                if self._rest_side is not None:
                    self._rest_side.observe(events)
                self._inbox, self._inbox_at = [], 0
                self.delivered += size
                batch = Batch(events)
                if self._inbox_written_ahead:
                    # Out already, with everything before it acknowledged: acknowledged
                    # now (an interruption from here on finds it written, as it is).
                    batch.written_ahead = True
                    engine.acknowledge(events)
                    return batch
                self._unacked += size
                self._delivered.append(events)
                return batch
        # (Never a batch written ahead: write_ahead refuses what would bring it here.)
        if start == 0:
            # Event by event from here: a run is its messages.
            events = self._inbox = ev.expand_runs(events)
        on_event = options.on_event
        end = len(events)
        index = start
        # Other events before the batch's first message, one at a time: an exception
        # on_event raises leaves the inbox just after the event it was given.
        while index < end and type(events[index]) not in _MESSAGE_TYPES:
            event = events[index]
            index += 1
            self._inbox_at = index
            if self._rest_side is not None and type(event) is ev.Connected:
                self._rest_side.connected(event)
            elif type(event) is ev.SubscriptionsChanged:
                self._subscriptions_changed(event)
            try:
                if on_event is not None:
                    on_event(event)
            finally:
                engine.acknowledge([event])
        passed_on = index > start
        traffic: list[ev.Event] = []  # frames of the batch's messages: passed before it
        shown: list[ev.Event] = []
        taken: list[ev.Event] = []
        left_out = False
        while index < end:
            event = events[index]
            kind = type(event)
            if kind is _STREAM_MESSAGE:
                index += 1
                taken.append(event)
                if select is not None and not select(typed(event)):  # type: ignore[arg-type]
                    left_out = True
                    continue
                shown.append(event)
                self.delivered += 1
                if self._rest_side is not None:
                    self._rest_side.observe((event,))
                gap = self._gap
                if gap is not None and event.key == gap.key:  # type: ignore[union-attr]
                    self._end_with(_gap_error(gap))
                    break
                if count is not None and self.delivered >= count:
                    self.end_reason = StreamEnd.COUNT
                    break
            elif kind is _GAP or kind is _RESET:
                # Gaps and resets are always delivered (``select`` judges messages): a
                # hole must never go unseen.
                index += 1
                taken.append(event)
                shown.append(event)
                healed = False
                if kind is _GAP and self._rest_side is not None and options.heal_gaps:
                    # Issue 24: the hole's orders right after the gap, before the first
                    # signal after it (the inbox may have to be topped up to see it).
                    events, end = self._rest_side.top_up(engine, event)  # type: ignore[arg-type]
                    backfill, healed = self._rest_side.heal(event, events[index:])  # type: ignore[arg-type]
                    taken.extend(backfill)
                    shown.extend(backfill)
                if options.fail_on_gap and self._gap is None and not healed:
                    self._gap = event  # type: ignore[assignment]
            elif kind is _TRAFFIC:
                index += 1
                traffic.append(event)
            else:
                break  # the batch ends before the next other event
        if index >= end:
            self._inbox, self._inbox_at = [], 0
        else:
            self._inbox_at = index
        # Events went to on_event and no message follows: an empty batch says so.
        passed_on = passed_on or bool(traffic)
        if not taken:
            self._pass_on(engine, traffic)
            return _EMPTY if passed_on else None
        self._unacked += ev.message_count(taken)
        self._delivered.append(taken)
        if not shown:
            # Left out by ``select``: handled, in order (after what is still unacknowledged).
            if len(self._delivered) == 1:
                self._acknowledge_lists(1)
            self._pass_on(engine, traffic)
            return _EMPTY if passed_on else None
        batch = Batch(shown, taken if left_out else None)
        if traffic:
            self._ready = batch  # returned at the next request if on_event raises
            self._pass_on(engine, traffic)
            self._ready = None
        return batch

    def _pass_on(self, engine: Engine, others: list[ev.Event]) -> None:
        """Hand ``others`` to on_event in order; they count as handled whatever it does."""
        if not others:
            return
        on_event = self.options.on_event
        try:
            if on_event is not None:
                for event in others:
                    on_event(event)
        finally:
            engine.acknowledge(others)

    def _batch_limit(self) -> int | None:
        """The most events the next batch may take: what grouped commits have room for
        (waiting for a commit to end when there is none), one for a store that commits
        each message, else no limit."""
        if self._commits is not None:
            return self._commits.room(self._unacked)
        return 1 if getattr(self.cursors_store, "commits_each_message", False) else None

    def _backlog_full(self, engine: Engine, batch_limit: int | None = None) -> bool:
        """Defect 3: with ``auto_ack=False``, the delivered and unacknowledged messages
        are part of the backlog; a request that could only wait for ever (the backlog is
        full of them, or a connection is paused until some are acknowledged) raises
        :class:`BacklogFull`.  True when it filled the inbox with what was queued."""
        if self.options.auto_ack or not self._unacked:
            return False
        limit = self.config.max_buffer
        if self._unacked >= limit:
            raise BacklogFull(self._unacked, limit)
        if self._unacked > limit // spec.BACKLOG_RESUME_DIVISOR and any(
                health.waiting_for_room for health in engine.health):
            try:
                queued = engine.next_batch(0, batch_limit)
            except C2wsError as error:
                self._end_with(error)
                return False
            if queued:
                self._inbox, self._inbox_at = queued, 0
                self._inbox_written_ahead = engine.written_ahead
                return True
            raise BacklogFull(self._unacked, limit)
        return False

    def _cut_current(self, at: int) -> None:
        """Deliver only the first ``at`` messages of the current batch (the deadline
        passed while the caller was behind): the rest is never acknowledged."""
        current = self._current
        assert current is not None and self._engine is not None
        last = current.events[at - 1]
        for index in range(len(self._delivered) - 1, -1, -1):
            part = self._delivered[index]
            position = _position(part, last)
            if position >= 0:
                rest = part[position + 1:]
                self._delivered[index] = part[:position + 1]
                self._unacked -= countOf(map(type, rest), _STREAM_MESSAGE)
                self.undelivered += countOf(map(type, rest), _STREAM_MESSAGE)
                break
        self.delivered -= countOf(map(type, current.events[at:]), _STREAM_MESSAGE)
        self._current = Batch(list(current.events[:at]))
        self._current_at = at
        self._timed_out(self._engine)

    def _timed_out(self, engine: Engine) -> None:
        """The deadline passed: the stream ends (TIMEOUT), with the connection's error
        when no subscription was ever confirmed (nothing could have been delivered)."""
        if not engine.ever_confirmed:
            last = engine.last_end
            detail = f": {last.detail}" if last is not None and last.detail else ""
            message = (f"timed out after {self.options.timeout:g} s before any "
                       f"subscription was confirmed{detail}")
            self._pending_error = connection_error(
                last or ConnectionEnd(EndReason.NO_CONNECTED), message)
        self.end_reason = StreamEnd.TIMEOUT

    def _end_with(self, error: C2wsError) -> None:
        self.end_reason = StreamEnd.ERROR
        self._pending_error = error

    def _finish(self) -> Batch | None:
        """Once ended: stop the engine, yield the unresolved gaps once, then raise the
        error that ended the stream (again at every request), or end the iteration."""
        self._stop_engine()
        if not self._gaps_given:
            self._gaps_given = True
            if self._final_gaps:
                self._gaps_yielded = True
                final: list[ev.Event] = list(self._final_gaps)
                if self._rest_side is not None and self.options.heal_gaps:
                    final = self._rest_side.heal_all(self._final_gaps)
                return Batch(final)
        if self._pending_error is not None:
            raise self._pending_error
        return None

    # --- internals: acknowledging ------------------------------------------------------------

    def _acknowledge_lists(self, how_many: int) -> None:
        """Acknowledge the oldest ``how_many`` delivered event lists."""
        engine = self._engine
        assert engine is not None
        if how_many <= 0:
            return
        lists = self._delivered[:how_many]
        del self._delivered[:how_many]
        events = lists[0] if len(lists) == 1 else [e for part in lists for e in part]
        messages = ev.message_count(events)
        self._unacked -= messages
        if self._rest_side is not None:
            events = [e for e in events if type(e) not in _REST_EVENTS]
        engine.acknowledge(events)
        commits = self._commits
        if commits is not None:
            # After the engine committed the cursors into it: the group may fall due.
            # (A run counts as its messages: a reset is looked for among the events.)
            reset = _RESET in set(map(type, events))
            commits.acknowledged(messages, reset=reset)

    def _ack_through(self, event: object, item: Message | None) -> bool:
        """Acknowledge the delivered events up to ``event``; False when it is not among
        them."""
        delivered = self._delivered
        for index in range(len(delivered) - 1, -1, -1):
            position = _position(delivered[index], event, item)
            if position < 0:
                continue
            part = delivered[index]
            if position == len(part) - 1:
                self._acknowledge_lists(index + 1)
            else:
                head, rest = part[:position + 1], part[position + 1:]
                delivered[index] = head
                self._acknowledge_lists(index + 1)
                delivered.insert(0, rest)
            return True
        return False

    def _ack_handled(self, *, including_last: bool) -> None:
        """At close (auto_ack): what the caller asked past, and the last message it was
        given when it ended cleanly."""
        if not self._delivered:
            return
        current = self._current
        if current is None:  # batch by batch: the last batch is the one being handled
            self._acknowledge_lists(len(self._delivered) - (0 if including_last else 1))
            return
        handled = self._current_at if including_last else self._current_at - 1
        if handled > 0:
            last = current.events[handled - 1]
            self._ack_through(last, typed(last))  # type: ignore[arg-type]
        elif len(self._delivered) > 1:
            self._acknowledge_lists(len(self._delivered) - 1)

    # --- internals: stopping -------------------------------------------------------------------

    def _stop_engine(self) -> None:
        if self._stopped or self._engine is None:
            self._stopped = True
            return
        self._stopped = True
        engine = self._engine
        engine.stop()
        left = self._inbox[self._inbox_at:]
        self._inbox, self._inbox_at = [], 0
        # Written ahead, so out already, but not delivered yet: still in the hand-off, or
        # taken (an interruption came between).  Delivered, and acknowledged.
        ahead = engine.handoff.take_written_ahead()
        if left and self._inbox_written_ahead:
            ahead, left = left + ahead, []
        if ahead:
            self.delivered += ev.message_count(ahead)
            engine.acknowledge(ahead)
        discarded = engine.handoff.discard()
        self.undelivered += ev.message_count(left) + ev.message_count(discarded)
        self._final_gaps = engine.unresolved_gaps()

    def _close_store(self) -> None:
        store = self.cursors_store
        if store is None or not self._store_opened:
            return
        self._store_opened = False
        closer = getattr(store, "close", None)
        try:
            if self._commits is not None:
                self._commits.close()  # what was acknowledged, however the stream ended
        finally:
            if closer is not None:
                closer()


def _position(events: list[ev.Event], event: object, item: object = None) -> int:
    """Where ``event`` is in ``events`` (by identity, from the end; a sequence reset by
    its stream and numbering); -1 when it is not."""
    for index in range(len(events) - 1, -1, -1):
        candidate = events[index]
        if candidate is event:
            return index
        if isinstance(candidate, ev.SequenceReset) and isinstance(item, SequenceReset) and (
                candidate.key == (item.strategy_id, item.channel)
                and candidate.next_seq == item.first_seq_id):
            return index
    return -1


def _event_of(item: object) -> object | None:
    """The engine event a typed message was built from (a reset: none is kept, it is
    found by its stream and numbering)."""
    if isinstance(item, (Signal, Position)):
        return item._event
    if isinstance(item, Gap):
        return item._gap
    if isinstance(item, SequenceReset):
        return _RESET_PLACEHOLDER
    source = getattr(item, "_source", None)  # issue 24: a REST line the stream wrote
    return source if type(source) in _REST_EVENTS else None


# What a request returns when only other events came (see Stream.batches).
_EMPTY: Final = Batch([])

# A sequence reset is found by its stream and numbering (see _position).
_RESET_PLACEHOLDER: Final[object] = object()


def _gap_error(gap: ev.GapReported | ev.SequenceReset) -> GapDetected:
    reset = isinstance(gap, ev.SequenceReset)
    why = ("restarted the numbering" if reset
           else "could not replay every missed signal")
    return GapDetected(f"the server {why} of {gap.key}", key=gap.key, reset=reset)


# --- issue 24: the REST side of a stream (heal_gaps, snapshot) -----------------------------


class _SnapshotStopped(Exception):
    """The stream closed while its snapshot thread was taking a snapshot."""


# Snapshot threads still running after their stream's close() waited for them: each is
# inside a REST request (nothing else outlasts the wait).  Weak: an ended thread leaves.
_left_in_flight: weakref.WeakSet[threading.Thread] = weakref.WeakSet()


def requests_left_in_flight() -> bool:
    """True while a closed stream's snapshot thread is still inside a REST request (a
    server slower than spec.SNAPSHOT_STOP_WAIT_SECONDS).  The interpreter's finalization
    must not run under it: the CLI then ends with ``os._exit`` (c2ws.cli.entry)."""
    return any(thread.is_alive() for thread in list(_left_in_flight))


class _RestSide:
    """What a stream does with the REST API: the gap healer (:mod:`c2ws.backfill`, its
    rules) and the positions snapshots.  The REST client is made at the first call."""

    def __init__(self, stream: Stream) -> None:
        self._stream = stream
        options = stream.options
        self._client: object | None = None
        self.snapshot_due = bool(options.snapshot)
        self._on_reconnect = options.snapshot == "reconnect"
        self._shards_seen: set[int] = set()
        self._strategies = list(dict.fromkeys(key.strategy_id for key in stream.keys))
        # "reconnect" (the table): snapshots on a thread of their own, whose events go
        # through the engine's hand-off like any other; the live stream never waits.
        self.in_background = self._on_reconnect
        self._snapshot_thread: threading.Thread | None = None
        self._snapshot_again = False
        # Set by close(): the snapshot thread takes no further request nor retry wait.
        self._stopping = threading.Event()
        self._healer = None
        if options.heal_gaps:
            from c2ws.backfill import GapHealer

            self._healer = GapHealer(self._fetch)

    def strategies_changed(self, keys: Sequence[SubscriptionKey]) -> None:
        """The stream follows ``keys`` now (a live change): the snapshots follow."""
        self._strategies = list(dict.fromkeys(key.strategy_id for key in keys))

    def _rest(self) -> object:
        if self._client is None:
            from c2ws.rest.client import RestClient

            config = self._stream.config
            assert self._stream.options.rest_url is not None
            self._client = RestClient(self._stream.options.rest_url, config.api_key)
        return self._client

    def _fetch(self, strategy_id: int, start: object, end: object) -> list[JsonObject]:
        rest = self._rest()
        return list(rest.historical_orders(strategy_id, start, end))  # type: ignore[attr-defined]

    def close(self) -> None:
        """Stop the snapshot thread, waiting for it at most SNAPSHOT_STOP_WAIT_SECONDS.

        Why wait: a daemon thread still importing httpx or building its TLS context when
        the interpreter exits can crash the process (SIGSEGV, seen in CI); a request in
        flight is the only thing that can outlast the wait, and is then noted for
        :func:`requests_left_in_flight`."""
        self._stopping.set()
        thread = self._snapshot_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(spec.SNAPSHOT_STOP_WAIT_SECONDS)
            if thread.is_alive():
                _left_in_flight.add(thread)
        if self._client is not None:
            self._client.close()  # type: ignore[attr-defined]
            self._client = None

    # --- snapshots ---

    def connected(self, event: ev.Connected) -> None:
        """A connection came up: after a reconnect, a new snapshot (``"reconnect"``)."""
        if event.shard in self._shards_seen and self._on_reconnect:
            self.snapshot_due = True
        self._shards_seen.add(event.shard)

    def take_snapshot(self) -> list[ev.Event]:
        """Each strategy's open positions now; a failure is a SnapshotFailed to
        on_event (a warning), never the end of the stream."""
        self.snapshot_due = False
        taken, failed = self._snapshots(self._rest())
        on_event = self._stream.options.on_event
        if on_event is not None:
            for failure in failed:
                on_event(failure)
        return taken

    def _snapshots(self, rest: object) -> tuple[list[ev.Event], list[ev.Event]]:
        """(the snapshots taken, the SnapshotFailed of those that could not be)."""
        from c2ws.rest.results import snapshot_event

        taken: list[ev.Event] = []
        failed: list[ev.Event] = []
        for strategy_id in self._strategies:
            if self._stopping.is_set():
                raise _SnapshotStopped
            try:
                positions = rest.open_positions(strategy_id)  # type: ignore[attr-defined]
            except C2wsError as error:
                failed.append(ev.SnapshotFailed(strategy_id, str(error)))
                continue
            taken.append(snapshot_event(strategy_id, positions, time.time()))
        return taken, failed

    def snapshot_in_background(self, engine: Engine) -> None:
        """Take the snapshots on a thread of their own and hand them over through the
        engine's hand-off; one at a time (a reconnect during one asks for another)."""
        self.snapshot_due = False
        thread = self._snapshot_thread
        if thread is not None and thread.is_alive():
            self._snapshot_again = True
            return
        self._snapshot_thread = threading.Thread(
            target=self._snapshot_into, args=(engine,), name="c2ws-snapshot", daemon=True)
        self._snapshot_thread.start()

    def _snapshot_into(self, engine: Engine) -> None:
        # A client of its own: the consumer's (heal_gaps) is used on the consumer thread.
        from c2ws.rest.client import RestClient

        stream = self._stream
        assert stream.options.rest_url is not None
        rest = RestClient(stream.options.rest_url, stream.config.api_key,
                          sleep=self._retry_wait)
        try:
            while True:
                self._snapshot_again = False
                taken, failed = self._snapshots(rest)
                # A closed hand-off (the stream stopped) takes nothing: that is fine.
                engine.handoff.put(failed + taken)
                if not self._snapshot_again:
                    return
        except _SnapshotStopped:
            return
        finally:
            rest.close()

    def _retry_wait(self, seconds: float) -> None:
        """The snapshot client's wait before a retry: cut short by close()."""
        if self._stopping.wait(seconds):
            raise _SnapshotStopped

    # --- gaps ---

    def observe(self, events: Sequence[ev.Event]) -> None:
        if self._healer is not None:
            self._healer.observe(events)

    def top_up(self, engine: Engine, gap: ev.GapReported) -> tuple[list[ev.Event], int]:
        """The inbox, with the first message after the hole in it when the engine has
        it queued (a store that commits each message takes one event at a time)."""
        stream = self._stream
        events = stream._inbox
        after = events[stream._inbox_at:]
        if gap.next_seq is not None and not any(
                type(e) is _STREAM_MESSAGE and e.key == gap.key for e in after):
            try:
                more = engine.next_batch(0.0, 1)
            except C2wsError:
                more = []  # the engine says so at the next request
            if more:
                events = stream._inbox = events + more
        return events, len(events)

    def heal(self, gap: ev.GapReported, ahead: Sequence[ev.Event]) -> tuple[list[ev.Event], bool]:
        """The events that follow the gap, and whether it was healed."""
        assert self._healer is not None
        backfill, done = self._healer.heal(gap, ahead)
        on_event = self._stream.options.on_event
        if on_event is not None:
            on_event(done)
        return backfill, not done.failed

    def heal_all(self, gaps: Sequence[ev.GapReported]) -> list[ev.Event]:
        """Gaps whose far end never came (the run ended): each with its backfill."""
        out: list[ev.Event] = []
        for gap in gaps:
            out.append(gap)
            out.extend(self.heal(gap, ())[0])
        return out
