"""``c2ws positions`` and ``c2ws orders``: the REST API's open positions, working orders
and order history, in the output formats of every command.  A shell over
:mod:`c2ws.rest` (which holds every REST rule) and :mod:`c2ws.render.rest`."""


import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from c2ws.cli.app import Command, app
from c2ws.cli.options import (
    ApiKeyFileOpt,
    ApiKeyOpt,
    ColorOpt,
    OutputMode,
    ProfileOpt,
    QuietOpt,
    RestUrlOpt,
    TzOpt,
    UrlOpt,
    choice,
    parse_strategy_ids,
    whole_number,
)
from c2ws.render.color import ColorChoice

if TYPE_CHECKING:
    from c2ws.config import Settings
    from c2ws.render.clock import DisplayZone
    from c2ws.render.diagnostics import Diagnostics
    from c2ws.render.rest import RestWriter
    from c2ws.rest.client import RestClient, RestRetry


StrategyIdsArg = Annotated[
    list[str] | None,
    typer.Argument(metavar="STRATEGY_ID", show_default=False,
                   help="One or more C2 strategy ids (positive integers); default: the "
                        "profile's strategies."),
]
RestOutputOpt = Annotated[
    OutputMode | None,
    typer.Option("-o", "--output", metavar="MODE", show_default=False,
                 parser=choice(OutputMode, "'-o' / '--output'"),
                 help="auto (default): a table on a terminal, NDJSON otherwise; or table, "
                      "ndjson, json (one array), csv, tsv."),
]

POSITIONS_EPILOG = """\b
Examples:
  c2ws positions 12345678                    the open positions now, as a table
  c2ws positions 12345678 23456789 -o csv > book.csv
  c2ws positions 12345678 -o ndjson | jq -c '.payload[]'

\b
Exit codes: 0 done; 2 bad arguments; 3 the key was refused (HTTP 401); 4 no usable
answer (network, timeout, 5xx after retries, another status); 5 rate limited or
unavailable after retries (429/503); 7 not authorized for a strategy (HTTP 403).
"""

ORDERS_EPILOG = """\b
Examples:
  c2ws orders 12345678 --active              the working orders now
  c2ws orders 12345678 --since 3d            every order of the last three days
  c2ws orders 12345678 --since 2026-11-01 --until 2026-11-08T12:00:00Z -o csv

\b
Exit codes: as for 'c2ws positions'.
"""


@app.command(cls=Command, epilog=POSITIONS_EPILOG)
def positions(
    strategy_ids: StrategyIdsArg = None,
    profile: ProfileOpt = None,
    api_key: ApiKeyOpt = None,
    api_key_file: ApiKeyFileOpt = None,
    url: UrlOpt = None,
    rest_url: RestUrlOpt = None,
    output: RestOutputOpt = None,
    tz: TzOpt = None,
    color: ColorOpt = ColorChoice.auto,
    quiet: QuietOpt = False,
) -> None:
    """Print the open positions of strategies now (REST GetStrategyOpenPositions).

    A table on a terminal, NDJSON otherwise: one positions.snapshot line per strategy,
    its REST PositionDTO objects as payload.
    """
    from c2ws.render.rest import POSITION_COLUMNS, POSITION_TABLE_COLUMNS, position_records
    from c2ws.rest.results import snapshot_event

    run = _RestRun(strategy_ids, profile, api_key, api_key_file, url, rest_url, output, tz,
                   color, quiet=quiet)

    def fetch(rest: "RestClient", strategy_id: int) -> None:
        import time

        found = rest.open_positions(strategy_id)
        snapshot = snapshot_event(strategy_id, found, time.time())
        run.writer.add(snapshot.obj, position_records(strategy_id, found))

    raise typer.Exit(run.run(POSITION_COLUMNS, "Open positions", fetch,
                             table_columns=POSITION_TABLE_COLUMNS))


@app.command(cls=Command, epilog=ORDERS_EPILOG)
def orders(
    strategy_ids: StrategyIdsArg = None,
    active: Annotated[
        bool, typer.Option("--active", help="The working orders now (GetStrategyActiveOrders).")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="T", show_default=False,
                     help="The order history from T: ISO 8601 (2026-11-25, "
                          "2026-11-25T09:30:00Z) or how long ago (90s, 15m, 2h, 3d, 1w)."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", metavar="T", show_default=False,
                     help="End of the history window (default: now); as --since."),
    ] = None,
    page_limit: Annotated[
        int | None,
        typer.Option("--page-limit", metavar="N", show_default=False,
                     parser=whole_number("'--page-limit'", minimum=1, maximum=1000),
                     help="Orders per page of the history, 1 to 1000 (default 1000); every "
                          "page is fetched."),
    ] = None,
    profile: ProfileOpt = None,
    api_key: ApiKeyOpt = None,
    api_key_file: ApiKeyFileOpt = None,
    url: UrlOpt = None,
    rest_url: RestUrlOpt = None,
    output: RestOutputOpt = None,
    tz: TzOpt = None,
    color: ColorOpt = ColorChoice.auto,
    quiet: QuietOpt = False,
) -> None:
    """Print working orders (--active) or the order history of a time window (--since).

    A table on a terminal, NDJSON otherwise: one order line per order, its REST object
    as payload, oldest first.
    """
    from c2ws.errors import ConfigError
    from c2ws.render.rest import ORDER_COLUMNS, ORDER_TABLE_COLUMNS, order_record
    from c2ws.rest import parse_time
    from c2ws.rest.results import order_object

    if active == (since is not None):
        raise typer.BadParameter("give --active, or --since T (with --until T if you like)",
                                 param_hint="'--active' / '--since'")
    if active and until is not None:
        raise typer.BadParameter("--until goes with --since", param_hint="'--until'")
    start = end = None
    if since is not None:
        try:
            start = parse_time(since, param="--since")
            end = None if until is None else parse_time(until, param="--until")
        except ConfigError as exc:
            raise typer.BadParameter(str(exc), param_hint=f"'{exc.param}'") from None
        if end is not None and end < start:
            raise typer.BadParameter("--until is before --since", param_hint="'--until'")
    run = _RestRun(strategy_ids, profile, api_key, api_key_file, url, rest_url, output, tz,
                   color, page_limit=page_limit, quiet=quiet)

    def fetch(rest: "RestClient", strategy_id: int) -> None:
        found = (rest.active_orders(strategy_id) if start is None
                 else rest.historical_orders(strategy_id, start, end))
        for order in found:
            run.writer.add(order_object(strategy_id, order), [order_record(strategy_id, order)])

    title = "Working orders" if active else "Orders"
    raise typer.Exit(run.run(ORDER_COLUMNS, title, fetch, table_columns=ORDER_TABLE_COLUMNS))


class _RestRun:
    """One run of a REST command: settings, the client, the writer, errors to exit
    codes."""

    def __init__(self, strategy_ids: list[str] | None, profile: str | None,
                 api_key: str | None, api_key_file: str | None, url: str | None,
                 rest_url: str | None, output: OutputMode | None, tz: "DisplayZone | None",
                 color: ColorChoice, *, page_limit: int | None = None,
                 quiet: bool = False) -> None:
        from c2ws.cli.settings import load_api_key, load_settings
        from c2ws.config import Flags

        settings = load_settings(Flags(
            profile=profile, url=url, api_key=api_key, api_key_file=api_key_file,
            strategies=tuple(parse_strategy_ids(strategy_ids)) if strategy_ids else (),
            output=output.value if output is not None else None,
        ))
        self.ids = list(settings.strategies.value)
        if not self.ids:
            raise typer.BadParameter("no strategy ids: give STRATEGY_ID..., or set "
                                     "strategies in a profile of the config file",
                                     param_hint="'STRATEGY_ID'")
        self.key = load_api_key(settings, given_on_command_line=api_key is not None,
                                quiet=quiet)
        self.quiet = quiet
        if not self.key:
            raise typer.BadParameter("no API key: pass --api-key or set C2_API_KEY",
                                     param_hint="'--api-key'")
        self.settings = settings
        self.rest_url = rest_url
        self.page_limit = page_limit
        self.mode = self._mode(settings)
        self.tz = tz
        self.color = color
        self._writer: RestWriter | None = None

    @property
    def writer(self) -> "RestWriter":
        assert self._writer is not None, "the writer is made when the run starts"
        return self._writer

    @staticmethod
    def _mode(settings: "Settings") -> str:
        value = settings.output.value
        try:
            mode = OutputMode((value or "auto").lower())
        except ValueError:
            names = ", ".join(m.value for m in OutputMode)
            raise typer.BadParameter(f"{value!r} (from {settings.output.source}) is not an "
                                     f"output mode: {names}", param_hint="output") from None
        if mode is OutputMode.auto:
            mode = OutputMode.table if sys.stdout.isatty() else OutputMode.ndjson
        return mode.value

    def run(self, columns: tuple[str, ...], title: str,
            fetch: "Callable[[RestClient, int], None]", *,
            table_columns: tuple[str, ...]) -> int:
        import os

        import c2ws
        from c2ws.cli.output import OutputSpec, stderr_diagnostics
        from c2ws.errors import C2wsError, ConfigError
        from c2ws.exitcodes import ExitCode, exit_code_for
        from c2ws.render.clock import DisplayZone
        from c2ws.render.color import console_options
        from c2ws.render.consoles import DataConsole
        from c2ws.render.rest import RestWriter
        from c2ws.render.safe import terminal_safe

        diagnostics = stderr_diagnostics(OutputSpec(color=self.color, quiet=self.quiet))
        console = None
        if self.mode == "table":
            console = DataConsole(file=sys.stdout, highlight=False, markup=False, emoji=False,
                                  **console_options(self.color, os.environ, sys.stdout))
        zone = self.tz or (DisplayZone.local() if sys.stdout.isatty() else DisplayZone.utc())
        self._writer = RestWriter(self.mode, sys.stdout.buffer, columns, console=console,
                                  zone=zone, title=title, table_columns=table_columns)
        try:
            rest = c2ws.rest.client(api_key=self.key, url=self.settings.url.value,
                                    rest_url=self.rest_url, page_limit=self.page_limit,
                                    on_retry=_say_retry(diagnostics))
        except ConfigError as exc:
            diagnostics.close()
            raise typer.BadParameter(str(exc), param_hint=f"'{exc.param or '--url'}'") \
                from None
        try:
            with rest:
                for strategy_id in self.ids:
                    fetch(rest, strategy_id)
        except C2wsError as error:
            self.writer.close()  # what was written stays a complete document
            diagnostics.say(terminal_safe(str(error), 400), "red")
            diagnostics.close()
            return int(exit_code_for(error))
        self.writer.close()
        diagnostics.close()
        return int(ExitCode.OK)


def _say_retry(diagnostics: "Diagnostics") -> "Callable[[RestRetry], None]":
    from c2ws.render.safe import terminal_safe

    def say(retry: "RestRetry") -> None:
        asked = (f"; the server asked for {retry.retry_after:g} s (Retry-After)"
                 if retry.retry_after is not None else "")
        diagnostics.say(terminal_safe(f"{retry.reason}; retrying in {retry.delay:.1f} s "
                                      f"(attempt {retry.attempt}{asked})", 400), "yellow")

    return say
