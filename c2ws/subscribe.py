"""``c2ws subscribe`` as a function: connect, stream, stop, and say how it ended.

The output thread (the caller's) renders; a :class:`SocketWorker` thread owns the
socket.  This module decides when to stop and which exit code that means; it knows
nothing of frames or terminals.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from c2ws import events as ev
from c2ws import spec
from c2ws.buffer import BoundedHandoff
from c2ws.events import SubscriptionKey
from c2ws.exitcodes import ExitCode
from c2ws.net.connection import ConnectFailed, HandshakeRejected, open_connection
from c2ws.render import Renderer
from c2ws.render.diagnostics import Diagnostics
from c2ws.render.safe import terminal_safe
from c2ws.session import ClientSession
from c2ws.transport import ConnectionEnded, SocketWorker, TrafficLog, WorkerItem

STOP_JOIN_TIMEOUT = 5.0
DEFAULT_MAX_BUFFER = 10_000
# How long the socket thread waits for a full buffer to drain.  Meanwhile it reads
# nothing, heartbeats included: this must stay well inside the server's 10 s grace.
DEFAULT_MAX_STALL = 5.0


class Terminated(BaseException):
    """Raised in the main thread by the SIGTERM handler."""


@dataclass(frozen=True)
class SubscribeOptions:
    url: str
    api_key: str
    keys: Sequence[SubscriptionKey]
    count: int | None = None
    timeout: float | None = None
    connect_timeout: float = 10.0
    max_buffer: int = DEFAULT_MAX_BUFFER
    max_stall: float = DEFAULT_MAX_STALL
    stale_after: float = spec.CLIENT_STALE_AFTER_SECONDS
    verbose: bool = False


class StdoutClosed(Exception):
    """stdout's reader went away; the caller silences stdout and exits OK."""


class OutputFailed(Exception):
    """Writing stdout failed for a reason other than its reader leaving (disk full...)."""


class StreamEnded(Exception):
    def __init__(self, code: ExitCode, message: str | None = None) -> None:
        super().__init__(message or code.name)
        self.code = code
        self.message = message


def exit_for_handshake(exc: HandshakeRejected) -> StreamEnded:
    reason = terminal_safe(exc.reason or "no reason given")
    if exc.status == spec.HTTP_UNAUTHORIZED:
        return StreamEnded(ExitCode.AUTH_FAILED, f"authentication failed: {reason}")
    if exc.status in (spec.HTTP_TOO_MANY_REQUESTS, spec.HTTP_SERVICE_UNAVAILABLE):
        return StreamEnded(
            ExitCode.SERVER_BUSY, f"server refused the connection (HTTP {exc.status}): {reason}"
        )
    return StreamEnded(
        ExitCode.CONNECT_FAILED, f"server refused the upgrade (HTTP {exc.status}): {reason}"
    )


def exit_for_end(ended: ConnectionEnded, options: SubscribeOptions) -> StreamEnded:
    if ended.reason == "overflow":
        return StreamEnded(
            ExitCode.OUTPUT_OVERFLOW,
            f"stdout fell more than {options.max_buffer} messages behind for "
            f"{options.max_stall:g} s; stopped reading (see --max-buffer, --max-stall)",
        )
    if ended.reason == "stale":
        return StreamEnded(
            ExitCode.CONNECTION_LOST,
            f"no heartbeat or data for {options.stale_after:g} s; giving up",
        )
    if ended.reason == "protocol-error":
        return StreamEnded(
            ExitCode.CONNECTION_LOST,
            f"closed the connection ({ended.close_code}): {terminal_safe(ended.close_reason)}",
        )
    if ended.reason == "closed-by-server":
        detail = f"code {ended.close_code}"
        if ended.close_reason:
            detail += f": {terminal_safe(ended.close_reason)}"
        if ended.close_code == spec.CLOSE_POLICY_VIOLATION:
            # The documented 1008 without a reason is the per-key connection-limit race.
            hint = "" if ended.close_reason else "; too many connections for this key?"
            return StreamEnded(
                ExitCode.SERVER_BUSY, f"server closed the connection ({detail}){hint}"
            )
        return StreamEnded(ExitCode.CONNECTION_LOST, f"server closed the connection ({detail})")
    return StreamEnded(ExitCode.CONNECTION_LOST, "connection lost")


class SubscribeRun:
    """One run of ``subscribe``; :meth:`run` returns the exit code."""

    def __init__(
        self, options: SubscribeOptions, renderer: Renderer, diagnostics: Diagnostics
    ) -> None:
        self.options = options
        self.renderer = renderer
        self.diagnostics = diagnostics
        self.delivered = 0
        self._handoff: BoundedHandoff[WorkerItem] = BoundedHandoff(options.max_buffer)
        self._worker: SocketWorker | None = None
        self._unresolved = set(options.keys)
        self._active: set[SubscriptionKey] = set()
        self.last_written: dict[SubscriptionKey, int] = {}
        # The stream message being rendered right now, if any.
        self._in_flight: ev.StreamMessage | None = None

    def run(self) -> ExitCode:
        try:
            self._connect_and_stream()
        except StreamEnded as end:
            if end.message and end.code is not ExitCode.OK:
                self.diagnostics.say(end.message, "red")
            return end.code
        except KeyboardInterrupt:
            self._report_unwritten("interrupted")
            return ExitCode.INTERRUPTED
        except Terminated:
            self._report_unwritten("terminated")
            return ExitCode.TERMINATED
        except BrokenPipeError:
            # The reader (e.g. ``head -1``) has all it wanted: a normal end, not an error.
            raise StdoutClosed from None
        except OutputFailed as failure:
            self._report_unwritten("stdout failed")
            self.diagnostics.say(f"cannot write to stdout: {failure}", "red")
            return ExitCode.OUTPUT_FAILED
        finally:
            self.stop()
        return ExitCode.OK  # pragma: no cover - _connect_and_stream always raises

    def stop(self) -> None:
        """Clean close (unsubscribe, close 1000); bounded in time; idempotent."""
        self._stop_reading()
        if self._worker is not None and self._worker.is_alive():
            self._worker.join(STOP_JOIN_TIMEOUT)

    def _stop_reading(self) -> None:
        """Tell the socket thread to close, and take nothing more from it."""
        if self._worker is not None:
            # Ask first: a socket thread that then finds the hand-off closed knows it is
            # being stopped, not overflowing, and closes with unsubscribes.
            self._worker.request_stop()
        self._handoff.close()  # a socket thread waiting for room must not wait any more

    def _report_unwritten(self, why: str) -> None:
        """Stopping by signal discards what stdout had not taken yet: say how much, and
        where each stream's output ends, so nothing is lost silently."""
        unwritten = 0
        self._stop_reading()  # draining must not let the socket thread read on
        while (item := self._handoff.get(0)) is not None:
            if isinstance(item, list):
                unwritten += sum(isinstance(event, ev.StreamMessage) for event in item)
        in_flight = self._in_flight
        if unwritten or in_flight is not None:
            written = sorted(self.last_written.items(), key=lambda kv: str(kv[0]))
            ends = (
                "output ends at " + ", ".join(f"{key} seq {seq}" for key, seq in written)
                if written else "nothing was written"
            )
            partly = "" if in_flight is None else (
                f" (then {in_flight.key} seq {in_flight.message.seq_id} was being written)"
            )
            self.diagnostics.say(
                f"{why}: {unwritten} more received message(s) were not written; "
                f"{ends}{partly}", "yellow"
            )

    def _connect_and_stream(self) -> None:
        options = self.options
        traffic = TrafficLog(
            secret=options.api_key,
            sink=lambda line: self.diagnostics.say(terminal_safe(line, 2000), "dim"),
            enabled=options.verbose,
        )
        if options.verbose:
            self.diagnostics.say(f"connecting to {terminal_safe(options.url)} (key ****)")
        try:
            ws = open_connection(options.url, options.api_key, timeout=options.connect_timeout)
        except HandshakeRejected as exc:
            raise exit_for_handshake(exc) from None
        except ConnectFailed as exc:
            message = f"cannot connect to {terminal_safe(options.url)}: {terminal_safe(str(exc))}"
            raise StreamEnded(ExitCode.CONNECT_FAILED, message) from None
        session = ClientSession(
            options.keys,
            request_id_prefix=f"c2ws-{secrets.token_hex(4)}",
            stale_after=options.stale_after,
        )
        self._worker = SocketWorker(ws, session, self._handoff_put, traffic=traffic)
        self._worker.start()
        self._consume()

    def _handoff_put(self, item: WorkerItem) -> bool:
        if isinstance(item, ConnectionEnded):
            return self._handoff.put(item, force=True)
        return self._handoff.put(item, wait=self.options.max_stall)

    def _consume(self) -> None:
        options = self.options
        deadline = None if options.timeout is None else time.monotonic() + options.timeout
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            item = self._handoff.get(wait)
            if item is None:
                self._timed_out()
            elif isinstance(item, ConnectionEnded):
                raise exit_for_end(item, options)
            else:
                for event in item:
                    self._handle(event)

    def _timed_out(self) -> None:
        if self.options.count is not None:
            raise StreamEnded(
                ExitCode.COUNT_NOT_REACHED,
                f"timed out after {self.options.timeout:g} s with {self.delivered} of "
                f"{self.options.count} messages",
            )
        raise StreamEnded(ExitCode.OK)

    def _handle(self, event: ev.Event) -> None:
        self.diagnostics.handle(event)
        self._in_flight = event if isinstance(event, ev.StreamMessage) else None
        try:
            self.renderer.handle(event)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputFailed(exc.strerror or str(exc)) from None
        self._in_flight = None
        if isinstance(event, ev.StreamMessage):
            self.delivered += 1
            if event.key is not None and event.message.seq_id is not None:
                self.last_written[event.key] = event.message.seq_id
            if self.options.count is not None and self.delivered >= self.options.count:
                raise StreamEnded(ExitCode.OK)
        elif isinstance(event, ev.SubscriptionConfirmed):
            self._unresolved.discard(event.key)
            self._active.add(event.key)
        elif isinstance(event, ev.SubscriptionRejected):
            self._unresolved.discard(event.key)
            if not self._unresolved and not self._active:
                raise StreamEnded(
                    ExitCode.NOTHING_TO_STREAM, "every subscription was rejected; nothing to stream"
                )
