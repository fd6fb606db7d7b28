"""``c2ws subscribe`` as a function: run the engine, write what it yields, and say how
the run ended.

The caller's thread renders, flushes and then acknowledges each batch (so the state
file only ever records what was written); the engine owns the sockets.  This module
decides when to stop and which exit code that is; it knows nothing of frames or
terminals.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from c2ws import events as ev
from c2ws.cli.app import StdoutClosed, Terminated
from c2ws.engine import Engine, EngineConfig
from c2ws.errors import EngineError, InternalError
from c2ws.exitcodes import ExitCode, exit_code_for, exit_code_for_end
from c2ws.render import Renderer, messages_handler
from c2ws.render.diagnostics import Diagnostics
from c2ws.render.safe import terminal_safe


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

    def run(self) -> ExitCode:
        try:
            try:
                self._engine = Engine(self.options.engine)
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
            raise StdoutClosed from None
        except OutputFailed as failure:
            self._report_unwritten(f"{failure.target} failed")
            self.diagnostics.say(f"cannot write to {failure.target}: {failure}", "red")
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
            target = exc.filename if isinstance(exc.filename, str) else None
            raise OutputFailed(exc.strerror or str(exc), target) from None
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

    def _finish(self) -> None:
        """After the engine stopped: gaps whose far end never came are still reported, and
        so are messages still held aside for a sequence-reset verdict (not written)."""
        engine = self._engine
        if engine is None:
            return
        for gap in engine.unresolved_gaps():
            self.diagnostics.handle(gap)
            try:
                self.renderer.handle(gap)
                self.renderer.flush()
            except OSError:
                pass  # stdout is gone; stderr has said it
        for held in engine.held_aside():
            self.diagnostics.say(
                f"stopped while {held.messages} message(s) of {held.key} at or below its cursor "
                f"(seq {held.first_seq} to {held.last_seq}, cursor {held.cursor}) were held "
                "aside, not written: if the server restarted its numbering they will not be "
                "replayed; fetch them from the REST API", "yellow",
            )

    def _report_unwritten(self, why: str) -> None:
        """Stopping by signal discards what stdout had not taken yet: say how much, and
        where each stream's output ends, so nothing is lost silently."""
        engine = self._engine
        if engine is None:
            return
        handed = [e for e in self._batch[: self._written_of_batch]
                  if isinstance(e, ev.StreamMessage)]
        left = list(self._batch[self._written_of_batch:]) + engine.handoff.discard()
        unwritten = sum(isinstance(event, ev.StreamMessage) for event in left)
        if not unwritten and not handed:
            return
        written = sorted(engine.written.items(), key=lambda item: str(item[0]))
        ends = (
            "output ends at " + ", ".join(f"{key} seq {seq}" for key, seq in written)
            if written else "nothing was written"
        )
        if handed:
            # Handed to stdout but not known to have got through (stdout was blocked).
            last = handed[-1]
            ends += (f" (then {len(handed)} message(s) up to {last.key} seq "
                     f"{last.message.seq_id} were being written)")
        self.diagnostics.say(
            f"{why}: {unwritten} more received message(s) were not written; {ends}", "yellow"
        )
