"""What ``c2ws subscribe`` tells the outside besides its output (issue 25): the
"reconnected" line once a connection has caught up, the status report on SIGUSR1,
``--strict``, the metrics server (``--metrics``) and systemd's notifications
(``Type=notify``).

A shell: the numbers are :class:`c2ws.monitor.health.StreamHealth`'s, fed here on the
consumer's thread with the events the stream passes to ``on_event`` and the batches
written (:class:`c2ws.cli.run.SubscribeRun` calls :meth:`RunWatch.before`,
:meth:`RunWatch.after` and :meth:`RunWatch.written`).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Final

from c2ws import events as ev
from c2ws.cli.shared import threads_without_signals
from c2ws.errors import SubscriptionsRejected

if TYPE_CHECKING:
    from c2ws import Stream
    from c2ws.monitor.health import HealthSnapshot, StreamHealth
    from c2ws.monitor.metrics import MetricsServer
    from c2ws.monitor.notify import SystemdNotifier
    from c2ws.render.diagnostics import Diagnostics

# Events after which systemd's STATUS= is brought up to date.
_STATUS_EVENTS: Final = frozenset({ev.Connected, ev.ConnectionEnded, ev.ShardFailed})
_ANSWERS: Final = frozenset({ev.SubscriptionConfirmed, ev.SubscriptionRejected})


class RunWatch:
    """See the module docstring.  ``strict``: a rejected subscription ends the run
    (exit 7), not only every one of them."""

    def __init__(
        self, stream: Stream, diagnostics: Diagnostics, health: StreamHealth, *,
        metrics: MetricsServer | None = None, notifier: SystemdNotifier | None = None,
        strict: bool = False,
    ) -> None:
        self.stream = stream
        self.diagnostics = diagnostics
        self.health = health
        self.metrics = metrics
        self.notifier = notifier if notifier is not None and notifier.enabled else None
        self.strict = strict
        self._ready_told = False
        self._watchdog: threading.Thread | None = None
        self._stopping = threading.Event()

    # --- fed by the run ---------------------------------------------------------------------

    def before(self, event: ev.Event) -> None:
        """An event, before stderr and the output see it."""
        line = self.health.observe(event)
        if line is not None:  # the connection ended again before its line was due
            self.diagnostics.reconnected(line)

    def after(self, event: ev.Event) -> None:
        """An event, once stderr and the output have seen it."""
        if self.health.coming_back:
            self._say_due()
        notifier = self.notifier
        if notifier is not None:
            kind = type(event)
            if kind in _STATUS_EVENTS or (kind in _ANSWERS and not self._ready_told
                                          and self.health.ready):
                self._status(notifier)
        if self.strict and isinstance(event, ev.SubscriptionRejected):
            raise SubscriptionsRejected(
                f"stopping (--strict): subscription {event.key} was rejected")

    def written(self, events: Sequence[ev.Event]) -> None:
        """A batch was written and acknowledged (its events)."""
        self.health.written(events)
        if self.health.coming_back:
            self._say_due()

    def finish(self) -> None:
        """The run has ended: the lines still due, and systemd is told."""
        for line in self.health.finish():
            self.diagnostics.reconnected(line)
        if self.notifier is not None:
            self.notifier.notify("STOPPING=1", f"STATUS=stopping; {self.health.summary()}")

    def start(self) -> None:
        """Start pinging systemd's watchdog, when the unit has one (WatchdogSec=): at half
        its interval, as sd_watchdog_enabled(3) asks, and only while heartbeats flow on
        every connection (read from the socket threads, see StreamHealth), so a run that
        stopped hearing from the server is restarted.  A thread of its own, asleep
        between pings: the consumer may wait for a message for as long as the market is
        quiet."""
        notifier = self.notifier
        if notifier is None or notifier.watchdog is None:
            return
        with threads_without_signals():
            self._watchdog = threading.Thread(target=self._feed_watchdog, args=(notifier,),
                                              name="c2ws-watchdog", daemon=True)
            self._watchdog.start()

    def close(self) -> None:
        self._stopping.set()
        if self._watchdog is not None:
            self._watchdog.join()
        if self.metrics is not None:
            self.metrics.close()
        if self.notifier is not None:
            self.notifier.close()

    # --- SIGUSR1 ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def status_signal(self) -> Iterator[None]:
        """While the run goes on, SIGUSR1 prints :meth:`report` (the main thread only:
        signals are delivered there)."""
        if not hasattr(signal, "SIGUSR1") or (
                threading.current_thread() is not threading.main_thread()):
            yield
            return

        def on_usr1(signum: int, frame: FrameType | None) -> None:
            # Not here: the main thread may be in the middle of a line on stderr (a print
            # re-entered from a handler can write it twice) or hold the table's lock.  A
            # thread of its own waits for those like any other writer.
            with threads_without_signals():
                threading.Thread(target=self.report, name="c2ws-status", daemon=True).start()

        previous = signal.signal(signal.SIGUSR1, on_usr1)
        try:
            yield
        finally:
            signal.signal(signal.SIGUSR1, previous)

    def report(self) -> None:
        """The status report: a summary, a line per connection, one on the output.  Asked
        for, so shown with -q too."""
        say = self.diagnostics.say
        snap = self.health.snapshot()
        running = _duration(snap.now - snap.started)
        say(f"status: running for {running}; {self.health.summary(snap)}", event="status",
            always=True)
        for connection in snap.connections:
            say(_describe_connection(snap, connection.shard), event="status.connection",
                connection=connection.shard + 1, always=True)
        last = ("nothing yet" if snap.last_message is None
                else f"the last {_duration(snap.message_age())} ago")
        dropped = sum(snap.dropped.values())
        say(f"output: {snap.written:,} message(s) written ({last}), "
            f"{self.stream.backlog:,} waiting; {dropped:,} dropped "
            f"({snap.dropped.get('duplicate', 0):,} duplicate(s)); "
            f"{sum(snap.gaps.values()):,} gap(s), {sum(snap.resets.values()):,} sequence "
            f"reset(s), {sum(snap.reconnects.values()):,} reconnect(s), {snap.commits:,} "
            "state commit(s)", event="status.output", always=True)

    # --- internals --------------------------------------------------------------------------

    def _say_due(self) -> None:
        for line in self.health.due(self.stream.backlog):
            self.diagnostics.reconnected(line)

    def _status(self, notifier: SystemdNotifier) -> None:
        assignments = [f"STATUS={self.health.summary()}"]
        if not self._ready_told and self.health.ready:
            self._ready_told = True
            assignments.insert(0, "READY=1")
        self._notify(notifier, assignments)

    def _feed_watchdog(self, notifier: SystemdNotifier) -> None:
        assert notifier.watchdog is not None
        while not self._stopping.wait(notifier.watchdog / 2):
            snap = self.health.snapshot()
            if snap.unhealthy():
                continue  # no ping: systemd acts once WatchdogSec= has passed without one
            if not notifier.notify("WATCHDOG=1", f"STATUS={self.health.summary(snap)}"):
                return

    def _notify(self, notifier: SystemdNotifier, assignments: list[str]) -> None:
        if not notifier.notify(*assignments) and notifier.failure is not None:
            self.diagnostics.say(notifier.failure, "yellow", event="systemd")
            self.notifier = None

    def warn_about_watchdog(self) -> None:
        """A WatchdogSec= shorter than the heartbeat deadline would have systemd stop a
        healthy run between two heartbeats."""
        notifier = self.notifier
        if notifier is None or notifier.watchdog is None:
            return
        deadline = self.health.heartbeat_deadline
        if notifier.watchdog < deadline:
            self.diagnostics.say(
                f"WatchdogSec={notifier.watchdog:g}s is shorter than the heartbeat deadline "
                f"({deadline:g} s): c2ws pings the watchdog at each heartbeat, so systemd "
                "may stop a healthy run; use WatchdogSec=2min", "yellow", event="systemd")


def _duration(seconds: float) -> str:
    """``42 s``, ``3 min 12 s``, ``2 h 05 min``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _describe_connection(snap: HealthSnapshot, shard: int) -> str:
    connection = snap.connections[shard]
    if connection.gave_up:
        state = "gave up"
    elif connection.up and connection.up_since is not None:
        state = f"up for {_duration(snap.now - connection.up_since)}"
    elif connection.down_since is not None:
        state = f"down for {_duration(snap.now - connection.down_since)}"
        if connection.attempt:
            state += f" (reconnect attempt {connection.attempt})"
    else:
        state = "connecting"
    heartbeat = ("no heartbeat yet" if connection.last_heartbeat is None
                 else f"last heartbeat {_duration(snap.heartbeat_age(connection))} ago")
    return (f"connection {shard + 1}: {state}; {connection.subscriptions} subscription(s); "
            f"{heartbeat}")
