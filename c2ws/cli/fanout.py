"""``subscribe --exec`` and ``subscribe --to``: the run with a sink other than stdout
(issue 23).  The state file's lock comes first, as for stdout; then the sink is opened
(NATS: connected, and the last message of each stream read: where to resume without
--state); then the run is the same as stdout's (:func:`c2ws.cli.subscribe._run_stream`),
the batches going to the sink and stdout carrying nothing (but ``--include-control``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

from c2ws.cli.options import OutputMode
from c2ws.exitcodes import ExitCode, exit_code_for

if TYPE_CHECKING:
    from c2ws.cli.output import OutputSpec
    from c2ws.cli.params import SinkOptions, StreamParams
    from c2ws.cursors import CursorStore


def run_to_sink(
    params: StreamParams, output: OutputSpec, sinks: SinkOptions, *,
    record: Path | None, state: Path | None, run_stream: Callable[..., int],
) -> int:
    """Run ``params`` into the sink ``sinks`` names; the exit code."""
    import c2ws
    from c2ws.cli.output import stderr_diagnostics
    from c2ws.errors import C2wsError
    from c2ws.render.safe import terminal_safe
    from c2ws.sinks import SinkCursors

    # stdout carries no messages: the renderer sees only the other events.
    output = dataclasses.replace(output, mode=OutputMode.ndjson, fields=())
    diagnostics = stderr_diagnostics(output)
    keys = [(sid, channel) for sid in params.strategies for channel in params.channels]
    cursors = c2ws.FileCursors(state) if state is not None else None
    sink = sinks.build(diagnostics)
    try:
        try:
            if cursors is not None:  # the lock before anything else
                cursors.open(c2ws.StreamIdentity.of(params.url, params.api_key, keys))
            resume = sink.open([c2ws.SubscriptionKey(*key) for key in keys])
        except C2wsError as error:
            diagnostics.say(terminal_safe(str(error), 400), "red")
            return int(exit_code_for(error))
        # FileCursors is a CursorStore (its load's dict of SubscriptionKey is what mypy
        # cannot see as a Mapping of tuples).
        kept = cast("CursorStore | None", cursors)
        store = SinkCursors(sink, kept, from_sink=resume)
        return run_stream(params, output, cursors, record=record, sink=sink, store=store)
    finally:
        sink.close()
        if cursors is not None:
            cursors.close()
        diagnostics.close()


__all__ = ["ExitCode", "run_to_sink"]
