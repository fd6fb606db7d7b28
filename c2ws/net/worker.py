"""One socket thread per connection slot: connect, drive, reconnect.

A :class:`ShardWorker` owns one slot of the connection pool for the whole run.  It opens
a connection (cancellable: a stop request ends a connect at once), runs a fresh
:class:`~c2ws.session.ClientSession` over it with the connection driver
(c2ws/net/driver.py), hands the session's events over, and when the connection ends asks
:mod:`c2ws.delivery.backoff` whether and when to try again.  It never waits for the
output side: the hand-off never blocks, and a backlog past its limit closes the
connection (to be resumed once the reader has caught up) instead.  The thread blocks in
``poll`` on the socket, the stop signal and the session's next deadline: an idle
subscription costs no CPU.  In a run of several connections the sessions run on one
poller thread instead (c2ws/net/poller.py), each worker sleeping while its own does.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from operator import countOf
from typing import Final
from urllib.parse import urlsplit

from c2ws import events as ev
from c2ws import spec
from c2ws.delivery.backoff import Backoff, Retry, RetryBudget
from c2ws.delivery.dedupe import StreamFilter
from c2ws.events import ConnectionEnd, EndReason, SubscriptionKey
from c2ws.net.connection import (
    ConnectFailed,
    ConnectFailure,
    HandshakeRejected,
    SocketTransport,
    StopSignal,
    open_connection,
    redact_key,
)
from c2ws.net.driver import Driver, DriverHooks, DriverSettings
from c2ws.net.handoff import Handoff
from c2ws.net.poller import Poller
from c2ws.redaction import KeyRedactor
from c2ws.session import ClientSession, SessionTimeouts, SubscriptionState

HTTP_NOT_FOUND: Final = 404


@dataclass(frozen=True)
class ConnectionSettings:
    """What every connection of a run shares."""

    url: str
    api_key: str
    connect_timeout: float = 10.0
    timeouts: SessionTimeouts = field(default_factory=SessionTimeouts)
    # A frame whose bytes stop arriving, or a send the server does not take, for this long.
    io_timeout: float = spec.FRAME_COMPLETION_TIMEOUT_SECONDS
    traffic: bool = False
    reconnect: bool = True
    max_retries: int | None = None
    per_connection: int = spec.MAX_SUBSCRIPTIONS_PER_CONNECTION
    report_heartbeats: bool = True
    decoded_payloads: bool = True
    message_runs: bool = False


# Connect failures retrying cannot fix: the URL, the redirect or the certificate must
# change first.  Everything else at the network level may be transient.
_FATAL_CONNECT_FAILURES: Final = frozenset({
    ConnectFailure.BAD_URL, ConnectFailure.REDIRECT, ConnectFailure.TLS_CERTIFICATE,
})


def end_for_connect_failure(exc: ConnectFailed, url: str) -> ConnectionEnd:
    """What a failed connect + upgrade means for retrying."""
    if exc.kind is ConnectFailure.CANCELLED:
        return ConnectionEnd(EndReason.STOPPED, str(exc))
    if isinstance(exc, HandshakeRejected):
        reason = exc.reason or "no reason given"
        if exc.status == spec.HTTP_UNAUTHORIZED:
            return ConnectionEnd(EndReason.AUTH_FAILED, f"authentication failed: {reason}")
        if exc.status in (spec.HTTP_TOO_MANY_REQUESTS, spec.HTTP_SERVICE_UNAVAILABLE):
            return ConnectionEnd(
                EndReason.BUSY, f"the server refused the connection (HTTP {exc.status}): {reason}",
                retry_after=exc.retry_after,
            )
        hint = ""
        if exc.status == HTTP_NOT_FOUND and not urlsplit(url).path.rstrip("/").endswith("/ws"):
            hint = " (the C2 endpoint's path is /ws)"
        return ConnectionEnd(
            EndReason.UNREACHABLE if exc.status >= 500 else EndReason.REFUSED,
            f"the server refused the upgrade (HTTP {exc.status}): {reason}{hint}",
        )
    fatal = exc.kind in _FATAL_CONNECT_FAILURES
    return ConnectionEnd(
        EndReason.REFUSED if fatal else EndReason.UNREACHABLE, f"cannot connect to {url}: {exc}"
    )


class ShardWorker(threading.Thread):
    """Keeps one connection slot subscribed to ``keys`` until stopped or failed for good."""

    def __init__(
        self,
        shard: int,
        keys: Sequence[SubscriptionKey],
        *,
        settings: ConnectionSettings,
        stream_filter: StreamFilter,
        handoff: Handoff[ev.Event],
        backoff: Backoff,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        connect: Callable[..., SocketTransport] = open_connection,
    ) -> None:
        super().__init__(name=f"c2ws-socket-{shard}", daemon=True)
        self.shard = shard
        self.keys = tuple(keys)
        # Live changes (set_keys, from the consumer's thread): the keys wanted now, the
        # cursors to resume the added ones from (applied on this thread: the filter is
        # its own), and a count of changes the connection compares with what it applied.
        self._keys_lock = threading.Lock()
        self._resume: dict[SubscriptionKey, int | None] = {}
        self.keys_version = 0
        self.settings = settings
        self._filter = stream_filter
        self._handoff = handoff
        self._backoff = backoff
        self._clock = clock
        self._wall = wall_clock
        self._connect = connect
        # A server may echo the key: every frame is redacted before anything sees it.
        self.redactor = KeyRedactor(settings.api_key)
        self._rejected: set[SubscriptionKey] = set()
        self._stop_signal = StopSignal()
        # Set by the engine when the run has several connections (c2ws/net/poller.py):
        # a connection's session then runs on the poller's thread, this one waiting.
        # Read at each connection.
        self.poller: Poller | None = None

    # --- called from other threads -----------------------------------------------------

    def request_stop(self) -> None:
        """Unsubscribe, close with 1000 and end; safe to call more than once.  Wakes the
        thread wherever it waits: connecting, reading, or between connections."""
        self._stop_signal.set()
        self._handoff.wake()

    @property
    def accepts_keys(self) -> bool:
        """Running, and not ending: :meth:`set_keys` may give it more."""
        return self.is_alive() and not self._stop_signal.is_set()

    def set_keys(
        self, keys: Sequence[SubscriptionKey], resume: Mapping[SubscriptionKey, int | None]
    ) -> bool:
        """Carry ``keys`` from now on, without reconnecting: the connection subscribes
        the new ones (resumed from ``resume``, when they have a cursor) and unsubscribes
        the others.  False when the thread is ending (nothing changed then)."""
        with self._keys_lock:
            if not self.accepts_keys:
                return False
            self.keys = tuple(keys)
            self._resume.update(resume)
            self._rejected.difference_update(resume)  # asked for again: tried again
            self.keys_version += 1
        self._stop_signal.nudge()
        return True

    def take_keys(self) -> tuple[list[SubscriptionKey], int]:
        """On this thread: the keys to subscribe now, and the change they include (the
        cursors of added streams are handed to the filter first)."""
        with self._keys_lock:
            resume, self._resume = self._resume, {}
            wanted = self._wanted()
            version = self.keys_version
        for key, held in resume.items():
            self._filter.adopt(key, held)
        return wanted, version

    # --- the thread ----------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # a bug: say so once, never retry it
            summary = f"{type(exc).__name__}: {exc}"
            self._handoff.put([ev.WorkerCrashed(self.shard, summary[:500], traceback.format_exc())])
        finally:
            self._stop_signal.close()

    def _run(self) -> None:
        budget = RetryBudget(
            max_retries=self.settings.max_retries, reconnect=self.settings.reconnect
        )
        while not self._stop_signal.is_set():
            end, was_connected, served_since = self._attempt()
            served_for = None if served_since is None else self._clock() - served_since
            # A server may echo the key (in a close reason, an error...).
            end = replace(end, detail=redact_key(end.detail, self.settings.api_key))
            self._handoff.put([ev.ConnectionEnded(self.shard, end, was_connected)])
            if self._stop_signal.is_set() or end.reason is EndReason.STOPPED:
                return
            decision = budget.after(end, served_for)
            failures = decision.failures
            if decision.give_up:
                self._handoff.put([ev.ShardFailed(self.shard, end, failures)])
                return
            if decision.retry is Retry.WHEN_DRAINED:
                self._handoff.put([ev.Reconnecting(self.shard, failures, None, end)])
                stopping = self._stop_signal.is_set
                resume_level = self._handoff.limit // spec.BACKLOG_RESUME_DIVISOR
                if not self._handoff.wait_for_room(resume_level, stopping):
                    return
            else:
                delay = self._backoff.delay(end.reason, failures, end.retry_after)
                self._handoff.put([
                    ev.Reconnecting(self.shard, failures, delay, end, end.retry_after)
                ])
                if self._stop_signal.wait(delay):
                    return

    def _wanted(self) -> list[SubscriptionKey]:
        return [key for key in self.keys if key not in self._rejected]

    def _attempt(self) -> tuple[ConnectionEnd, bool, float | None]:
        """One connection from connect to close: (how it ended, reached
        connection.connected, when every subscription had been answered: None if never)."""
        settings = self.settings
        try:
            transport = self._connect(settings.url, settings.api_key,
                                      timeout=settings.connect_timeout, stop=self._stop_signal)
        except ConnectFailed as exc:
            return end_for_connect_failure(exc, settings.url), False, None
        try:
            now = self._clock()
            session = ClientSession(
                request_id_prefix=f"c2ws-{secrets.token_hex(4)}",
                stream_filter=self._filter,
                now=now,
                timeouts=settings.timeouts,
                shard=self.shard,
                max_subscriptions=settings.per_connection,
                report_heartbeats=settings.report_heartbeats,
                decoded_payloads=settings.decoded_payloads,
                message_runs=settings.message_runs,
            )
            wanted, version = self.take_keys()
            for key in wanted:
                session.subscribe(key, now=now, wall=self._wall())
            hooks = _HandOver(self, session)
            hooks.keys_version = version
            driver = Driver(
                transport, session, hooks=hooks, stop=self._stop_signal,
                settings=DriverSettings(io_timeout=settings.io_timeout, traffic=settings.traffic),
                redactor=self.redactor, clock=self._clock, wall=self._wall,
            )
            hooks.driver = driver
            poller = self.poller
            if poller is None:
                end = driver.run()
            else:
                poller.drive(driver)
                end = driver.finish()
            return end, session.connected_at is not None, hooks.served_since
        finally:
            transport.close()


class _HandOver(DriverHooks):
    """The socket thread's side of the hand-off: batches to the output thread, woken
    once per burst; a backlog past --max-buffer closes the connection."""

    def __init__(self, worker: ShardWorker, session: ClientSession) -> None:
        self.worker = worker
        self.session = session
        self.handoff = worker._handoff
        self.driver: Driver | None = None
        self.served_since: float | None = None  # when every subscription was answered
        self.unannounced = 0  # events handed over without waking the output thread
        self.wake_every = max(1, min(spec.HANDOFF_WAKE_EVERY,
                                     self.handoff.limit // spec.HANDOFF_WAKE_DIVISOR))
        self.keys_version = 0  # the worker's change of keys this session carries
        self.read_ahead = min(self.handoff.limit // 2, spec.HANDOFF_READ_AHEAD_MESSAGES)

    def hand_over(self, batch: list[ev.Event]) -> None:
        session, handoff = self.session, self.handoff
        if self.served_since is None and session.all_answered:
            self.served_since = self.worker._clock()
            self._note_rejections()
        # The output thread is woken once the burst is over (see idle), or every
        # wake_every events during a long one: not for every socket read.
        self.unannounced += len(batch) + ev.message_count(batch) - countOf(
            map(type, batch), ev.StreamMessage)  # a run counts as its messages
        wake = self.unannounced >= self.wake_every
        if wake:
            self.unannounced = 0
        backlog = handoff.put(batch, wake=wake)
        leaving = self.driver is not None and self.driver.leaving
        if handoff.above(handoff.limit) and not leaving:
            session.fail(EndReason.OVERFLOW, _behind(handoff, backlog))
            # Closed because the output is behind: it writes the backlog from now on,
            # not from the end of the polite close (and the resume waits for it).
            self.unannounced = 0
            handoff.wake_consumer()
        elif handoff.above(self.read_ahead) and handoff.progressing(
                spec.HANDOFF_PROGRESS_WINDOW_SECONDS):
            # The output thread is writing, only slower than we read: let it catch up a
            # little before reading on, instead of running into the limit (and a close
            # and resume) during a burst (see spec.HANDOFF_FAIRNESS_WAIT_SECONDS).
            self.unannounced = 0
            handoff.wake_consumer()  # it must be awake to catch up
            handoff.wait_below(self.read_ahead, spec.HANDOFF_FAIRNESS_WAIT_SECONDS)

    def deadline(self) -> float | None:
        # A change of keys not applied yet: due at once (the nudge woke the driver).
        return None if self.keys_version == self.worker.keys_version else -math.inf

    def tick(self, now: float) -> None:
        if self.keys_version != self.worker.keys_version:
            self._apply_keys(now)

    def _apply_keys(self, now: float) -> None:
        """Subscribe and unsubscribe to carry the worker's keys (a live change): the
        unsubscribes first, so a full connection has room for what replaces them."""
        session, wall = self.session, self.worker._wall()
        wanted, self.keys_version = self.worker.take_keys()
        keep = set(wanted)
        for key, sub in list(session.subscriptions.items()):
            if key not in keep and sub.state is not SubscriptionState.UNSUBSCRIBING:
                session.unsubscribe(key, now=now, wall=wall)
        for key in wanted:
            session.subscribe(key, now=now, wall=wall)

    def idle(self) -> None:
        if self.unannounced:
            self.unannounced = 0
            self.handoff.wake_consumer()

    def _note_rejections(self) -> None:
        """Rejected subscriptions are not asked for again on the next connection; a
        connection left with nothing to carry is closed."""
        subs = self.session.subscriptions.values()
        self.worker._rejected.update(
            sub.key for sub in subs if sub.state is SubscriptionState.REJECTED
        )
        worker = self.worker
        with worker._keys_lock:
            # Only rejections leave it with nothing: a connection emptied by a live
            # change stays (it takes the next strategies added).
            if not worker._wanted() and worker._rejected:
                worker._stop_signal.set()


def _behind(handoff: Handoff[ev.Event], backlog: int) -> str:
    """Why the output is too far behind: stream messages past --max-buffer, or (a flood
    of control events while stdout is slow) events past their bound."""
    if backlog > handoff.limit:
        return f"stdout is {backlog} messages behind (over --max-buffer {handoff.limit})"
    return (f"the output is {handoff.pending} events behind, {backlog} of them messages "
            f"(over {spec.BACKLOG_EVENTS_PER_MESSAGE} x --max-buffer {handoff.limit})")
