"""Which renderer a run writes with, in one place for ``subscribe``, ``demo`` and
``replay``: the output mode, ``--fields``, ``--symbol`` and other filters, and color."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

import typer

from c2ws import spec
from c2ws.cli.options import OutputMode
from c2ws.events import SubscriptionKey
from c2ws.render import Renderer
from c2ws.render.color import ColorChoice, console_options
from c2ws.render.diagnostics import Diagnostics
from c2ws.render.filters import FilteredRenderer, MessageFilter


@dataclass(frozen=True)
class OutputSpec:
    mode: OutputMode = OutputMode.auto
    include_control: bool = False
    fields: tuple[str, ...] = ()
    message_filter: MessageFilter = field(default_factory=MessageFilter)
    color: ColorChoice = ColorChoice.auto
    verbose: bool = False


@dataclass
class Output:
    renderer: Renderer
    diagnostics: Diagnostics
    table: bool


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
    clock: Callable[[], float] | None = None,
) -> Output:
    """The renderer (filtered when filters are given) and the stderr diagnostics."""
    from c2ws.render.consoles import DataConsole, MessageConsole

    out = stdout or sys.stdout
    mode = resolve_mode(output.mode, out)
    if output.fields and mode is OutputMode.table:  # auto resolved to a table
        mode = OutputMode.ndjson
    env = os.environ
    err_console = MessageConsole(stderr=True, highlight=False, markup=False, emoji=False,
                                 **console_options(output.color, env, sys.stderr))
    table = mode is OutputMode.table
    diagnostics = Diagnostics(
        err_console, verbose=output.verbose,
        status_line=status_line and not table and err_console.is_terminal and not output.verbose,
    )
    renderer: Renderer
    binary = out.buffer
    if table:
        from c2ws.render.table import TableRenderer  # rich tables only when asked for

        console = DataConsole(file=out, highlight=False, markup=False, emoji=False,
                              **console_options(output.color, env, out))
        table_renderer = (TableRenderer(console) if clock is None
                          else TableRenderer(console, clock=clock))
        table_renderer.expect_subscriptions(keys)
        renderer = table_renderer
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

        projection = Projection(output.fields) if output.fields else None
        renderer = JsonArrayRenderer(binary, include_control=output.include_control,
                                     projection=projection)
    elif output.fields:
        from c2ws.render.objects import ProjectedNdjsonRenderer
        from c2ws.render.records import Projection

        renderer = ProjectedNdjsonRenderer(binary, Projection(output.fields),
                                           include_control=output.include_control)
    else:
        from c2ws.render.ndjson import NdjsonRenderer

        renderer = NdjsonRenderer(binary, include_control=output.include_control)
    if output.message_filter.active:
        renderer = FilteredRenderer(renderer, output.message_filter)
    return Output(renderer, diagnostics, table)
