"""``c2ws subscribe`` as a function: run the engine, write what it yields, and say how
the run ended.

The caller's thread renders, flushes and then acknowledges each batch (so the state
file only ever records what was written); the engine owns the sockets.  This module
decides when to stop and which exit code that is; it knows nothing of frames or
terminals.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from c2ws import events as ev
from c2ws.cli.app import StdoutClosed, Terminated
from c2ws.engine import ConnectionHealth, Engine, EngineConfig
from c2ws.errors import ConnectionFailed, EngineError, InternalError
from c2ws.events import SubscriptionKey
from c2ws.exitcodes import ExitCode, exit_code_for, exit_code_for_end
from c2ws.render import Renderer, messages_handler
from c2ws.render.diagnostics import Diagnostics
from c2ws.render.safe import terminal_safe

if TYPE_CHECKING:
    from c2ws.delivery.state import StateFile


@dataclass(frozen=True)
class SubscribeOptions:
    engine: EngineConfig
    count: int | None = None
    timeout: float | None = None
    fail_on_gap: bool = False
    # stdout is a regular file: fsync it before the state file records what it holds.
    sync_output_fd: int | None = None
    # --state with a pipe: commit after every message, so a crash repeats at most one.
    commit_each_message: bool = False
    # --symbol: which messages the output shows; --count counts only those.
    selects: Callable[[ev.StreamMessage], bool] | None = None
    # --state, locked and read by the caller before it read stdout back (engine.state_path
    # is then None); the engine commits to it and closes it.
    state: StateFile | None = None
    # stdout, when its lines are the stream envelopes (plain NDJSON): read back after a
    # failed write to say exactly where each stream's output ends.
    readback_fd: int | None = None


class OutputFailed(Exception):
    """Writing stdout failed for a reason other than its reader leaving (disk full...).
    ``target``: what was being written when it was not stdout (the --record file)."""

    def __init__(self, reason: str, target: str | None = None) -> None:
        super().__init__(reason)
        self.target = target or "stdout"


class StreamEnded(Exception):
    def __init__(self, code: ExitCode, message: str | None = None) -> None:
        super().__init__(message or code.name)
        self.code = code
        self.message = message


_STREAM_MESSAGE: Final = ev.StreamMessage
_ONLY_STREAM_MESSAGES: Final = {ev.StreamMessage}
# Subscriptions named in the final report of a connection that was down; the rest counted.
_KEYS_NAMED: Final = 5


class SubscribeRun:
    """One run of ``subscribe``; :meth:`run` returns the exit code."""

    def __init__(
        self, options: SubscribeOptions, renderer: Renderer, diagnostics: Diagnostics
    ) -> None:
        self.options = options
        self.renderer = renderer
        self._handle_messages = messages_handler(renderer)
        self.diagnostics = diagnostics
        self.delivered = 0
        self._engine: Engine | None = None
        # The batch being written, and how much of it is written: for the final report.
        self._batch: Sequence[ev.Event] = ()
        self._written_of_batch = 0
        # --fail-on-gap: the hole (or sequence reset) to stop after.
        self._gap: ev.GapReported | ev.SequenceReset | None = None
        self._connection_failed = False  # the run ended with a connection's failure
        self._failed_target: str | None = None  # what a write failed on, if one did
        # stdout takes nothing more (a write failed, or its reader left): the caller points
        # it at /dev/null, so the interpreter's last flush cannot fail (exit 120).
        self.stdout_lost = False

    def run(self) -> ExitCode:
        """Stream until the run ends, say how it ended, then close the output (the
        renderer: JSON's closing bracket, buffered bytes); failing to close it is an
        output failure like any other (exit 9)."""
        try:
            code = self._run()
            self._report_connections_down()
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
                f"cannot write to {failure.target}: {failure}; {self._failure_report()}", "red"
            )
            return ExitCode.OUTPUT_FAILED
        return code

    def _run(self) -> ExitCode:
        try:
            try:
                self._engine = Engine(self.options.engine, state=self.options.state)
                self.diagnostics.connections_total = self._engine.connection_count
                with self._engine:
                    self._stream(self._engine)
            finally:
                self._finish()
        except StreamEnded as end:
            if end.message and end.code is not ExitCode.OK:
                self.diagnostics.say(end.message, "red")
            return end.code
        except InternalError as bug:
            if os.environ.get("C2WS_DEBUG"):
                self.diagnostics.console.print(bug.traceback, markup=False, highlight=False)
            self.diagnostics.say(
                f"internal error in a socket thread: {terminal_safe(str(bug))} "
                "(set C2WS_DEBUG=1 for a traceback)", "red"
            )
            return ExitCode.ERROR
        except EngineError as error:
            self._connection_failed = isinstance(error, ConnectionFailed)
            self.diagnostics.say(terminal_safe(str(error), 400), "red")
            return exit_code_for(error)
        except KeyboardInterrupt:
            self._report_unwritten("interrupted")
            return ExitCode.INTERRUPTED
        except Terminated:
            self._report_unwritten("terminated")
            return ExitCode.TERMINATED
        except BrokenPipeError:
            # The reader (e.g. ``head -1``) has all it wanted: a normal end, not an error.
            self.stdout_lost = True
            raise StdoutClosed from None
        except OutputFailed as failure:
            self.diagnostics.say(
                f"cannot write to {failure.target}: {failure}; {self._failure_report()}", "red"
            )
            return ExitCode.OUTPUT_FAILED
        return ExitCode.OK  # pragma: no cover - _stream always raises

    # --- the output loop -------------------------------------------------------------------

    def _stream(self, engine: Engine) -> None:
        options = self.options
        deadline = None if options.timeout is None else time.monotonic() + options.timeout
        limit = 1 if options.commit_each_message else None
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            batch = engine.next_batch(wait, limit)
            if not batch:
                if deadline is not None and time.monotonic() >= deadline:
                    self._timed_out(engine)
                continue
            self._write_batch(engine, batch)

    def _write_batch(self, engine: Engine, batch: Sequence[ev.Event]) -> None:
        self._batch, self._written_of_batch = batch, 0
        try:
            ending = self._render(batch)
            self.renderer.flush()
            sync_fd = self.options.sync_output_fd
            if sync_fd is not None:
                os.fsync(sync_fd)
        except BrokenPipeError:
            raise
        except OSError as exc:
            # Nothing of this batch is acknowledged: the part written before the failure
            # cannot be told from the line cut short (a buffered stream does not say), and
            # the cursor must never pass a byte that is not on disk.  A regular file's
            # whole lines are found again by the next --state run.
            raise self._failed(exc) from None
        engine.acknowledge(batch[: self._written_of_batch])
        self._batch, self._written_of_batch = (), 0
        if ending is not None:
            raise ending

    def _render(self, batch: Sequence[ev.Event]) -> StreamEnded | None:
        """Hand each event to the renderer (and the diagnostics); the ending reached, if
        any.  Stream messages, nearly all of a busy batch, take the shortest path."""
        handle, diagnostics, options = self.renderer.handle, self.diagnostics, self.options
        count, selects = options.count, options.selects
        if (
            selects is None and self._gap is None
            and (count is None or count - self.delivered > len(batch))
            and set(map(type, batch)) == _ONLY_STREAM_MESSAGES
        ):
            # A burst: nothing but stream messages, none of them an ending.
            self._written_of_batch = len(batch)
            self._handle_messages(batch)  # type: ignore[arg-type]
            self.delivered += len(batch)
            diagnostics.count_stream_messages(len(batch))
            return None
        streamed = 0
        ending: StreamEnded | None = None
        for index, event in enumerate(batch):
            # Counted before it is written: a signal between the write and the count must
            # not hide a line that reached stdout (the report calls these "being written").
            self._written_of_batch = index + 1
            if type(event) is _STREAM_MESSAGE:
                streamed += 1
                handle(event)
                if selects is not None and not selects(event):
                    continue
                self.delivered += 1
                if self._gap is not None and event.key == self._gap.key:
                    why = ("restarted the numbering" if isinstance(self._gap, ev.SequenceReset)
                           else "could not replay every missed signal")
                    ending = StreamEnded(
                        ExitCode.GAP, f"stopping (--fail-on-gap): the server {why} of "
                        f"{self._gap.key}"
                    )
                    break
                if count is not None and self.delivered >= count:
                    ending = StreamEnded(ExitCode.OK)
                    break
                continue
            diagnostics.handle(event)
            handle(event)
            if isinstance(event, (ev.GapReported, ev.SequenceReset)) and options.fail_on_gap:
                # Stop once the message after the hole (or the reset) is written too, so
                # the cursor is past it: a rerun must not stop at the same place again.
                self._gap = self._gap or event
        diagnostics.count_stream_messages(streamed)
        return ending

    def _timed_out(self, engine: Engine) -> None:
        timeout = self.options.timeout
        if not engine.ever_confirmed:
            last = engine.last_end
            code = ExitCode.CONNECTION_LOST if last is None else exit_code_for_end(last.reason)
            why = f": {terminal_safe(last.detail)}" if last is not None and last.detail else ""
            raise StreamEnded(
                code, f"timed out after {timeout:g} s before any subscription was confirmed{why}"
            )
        if self.options.count is not None:
            raise StreamEnded(
                ExitCode.COUNT_NOT_REACHED,
                f"timed out after {timeout:g} s with {self.delivered} of "
                f"{self.options.count} messages",
            )
        raise StreamEnded(ExitCode.OK)

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
        """After the engine stopped: gaps whose far end never came are still reported
        (written unless stdout failed; failing to write them is an output failure), and
        so are messages still held aside for a sequence-reset verdict (not written)."""
        engine = self._engine
        if engine is None:
            return
        for held in engine.held_aside():
            self.diagnostics.say(
                f"stopped while {held.messages} message(s) of {held.key} at or below its cursor "
                f"(seq {held.first_seq} to {held.last_seq}, cursor {held.cursor}) were held "
                "aside, not written: if the server restarted its numbering they will not be "
                "replayed; fetch them from the REST API", "yellow",
            )
        gaps = engine.unresolved_gaps()
        for gap in gaps:
            self.diagnostics.handle(gap)
        if not gaps or self._failed_target == "stdout":
            return
        try:
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
        engine = self._engine
        if engine is None:
            return 0, []
        handed = [e for e in self._batch[: self._written_of_batch]
                  if isinstance(e, ev.StreamMessage)]
        left = list(self._batch[self._written_of_batch:]) + engine.handoff.discard()
        return sum(isinstance(event, ev.StreamMessage) for event in left), handed

    def _output_ends(
        self, handed: Sequence[ev.StreamMessage], *, failed: bool = False,
        on_disk: Mapping[SubscriptionKey, int] | None = None,
    ) -> str:
        """Where each stream's output ends: the last seq_id known written per stream
        (acknowledged, or ``on_disk`` when the output file was read back), then the batch
        that was being written (or whose write ``failed``), unless ``on_disk`` says."""
        written = dict(self._engine.written) if self._engine is not None else {}
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
        fd, on_disk = self.options.readback_fd, None
        if fd is not None and self._failed_target == "stdout" and self._engine is not None:
            from c2ws.delivery.state import whole_lines_written

            on_disk = whole_lines_written(fd, keys=self._engine.keys)
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
        engine = self._engine
        if engine is None:
            return
        total = engine.connection_count
        if total == 1 and self._connection_failed:
            return
        for health in engine.connections_down():
            self.diagnostics.say(
                _describe_down(health, total), "red" if health.gave_up else "yellow"
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
            f"{why}: {unwritten} more received message(s) were not written; {ends}", "yellow"
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
