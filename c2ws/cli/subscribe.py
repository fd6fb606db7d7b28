"""``c2ws subscribe`` and ``c2ws demo``: parse, build the engine's configuration, pick
the renderer, and run (see :mod:`c2ws.cli.run`).  Nothing here knows the wire protocol."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from c2ws import spec
from c2ws.cli.app import Command, StdoutClosed, app
from c2ws.cli.options import (
    BellFillsOpt,
    BellOpt,
    CountOpt,
    IncludeControlOpt,
    MaxBufferOpt,
    OutputMode,
    OutputOpt,
    ProgressOpt,
    TimeoutOpt,
    TzOpt,
    VerboseOpt,
    complete_channel,
    number,
    parse_channels,
    parse_strategy_ids,
    seconds,
    whole_number,
)
from c2ws.cli.serve import server_module
from c2ws.events import SubscriptionKey
from c2ws.exitcodes import ExitCode

if TYPE_CHECKING:
    from rich.console import Console

    from c2ws.cli.run import SubscribeOptions
    from c2ws.engine import EngineConfig
    from c2ws.render import Renderer
    from c2ws.render.clock import DisplayZone
    from c2ws.render.diagnostics import Diagnostics

# The key the demo's in-process reference server accepts; no real key is involved.
DEMO_API_KEY = "demo"

# Click keeps the lines of a paragraph that starts with \b as they are.
SUBSCRIBE_EPILOG = """\b
Examples:
  c2ws subscribe 12345678 23456789           live tables of two strategies
  c2ws subscribe 12345678 -o ndjson | jq -c .payload   NDJSON for scripts
  c2ws subscribe 12345678 -c signal -n 1 --timeout 300 > next.json
      (the next signal, or exit 124 after 5 minutes)

\b
Exit codes:
  0    --count or --timeout reached, or stdout's reader went away
  1    internal error (a bug; C2WS_DEBUG=1 shows the traceback)
  2    bad arguments or options
  3    authentication failed (HTTP 401): missing or invalid API key
  4    cannot connect (DNS, refused, TLS, timeout, HTTP status at the upgrade)
  5    server busy (HTTP 429/503, or closed with 1008)
  6    connection lost (the server closed or dropped it, or went silent)
  7    every requested subscription was rejected
  8    --no-reconnect: stdout's reader fell --max-buffer messages behind
  9    writing stdout failed (disk full, I/O error)
  10   the --state file is corrupt, foreign, locked or cannot be written
  11   --fail-on-gap: the server could not replay every missed signal
  124  --timeout expired before --count messages arrived
  130  interrupted (Ctrl-C)
  143  terminated (SIGTERM)
"""

DEMO_EPILOG = """\b
Examples:
  c2ws demo                              live tables, until Ctrl-C
  c2ws demo -o ndjson -n 5               five messages as NDJSON, then exit 0
  c2ws demo --rate 20 --bell --tz utc    busy feed, bell per signal, UTC times
"""


@app.command(cls=Command, epilog=SUBSCRIBE_EPILOG)
def subscribe(
    ctx: typer.Context,
    strategy_ids: Annotated[
        list[str],
        typer.Argument(metavar="STRATEGY_ID", show_default=False,
                       help="One or more C2 strategy ids (positive integers)."),
    ],
    channel: Annotated[
        list[str] | None,
        typer.Option("-c", "--channel", metavar="CHANNEL",
                     help="signal or positions (or the full names); repeatable. "
                          "Default: both.", show_default=False,
                     autocompletion=complete_channel),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", metavar="KEY", envvar="C2_API_KEY", show_default=False,
                     help="C2 API key (sent as a Bearer token; never printed). Prefer "
                          "the C2_API_KEY variable: arguments show in ps."),
    ] = None,
    url: Annotated[
        str, typer.Option("--url", metavar="URL", envvar="C2WS_URL",
                          help="WebSocket endpoint (its path is /ws).")
    ] = spec.DEFAULT_URL,
    output: OutputOpt = OutputMode.auto,
    count: CountOpt = None,
    timeout: TimeoutOpt = None,
    include_control: IncludeControlOpt = False,
    tz: TzOpt = None,
    progress: ProgressOpt = None,
    bell: BellOpt = False,
    bell_fills: BellFillsOpt = False,
    max_buffer: MaxBufferOpt = spec.DEFAULT_MAX_BUFFER,
    state: Annotated[
        Path | None,
        typer.Option("--state", metavar="FILE", show_default=False,
                     help="Keep the last written seq_id per stream in FILE and resume from "
                          "it: exactly once across restarts (see 'Running unattended')."),
    ] = None,
    no_reconnect: Annotated[
        bool, typer.Option("--no-reconnect",
                           help="End the run (exit 4/5/6/8) instead of reconnecting.")
    ] = False,
    max_retries: Annotated[
        int | None,
        typer.Option("--max-retries", metavar="N", show_default=False,
                     parser=whole_number("'--max-retries'", minimum=0),
                     help="Give up after N consecutive failed reconnects (default: never)."),
    ] = None,
    max_backoff: Annotated[
        float, typer.Option("--max-backoff", metavar="S",
                            parser=seconds("'--max-backoff'", minimum=0),
                            help="Longest wait between reconnect attempts, in seconds.")
    ] = spec.BACKOFF_MAX_SECONDS,
    fail_on_gap: Annotated[
        bool, typer.Option("--fail-on-gap",
                           help="Exit 11 once a gap the server cannot replay is written.")
    ] = False,
    silence_timeout: Annotated[
        float, typer.Option("--silence-timeout", metavar="S",
                            parser=seconds("'--silence-timeout'", minimum=0.1),
                            help="Reconnect when nothing, not even a heartbeat, arrives for "
                                 "S seconds.")
    ] = spec.CLIENT_STALE_AFTER_SECONDS,
    connect_timeout: Annotated[
        float, typer.Option("--connect-timeout", metavar="S",
                            parser=seconds("'--connect-timeout'", minimum=0.1),
                            help="Seconds to wait for the connection and upgrade.")
    ] = 10.0,
    verbose: VerboseOpt = False,
) -> None:
    """Subscribe to strategies and stream their signals and positions.

    Tables on a terminal, NDJSON in a pipe; messages and errors go to stderr.
    Each STRATEGY_ID is a positive integer ("1,2,3" works too).
    """
    from c2ws.engine import EngineConfig, validate_config
    from c2ws.errors import ConfigError
    from c2ws.render.safe import keep_secret
    from c2ws.session import SessionTimeouts

    ids = parse_strategy_ids(strategy_ids)
    channels = parse_channels(channel)
    if api_key:
        keep_secret(api_key)
        source = ctx.get_parameter_source("api_key")
        if source is not None and source.name == "COMMANDLINE":  # not from C2_API_KEY
            print("c2ws: warning: an API key given with --api-key is visible to other users "
                  "of this machine (ps, shell history); set C2_API_KEY instead",
                  file=sys.stderr)
    keys = [SubscriptionKey(sid, ch) for sid in ids for ch in channels]
    config = EngineConfig(
        url=url, api_key=api_key or "", keys=keys, max_buffer=max_buffer,
        reconnect=not no_reconnect, max_retries=max_retries, max_backoff=max_backoff,
        connect_timeout=connect_timeout,
        timeouts=SessionTimeouts(silence=silence_timeout), state_path=state, traffic=verbose,
    )
    try:
        validate_config(config)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint=f"'{exc.param or 'STRATEGY_ID'}'") from None
    raise typer.Exit(stream(config, output, count=count, timeout=timeout,
                            include_control=include_control, fail_on_gap=fail_on_gap,
                            terminal=TerminalOptions(tz, progress, bell or bell_fills,
                                                     bell_fills)))


@app.command(cls=Command, epilog=DEMO_EPILOG)
def demo(
    output: OutputOpt = OutputMode.auto,
    count: CountOpt = None,
    timeout: TimeoutOpt = None,
    include_control: IncludeControlOpt = False,
    tz: TzOpt = None,
    progress: ProgressOpt = None,
    bell: BellOpt = False,
    bell_fills: BellFillsOpt = False,
    rate: Annotated[
        float, typer.Option("--rate", metavar="N", parser=number("'--rate'", minimum=0.1),
                            help="Synthetic messages per second (at least 0.1).")
    ] = 2.0,
    seed: Annotated[
        int, typer.Option("--seed", metavar="N", parser=whole_number("'--seed'", minimum=0),
                          help="Seed of the synthetic feed.")
    ] = 0,
    verbose: VerboseOpt = False,
) -> None:
    """Stream from the bundled reference server: no key, no network needed.

    Runs the reference server on 127.0.0.1 with a synthetic feed and subscribes to
    every strategy on both channels, from the first signal on.
    """
    from c2ws.engine import EngineConfig
    from c2ws.render.consoles import MessageConsole

    server = server_module()
    # The feed starts once the subscriptions are in, so every stream shows from seq_id 1.
    config = server.ServerConfig(rate=rate, seed=seed, api_keys=(DEMO_API_KEY,),
                                 feed_waits_for_subscription=True)
    with server.ReferenceServer(config) as running:
        MessageConsole(stderr=True, highlight=False, markup=False).print(
            f"c2ws demo: reference server on {running.url} with a synthetic feed "
            f"(strategies {', '.join(map(str, config.strategies))}); Ctrl-C to stop",
            soft_wrap=True,
        )
        keys = [SubscriptionKey(sid, ch) for sid in config.strategies for ch in spec.CHANNELS]
        engine_config = EngineConfig(
            url=running.url, api_key=DEMO_API_KEY, keys=keys, traffic=verbose
        )
        code = stream(engine_config, output, count=count, timeout=timeout,
                      include_control=include_control,
                      terminal=TerminalOptions(tz, progress, bell or bell_fills, bell_fills))
    raise typer.Exit(code)


@dataclasses.dataclass(frozen=True)
class TerminalOptions:
    """How a run looks on a terminal: ``--tz``, ``--progress``, ``--bell``/``--bell-fills``."""

    zone: DisplayZone | None = None
    progress: bool | None = None
    bell: bool = False
    bell_fills_only: bool = False


def stream(
    config: EngineConfig, output: OutputMode, *, count: int | None, timeout: float | None,
    include_control: bool, fail_on_gap: bool = False,
    terminal: TerminalOptions = TerminalOptions(),
) -> int:
    """Run a subscription with the chosen renderer; returns the exit code."""
    from c2ws.cli.run import SubscribeOptions, SubscribeRun
    from c2ws.errors import StateError
    from c2ws.render.consoles import MessageConsole, is_pipe
    from c2ws.render.diagnostics import Diagnostics
    from c2ws.render.ndjson import NdjsonRenderer
    from c2ws.render.safe import terminal_safe

    if sys.stdout is None:  # started with stdout closed (``>&-``): nobody to stream to
        print("c2ws: stdout is closed; nothing to stream to", file=sys.stderr)
        return int(ExitCode.OK)
    stdout_is_tty = sys.stdout.isatty()
    table = output is OutputMode.table or (output is OutputMode.auto and stdout_is_tty)
    err_console = MessageConsole(stderr=True, highlight=False, markup=False, emoji=False)
    progress = terminal.progress
    if progress is None:
        # A pipe's reader may draw on the same terminal (`| jq`, `| less`): no status line
        # then; nor beside NDJSON lines on the terminal itself.
        progress = not stdout_is_tty and not is_pipe(sys.stdout)
    diagnostics = Diagnostics(
        err_console,
        verbose=config.traffic,
        status_line=progress and not table and err_console.is_terminal and not config.traffic,
    )
    options = SubscribeOptions(engine=config, count=count, timeout=timeout,
                               fail_on_gap=fail_on_gap)
    if config.state_path is not None:
        try:
            options = _exactly_once_output(options, diagnostics)
        except StateError as exc:
            diagnostics.say(terminal_safe(str(exc), 400), "red")
            diagnostics.close()
            return int(ExitCode.STATE_FAILED)
    renderer: Renderer
    table_console: Console | None = None
    if table:
        renderer, table_console = _table_renderer(config, terminal, diagnostics)
    else:
        renderer = NdjsonRenderer(sys.stdout.buffer, include_control=include_control)
    if terminal.bell:
        renderer = _with_bell(renderer, terminal, table_console, err_console, diagnostics)
    try:
        try:
            return int(SubscribeRun(options, renderer, diagnostics).run())
        finally:
            diagnostics.close()
            renderer.close()
    except (StdoutClosed, BrokenPipeError):
        silence_stdout()
        return int(ExitCode.OK)


def _table_renderer(
    config: EngineConfig, terminal: TerminalOptions, diagnostics: Diagnostics
) -> tuple[Renderer, Console]:
    """The table on stdout; when stderr is the same terminal, messages go through it so
    they land above its live region instead of under the next redraw."""
    from c2ws.render.clock import DisplayZone
    from c2ws.render.consoles import DataConsole, same_terminal, terminal_width
    from c2ws.render.layout import full_width
    from c2ws.render.table import TableRenderer  # rich tables only when asked for

    width = None
    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        # Piped (`| tee log`): the width of the terminal the user watches, else room for
        # every column; never a silent 80.
        width = terminal_width(sys.stderr, sys.stdin) or full_width()
    console = DataConsole(highlight=False, markup=False, emoji=False, width=width)
    zone = terminal.zone
    if zone is None:
        zone = DisplayZone.local() if console.is_terminal else DisplayZone.utc()
    table = TableRenderer(console, zone=zone)
    table.expect_subscriptions(config.keys)
    if table.is_live and same_terminal(sys.stdout, sys.stderr):
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


def _exactly_once_output(
    options: SubscribeOptions, diagnostics: Diagnostics
) -> SubscribeOptions:
    """With --state: when stdout is a regular file, its last lines are the truth about what
    was written (a crash can come between a write and the state commit), and it is synced
    before each commit; a pipe is committed after every message instead."""
    from c2ws.delivery.state import reconcile_output_tail

    fd = sys.stdout.fileno()
    tail = reconcile_output_tail(fd, keys=options.engine.keys)
    if not tail.reconciled:
        return dataclasses.replace(options, commit_each_message=True)
    if tail.torn_bytes_removed:
        diagnostics.say(f"removed a torn last line ({tail.torn_bytes_removed} bytes) from the "
                        "output file left by an earlier run", "yellow")
    engine = dataclasses.replace(options.engine, start_cursors=tail.cursors)
    return dataclasses.replace(options, engine=engine, sync_output_fd=fd)


def silence_stdout() -> None:
    """After the reader left, make the interpreter's final flush a no-op, not a traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
