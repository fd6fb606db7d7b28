"""``c2ws subscribe`` as a function: iterate a :class:`c2ws.Stream` batch by batch,
render each, flush, acknowledge, and say how the run ended.

A shell over the library: the stream decides what to deliver and when to end (count,
timeout, fail-on-gap, errors), keeps the cursors and the state file; this module writes,
reports and maps the ending to an exit code.  It knows nothing of frames or sockets.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from operator import countOf
from types import FrameType
from typing import TYPE_CHECKING, Final

from c2ws import StreamEnd
from c2ws import events as ev
from c2ws.cli.app import StdoutClosed, Terminated
from c2ws.cli.heap import HeapTrimmer
from c2ws.cli.shared import signals_wake, threads_without_signals
from c2ws.errors import C2wsError, ConnectionFailed, GapDetected, InternalError
from c2ws.events import SubscriptionKey
from c2ws.exitcodes import ExitCode, exit_code_for
from c2ws.render import Renderer
from c2ws.render.diagnostics import Diagnostics
from c2ws.render.safe import terminal_safe
from c2ws.sinks import settle_wait
from c2ws.sinks.output import OutputSink

if TYPE_CHECKING:
    from c2ws import Batch, ConnectionHealth, Stream
    from c2ws.cli.watch import RunWatch
    from c2ws.sinks import Sink


class OutputFailed(Exception):
    """Writing stdout failed for a reason other than its reader leaving (disk full...).
    ``target``: what was being written when it was not stdout (the --record file)."""

    def __init__(self, reason: str, target: str | None = None) -> None:
        super().__init__(reason)
        self.target = target or "stdout"


class TimedOutWriting(BaseException):
    """--timeout passed while a write to stdout was blocked (its reader is behind): raised
    in the main thread by the alarm, as SIGTERM's :class:`Terminated` is."""


_STREAM_MESSAGE: Final = ev.StreamMessage
# Subscriptions named in the final report of a connection that was down; the rest counted.
_KEYS_NAMED: Final = 5


class ForwardEvents:
    """The ``on_event`` of a stream built before the run that handles its events: it
    forwards to ``target`` once set."""

    def __init__(self) -> None:
        self.target: Callable[[ev.Event], None] | None = None

    def __call__(self, event: ev.Event) -> None:
        if self.target is not None:
            self.target(event)


class SubscribeRun:
    """One run of ``subscribe`` over ``stream`` (created with ``auto_ack=False`` and a
    :class:`ForwardEvents` as its ``on_event``, which the run points at itself);
    :meth:`run` returns the exit code.  ``count``, ``timeout``: the stream's, for the
    report (the stream enforces them).  ``readback_fd``: stdout, when its lines are the
    stream envelopes (plain NDJSON): read back after a failed write to say exactly where
    each stream's output ends.  ``watch``: what the run tells the outside besides its
    output (issue 25: reconnected lines, SIGUSR1, --strict, metrics, systemd).
    ``sink`` (issue 23): where the batches go; by default
    stdout through ``renderer`` (an :class:`~c2ws.sinks.output.OutputSink`); another sink
    (``--exec``, ``--to nats://``) gets the batches, and ``renderer`` only the other
    events (``--record``, ``-v``).  A batch is acknowledged once the sink says it is
    durable."""

    def __init__(
        self, stream: Stream, renderer: Renderer, diagnostics: Diagnostics, *,
        events: ForwardEvents | None = None, count: int | None = None,
        timeout: float | None = None, readback_fd: int | None = None,
        watch: RunWatch | None = None, on_started: Callable[[], None] | None = None,
        sink: Sink | None = None,
    ) -> None:
        self.stream = stream
        self.watch = watch
        self.on_started = on_started  # once the socket threads run (--strategies-file)
        self.renderer = renderer
        # --- issue 23: the sink seam ---
        self.sink: Sink = sink if sink is not None else OutputSink(renderer)
        self._output = self.sink if isinstance(self.sink, OutputSink) else None
        if self._output is not None:
            self._output.before = self._before_event
        self.diagnostics = diagnostics
        self.count = count
        self.timeout = timeout
        self.readback_fd = readback_fd
        if events is not None:
            events.target = self.on_event
        # The batch being written, and how much of it is written: for the final report.
        self._batch: Batch | None = None
        self._written_of_batch = 0
        self._writing = False  # in a write of stdout (the --timeout alarm may cut it)
        self._connection_failed = False  # the run ended with a connection's failure
        self._failed_target: str | None = None  # what a write failed on, if one did
        # stdout takes nothing more (a write failed, or its reader left): the caller points
        # it at /dev/null, so the interpreter's last flush cannot fail (exit 120).
        self.stdout_lost = False
        self.heap = HeapTrimmer()

    @property
    def delivered(self) -> int:
        """Messages written (those --symbol selects; what --count counts)."""
        return self.stream.delivered

    def run(self) -> ExitCode:
        """Stream until the run ends, say how it ended, then close the output (the
        renderer: JSON's closing bracket, buffered bytes); failing to close it is an
        output failure like any other (exit 9)."""
        try:
            code = self._run()
            self._report_connections_down()
            if self._output is None:
                self.sink.close()
        except StdoutClosed:
            with contextlib.suppress(OSError):
                self.renderer.close()  # what is not stdout (a recording) is still closed
            raise
        if self._failed_target == "stdout":
            # Nothing more goes where a write failed: a line cut short stays the last one
            # (the renderers' sink refuses; a recording is still closed).
            with contextlib.suppress(OSError):
                self.renderer.close()
            return code
        try:
            self.renderer.close()
        except BrokenPipeError:
            self.stdout_lost = True  # the reader left: nothing more to tell it
        except OSError as exc:
            failure = self._failed(exc)
            self.diagnostics.say(
                f"cannot write to {failure.target}: {failure}; {self._failure_report()}", "red",
                event="output.failed",
            )
            return ExitCode.OUTPUT_FAILED
        return code

    def _run(self) -> ExitCode:
        stream = self.stream
        self.diagnostics.connections_total = stream.connection_count
        try:
            try:
                with self._deadline_alarm(), self._status_signal(), signals_wake(stream.wake):
                    try:
                        with threads_without_signals():
                            stream.start()  # the socket threads
                            if self.on_started is not None:
                                self.on_started()
                    except BaseException:
                        # A Ctrl-C or SIGTERM that came while the threads started was held
                        # back until the signals were unblocked, and is raised as they are:
                        # the connections under way still unsubscribe and close.
                        stream.close(clean=False)
                        raise
                    with stream:
                        idle = settle_wait(self.sink)
                        for batch in stream.batches(include_empty=True, idle=idle):
                            self._write_batch(batch)
                        self._settle_sink()
            finally:
                self._finish()
        except GapDetected as gap:
            why = ("restarted the numbering" if gap.reset
                   else "could not replay every missed signal")
            self.diagnostics.say(f"stopping (--fail-on-gap): the server {why} of {gap.key}",
                                 "red", event="run.gap", strategy=gap.key.strategy_id)
            return ExitCode.GAP
        except InternalError as bug:
            if os.environ.get("C2WS_DEBUG"):
                self.diagnostics.console.print(bug.traceback, markup=False, highlight=False)
            self.diagnostics.say(
                f"internal error in a socket thread: {terminal_safe(str(bug))} "
                "(set C2WS_DEBUG=1 for a traceback)", "red", event="run.error"
            )
            return ExitCode.ERROR
        except C2wsError as error:
            # A timeout before any subscription was confirmed is no connection's own end:
            # the report of the connections that were down still follows.
            self._connection_failed = isinstance(error, ConnectionFailed) and (
                stream.end_reason is not StreamEnd.TIMEOUT)
            self.diagnostics.say(terminal_safe(str(error), 400), "red", event="run.failed")
            return exit_code_for(error)
        except KeyboardInterrupt:
            self._report_unwritten("interrupted")
            return ExitCode.INTERRUPTED
        except Terminated as ended:  # SIGTERM, SIGHUP
            self._report_unwritten(ended.why)
            return ended.exit_code
        except TimedOutWriting:
            self._report_unwritten(f"timed out after {self.timeout:g} s while stdout's "
                                   "reader was behind")
            return self._timeout_code()
        except BrokenPipeError:
            # The reader (e.g. ``head -1``) has all it wanted: a normal end, not an error.
            self.stdout_lost = True
            raise StdoutClosed from None
        except OutputFailed as failure:
            self.diagnostics.say(
                f"cannot write to {failure.target}: {failure}; {self._failure_report()}", "red",
                event="output.failed",
            )
            return ExitCode.OUTPUT_FAILED
        except OSError as exc:
            # Syncing an appended output file before a grouped commit of the state file,
            # which the stream makes while it waits for messages or when it closes (the
            # commits after a write come through _write_batch).
            unsynced = self._failed(exc)
            self.diagnostics.say(
                f"cannot sync {unsynced.target}: {unsynced}; {self._failure_report()}", "red"
            )
            return ExitCode.OUTPUT_FAILED
        if stream.end_reason is StreamEnd.TIMEOUT:
            return self._timeout_code()
        return ExitCode.OK

    # --- the output -------------------------------------------------------------------------

    def on_event(self, event: ev.Event) -> None:
        """Every event that is not a message (the stream's ``on_event``): stderr, and the
        renderer (control lines, the table's status, the recording)."""
        watch = self.watch
        if watch is not None:
            watch.before(event)
        self.diagnostics.handle(event)
        try:
            self.renderer.handle(event)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise self._failed(exc) from None
        if watch is not None:
            watch.after(event)  # --strict raises here

    def _write_batch(self, batch: Batch) -> None:
        # (A batch written ahead is out and acknowledged already: never "being written".)
        self._batch, self._written_of_batch = None if batch.written_ahead else batch, 0
        try:
            self._writing = True
            try:
                self._hand_over(batch)
            finally:
                self._writing = False
                # What the sink says is durable moves the cursors (for stdout: all of it
                # once written; an appended output file is synced before the grouped
                # commit of --state), also when it failed part way (--exec).
                for done in self.sink.durable():
                    self.stream.ack(done)
            if self.watch is not None:
                self.watch.written(batch.handed_events)
            self.heap.written(len(batch))
        except BrokenPipeError:
            raise
        except OSError as exc:
            # Nothing of this batch is acknowledged: the part written before the failure
            # cannot be told from the line cut short (a buffered stream does not say), and
            # the cursor must never pass a byte that is not on disk.  A regular file's
            # whole lines are found again by the next --state run.
            raise self._failed(exc) from None
        finally:
            self._writing = False
        self._batch, self._written_of_batch = None, 0

    def _hand_over(self, batch: Batch) -> None:
        """Give the batch to the sink (and gaps and resets to the diagnostics: in order
        with the lines, for stdout, through :meth:`_before_event`)."""
        # A batch of nothing but signals and positions (nearly every one) is counted
        # without expanding its bursts into events (issue 22).
        plain = batch.only_signals_and_positions
        if self._output is None:
            if not plain:
                for event in batch.events:
                    if type(event) is not _STREAM_MESSAGE:
                        self.diagnostics.handle(event)
            self._written_of_batch = len(batch)
        self.sink.write(batch)
        self.diagnostics.count_stream_messages(
            len(batch) if plain else countOf(map(type, batch.events), _STREAM_MESSAGE))

    def _before_event(self, handed: int, event: ev.Event | None) -> None:
        """stdout's sink is handing the renderer ``event`` (None: a burst of stream
        messages, all at once), the ``handed``-th of the batch: counted before it is
        written (a signal between the write and the count must not hide a line that
        reached stdout: the report calls these "being written")."""
        self._written_of_batch = handed
        if event is not None and type(event) is not _STREAM_MESSAGE:
            self.diagnostics.handle(event)

    def _settle_sink(self) -> None:
        """The stream ended: what the sink took is made durable and acknowledged before
        the stream closes (and commits)."""
        self.sink.sync()
        for done in self.sink.durable():
            self.stream.ack(done)

    @contextlib.contextmanager
    def _deadline_alarm(self) -> Iterator[None]:
        """--timeout also ends a run blocked writing to a reader that is behind (defect
        1): an alarm at the deadline cuts that write short.  Anywhere else the stream's
        own deadline ends the run at its next request, so the alarm does nothing there.
        The main thread only (signals are delivered there)."""
        timeout = self.timeout
        if (timeout is None or not hasattr(signal, "setitimer")
                or threading.current_thread() is not threading.main_thread()):
            yield
            return

        def on_alarm(signum: int, frame: FrameType | None) -> None:
            if self._writing:
                raise TimedOutWriting()

        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    def _status_signal(self) -> contextlib.AbstractContextManager[None]:
        """SIGUSR1 prints a status report while the run goes on (with a watch)."""
        return self.watch.status_signal() if self.watch is not None else contextlib.nullcontext()

    def _timeout_code(self) -> ExitCode:
        if self.count is not None and self.stream.delivered < self.count:
            self.diagnostics.say(
                f"timed out after {self.timeout:g} s with {self.stream.delivered} of "
                f"{self.count} messages", "red", event="run.timeout",
            )
            return ExitCode.COUNT_NOT_REACHED
        return ExitCode.OK

    # --- the end -----------------------------------------------------------------------------

    def _failed(self, exc: OSError) -> OutputFailed:
        """A write or flush failed: the ending to raise."""
        target = exc.filename if isinstance(exc.filename, str) else None
        failure = OutputFailed(exc.strerror or str(exc), target)
        self._failed_target = failure.target
        if target is None:
            self.stdout_lost = True
        return failure

    def _finish(self) -> None:
        """After the stream stopped: gaps whose far end never came and the stream did not
        yield (the run was cut short) are still reported (written unless stdout failed;
        failing to write them is an output failure), and so are messages still held
        aside for a sequence-reset verdict (not written)."""
        stream = self.stream
        if self.watch is not None:
            self.watch.finish()
        for held in stream.held_aside():
            self.diagnostics.say(
                f"stopped while {held.messages} message(s) of {held.key} at or below its cursor "
                f"(seq {held.first_seq} to {held.last_seq}, cursor {held.cursor}) were held "
                "aside, not written: if the server restarted its numbering they will not be "
                "replayed; fetch them from the REST API", "yellow", event="held_aside",
                strategy=held.key.strategy_id,
            )
        gaps = stream.unresolved_gaps().events
        for gap in gaps:
            self.diagnostics.handle(gap)
        if not gaps or self._failed_target == "stdout":
            return
        try:
            if self._output is None:  # issue 23: another sink takes them, unacknowledged
                from c2ws import Batch

                self.sink.write(Batch(list(gaps)))
                self.sink.sync()
                self.sink.durable()
                return
            for gap in gaps:
                self.renderer.handle(gap)
            self.renderer.flush()
        except BrokenPipeError:
            self.stdout_lost = True  # the reader left: nothing more to tell it
        except OSError as exc:
            raise self._failed(exc) from None

    def _unwritten(self) -> tuple[int, list[ev.StreamMessage]]:
        """How many received messages were never handed to the renderer, and the
        messages of the batch being written when the run stopped."""
        events = self._batch.events if self._batch is not None else ()
        handed = [e for e in events[: self._written_of_batch]
                  if isinstance(e, ev.StreamMessage)]
        left = events[self._written_of_batch:]
        return self.stream.undelivered + sum(
            isinstance(event, ev.StreamMessage) for event in left), handed

    def _output_ends(
        self, handed: Sequence[ev.StreamMessage], *, failed: bool = False,
        on_disk: Mapping[SubscriptionKey, int] | None = None,
    ) -> str:
        """Where each stream's output ends: the last seq_id known written per stream
        (acknowledged, or ``on_disk`` when the output file was read back), then the batch
        that was being written (or whose write ``failed``), unless ``on_disk`` says."""
        written = dict(self.stream.cursors)
        for key, seq in (on_disk or {}).items():
            written[key] = max(seq, written.get(key, seq))
        ends = (
            "output ends at " + ", ".join(
                f"{key} seq {seq}" for key, seq in sorted(written.items(), key=_by_stream)
            ) if written else "nothing was written"
        )
        if handed and on_disk is None:
            last = handed[-1]
            batch = f"{len(handed)} message(s) up to {last.key} seq {last.message.seq_id}"
            ends += (f" (the write of {batch} failed)" if failed
                     else f" (then {batch} were being written)")
        return ends

    def _failure_report(self) -> str:
        """After a failed write: where each stream's output ends, and how many received
        messages are not in it.  A plain NDJSON file is read back for the exact answer
        (its whole lines are what the next --state run resumes after)."""
        unwritten, handed = self._unwritten()
        fd, on_disk = self.readback_fd, None
        if fd is not None and self._failed_target == "stdout":
            from c2ws.cursors import written_cursors

            on_disk = written_cursors(fd, self.stream.keys)
        if on_disk is not None:
            for message in handed:  # of the failed write: those not whole lines of the file
                key, cursor = message.key, message.cursor
                if key is None or cursor is None or cursor > on_disk.get(key, -1):
                    unwritten += 1
        ends = self._output_ends(handed, failed=True, on_disk=on_disk)
        return ends + (f"; {unwritten} more received message(s) were not written"
                       if unwritten else "")

    def _report_connections_down(self) -> None:
        """However the run ended, say which connections were down at the end and which
        subscriptions they left unserved: with several connections, one that keeps
        failing is otherwise lost among the reconnect lines.  Not repeated when the only
        connection's failure is what ended the run (its error line says it all)."""
        stream = self.stream
        total = stream.connection_count
        if total == 1 and self._connection_failed:
            return
        for health in stream.connections_down():
            self.diagnostics.say(
                _describe_down(health, total), "red" if health.gave_up else "yellow",
                event="connection.down", connection=health.shard + 1,
            )

    def _report_unwritten(self, why: str) -> None:
        """Stopping by signal discards what stdout had not taken yet: say how much, and
        where each stream's output ends, so nothing is lost silently."""
        unwritten, handed = self._unwritten()
        if not unwritten and not handed:
            return
        # Handed to stdout but not known to have got through (stdout was blocked).
        ends = self._output_ends(handed)
        self.diagnostics.say(
            f"{why}: {unwritten} more received message(s) were not written; {ends}", "yellow",
            event="run.unwritten",
        )


def _by_stream(item: tuple[SubscriptionKey, int]) -> str:
    """Sort key: streams in the order of their names."""
    return str(item[0])


def _describe_down(health: ConnectionHealth, total: int) -> str:
    """One line on a connection that was down when the run ended."""
    state = "gave up" if health.gave_up else "was down when the run ended"
    if health.attempts:
        state += f" after {health.attempts} failed attempt(s) in a row"
    served = "were never served" if not health.ever_up else "were not served at the end"
    keys = health.keys
    named = ", ".join(map(str, keys[:_KEYS_NAMED]))
    if len(keys) > _KEYS_NAMED:
        named += f" and {len(keys) - _KEYS_NAMED} more"
    last = health.last_end
    why = f"; last: {terminal_safe(last.detail or last.reason.value)}" if last else ""
    return (f"connection {health.shard + 1} of {total} {state}: {len(keys)} "
            f"subscription(s) {served} ({named}){why}")

