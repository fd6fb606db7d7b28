"""Which renderer a run writes with, in one place for ``subscribe``, ``demo`` and
``replay``: the output mode, ``--fields``, ``--symbol`` and other filters, and color."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

import typer
from rich.console import Console

from c2ws import spec
from c2ws.cli.options import OutputMode
from c2ws.events import SubscriptionKey
from c2ws.render import Renderer
from c2ws.render.clock import DisplayZone
from c2ws.render.color import ColorChoice, console_options
from c2ws.render.diagnostics import Diagnostics
from c2ws.render.filters import FilteredRenderer, MessageFilter
from c2ws.render.sink import ByteSink


@dataclass(frozen=True)
class TerminalOptions:
    """How a run looks on a terminal: ``--tz``, ``--progress``, ``--bell``/``--bell-fills``."""

    zone: DisplayZone | None = None
    progress: bool | None = None
    bell: bool = False
    bell_fills_only: bool = False


@dataclass(frozen=True)
class OutputSpec:
    mode: OutputMode = OutputMode.auto
    include_control: bool = False
    fields: tuple[str, ...] = ()
    message_filter: MessageFilter = field(default_factory=MessageFilter)
    color: ColorChoice = ColorChoice.auto
    verbose: bool = False
    terminal: TerminalOptions = field(default_factory=TerminalOptions)
    # stderr (issue 25): -q (errors only), --log-format (human or json).
    quiet: bool = False
    log_format: str = "human"


@dataclass
class Output:
    renderer: Renderer
    diagnostics: Diagnostics
    table: bool
    # The renderer reads decoded payloads (fields, filters, alerts); plain NDJSON writes
    # the frames as received and needs none, CSV, TSV and the table decode what they
    # read of them themselves.
    needs_payloads: bool = True
    # Each stream message is one line holding its envelope (NDJSON without --fields):
    # the output can be read back to find what was written.
    envelope_lines: bool = False


def resolve_mode(mode: OutputMode, stdout: TextIO) -> OutputMode:
    """``auto``: tables on a terminal, NDJSON otherwise."""
    if mode is not OutputMode.auto:
        return mode
    return OutputMode.table if stdout.isatty() else OutputMode.ndjson


def check_output_spec(output: OutputSpec) -> None:
    if output.fields and output.mode is OutputMode.table:
        raise typer.BadParameter("--fields applies to -o ndjson, json, csv and tsv, "
                                 "not to tables", param_hint="'--fields'")


def build_output(
    output: OutputSpec, *, channels: Iterable[str], keys: Sequence[SubscriptionKey] = (),
    stdout: TextIO | None = None, status_line: bool = True,
    clock: Callable[[], float] | None = None, connections: int = 1,
) -> Output:
    """The renderer (filtered when filters are given) and the stderr diagnostics.
    ``connections``: how many connections carry ``keys`` (the table's footer says how many
    are up)."""
    from c2ws.render.consoles import is_pipe

    out = stdout or sys.stdout
    mode = resolve_mode(output.mode, out)
    if output.fields and mode is OutputMode.table:  # auto resolved to a table
        mode = OutputMode.ndjson
    err_console = _stderr_console(output.color)
    table = mode is OutputMode.table
    progress = output.terminal.progress
    if progress is None:
        # A pipe's reader may draw on the same terminal (`| jq`, `| less`): no status line
        # then; nor beside NDJSON lines on the terminal itself.
        progress = not out.isatty() and not is_pipe(out)
    diagnostics = Diagnostics(
        err_console, verbose=output.verbose,
        status_line=(status_line and progress and not table and err_console.is_terminal
                     and not output.verbose),
        quiet=output.quiet, log_format=output.log_format,
    )
    renderer: Renderer
    # Every byte renderer writes through one sink: whole writes only, and nothing more
    # once a write has failed.
    binary = ByteSink(out.buffer)
    table_console: Console | None = None
    if table:
        renderer, table_console = _table_renderer(output, out, keys, diagnostics, clock,
                                                  connections)
    elif mode in (OutputMode.csv, OutputMode.tsv):
        from c2ws.render.records import columns_for
        from c2ws.render.tabular import DelimitedRenderer

        wanted = set(channels) or set(spec.CHANNELS)
        columns = output.fields or columns_for(wanted)
        renderer = DelimitedRenderer(binary, columns, channels=wanted,
                                     delimiter="," if mode is OutputMode.csv else "\t")
    elif mode is OutputMode.json:
        from c2ws.render.objects import JsonArrayRenderer
        from c2ws.render.records import Projection

        projection = (Projection(output.fields, channels=set(channels) or None)
                      if output.fields else None)
        renderer = JsonArrayRenderer(binary, include_control=output.include_control,
                                     projection=projection)
    elif output.fields:
        from c2ws.render.objects import ProjectedNdjsonRenderer
        from c2ws.render.records import Projection

        renderer = ProjectedNdjsonRenderer(
            binary, Projection(output.fields, channels=set(channels) or None),
            include_control=output.include_control)
    else:
        from c2ws.render.ndjson import NdjsonRenderer

        renderer = NdjsonRenderer(binary, include_control=output.include_control)
    if output.message_filter.active:
        renderer = FilteredRenderer(renderer, output.message_filter)
    if output.terminal.bell:
        renderer = _with_bell(renderer, output.terminal, table_console, err_console, diagnostics)
    # Plain NDJSON writes the frames as received, CSV and TSV read what they need of
    # them (c2ws.render.tabular), and the table decodes the messages it shows (on a
    # terminal, at most a few hundred per redraw of a burst); every other renderer, a
    # filter and an alert read the decoded payload.
    passes_frames = (mode is OutputMode.ndjson and not output.fields) or mode in (
        OutputMode.csv, OutputMode.tsv, OutputMode.table)
    needs_payloads = (
        not passes_frames or output.message_filter.active or output.terminal.bell
    )
    envelope_lines = mode is OutputMode.ndjson and not output.fields
    return Output(renderer, diagnostics, table, needs_payloads, envelope_lines)


def stderr_diagnostics(output: OutputSpec) -> Diagnostics:
    """stderr lines (no status line) for a run that ends before its output is built:
    building it may write to stdout already (a CSV header)."""
    return Diagnostics(_stderr_console(output.color), quiet=output.quiet,
                       log_format=output.log_format)


def _stderr_console(color: ColorChoice) -> Console:
    from c2ws.render.consoles import MessageConsole

    return MessageConsole(stderr=True, highlight=False, markup=False, emoji=False,
                          **console_options(color, os.environ, sys.stderr))


def _table_renderer(
    output: OutputSpec, out: TextIO, keys: Sequence[SubscriptionKey], diagnostics: Diagnostics,
    clock: Callable[[], float] | None, connections: int,
) -> tuple[Renderer, Console]:
    """The table on stdout; when stderr is the same terminal, messages go through it so
    they land above its live region instead of under the next redraw."""
    from c2ws.render.clock import DisplayZone
    from c2ws.render.consoles import DataConsole, same_terminal, terminal_width
    from c2ws.render.layout import full_width
    from c2ws.render.table import TableRenderer  # rich tables only when asked for

    width = None
    if not out.isatty() and "COLUMNS" not in os.environ:
        # Piped (`| tee log`): the width of the terminal the user watches, else room for
        # every column; never a silent 80.
        width = terminal_width(sys.stderr, sys.stdin) or full_width()
    console = DataConsole(file=out, highlight=False, markup=False, emoji=False, width=width,
                          **console_options(output.color, os.environ, out))
    zone = output.terminal.zone
    if zone is None:
        zone = DisplayZone.local() if console.is_terminal else DisplayZone.utc()
    table = (TableRenderer(console, zone=zone) if clock is None
             else TableRenderer(console, zone=zone, clock=clock))
    table.expect_subscriptions(keys, connections=connections)
    if table.is_live and same_terminal(out, sys.stderr):
        diagnostics.printer = table.print_message
    return table, console


def _with_bell(
    renderer: Renderer, terminal: TerminalOptions, table_console: Console | None,
    err_console: Console, diagnostics: Diagnostics,
) -> Renderer:
    from c2ws.render.alerts import Bell, WithBell

    consoles = [c for c in (table_console, err_console) if c is not None and c.is_terminal]
    if not consoles:
        diagnostics.say("--bell: neither stdout nor stderr is a terminal; no bell", "yellow")
        return renderer
    return WithBell(renderer, Bell(consoles[0], fills_only=terminal.bell_fills_only))
