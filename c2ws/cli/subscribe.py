"""``c2ws subscribe`` and ``c2ws demo``: parse, build the engine's configuration, pick
the renderer, and run (see :mod:`c2ws.cli.run`).  Nothing here knows the wire protocol."""


import dataclasses
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from c2ws import spec
from c2ws.cli.app import Command, StdoutClosed, app
from c2ws.cli.options import (
    ApiKeyFileOpt,
    ApiKeyOpt,
    BellFillsOpt,
    BellOpt,
    ColorOpt,
    CountOpt,
    FieldsOpt,
    IncludeControlOpt,
    MaxBufferOpt,
    OutputMode,
    ProfileOpt,
    ProgressOpt,
    RecordOpt,
    SymbolOpt,
    TimeoutOpt,
    TzOpt,
    UrlOpt,
    VerboseOpt,
    choice,
    complete_channel,
    number,
    parse_channels,
    parse_field_list,
    parse_strategy_ids,
    parse_symbols,
    parse_zone,
    seconds,
    whole_number,
)
from c2ws.cli.shared import server_module, silence_stdout
from c2ws.exitcodes import ExitCode
from c2ws.render.color import ColorChoice

if TYPE_CHECKING:
    from c2ws.cli.output import OutputSpec
    from c2ws.cli.run import SubscribeOptions
    from c2ws.delivery.state import StateFile
    from c2ws.engine import EngineConfig
    from c2ws.render import Renderer
    from c2ws.render.clock import DisplayZone
    from c2ws.render.diagnostics import Diagnostics

# -o given as None: the profile's output, else auto.
OutputOrProfileOpt = Annotated[
    OutputMode | None,
    typer.Option("-o", "--output", metavar="MODE", show_default=False,
                 parser=choice(OutputMode, "'-o' / '--output'"),
                 help="auto (default): tables on a terminal, NDJSON otherwise; or table, "
                      "ndjson, json (one array), csv, tsv."),
]

# The key the demo's in-process reference server accepts; no real key is involved.
DEMO_API_KEY = "c2ws-demo-key"

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
  11   --fail-on-gap: a gap the server could not replay, or a sequence reset
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
        list[str] | None,
        typer.Argument(metavar="STRATEGY_ID", show_default=False,
                       help="One or more C2 strategy ids (positive integers); default: the "
                            "profile's strategies."),
    ] = None,
    channel: Annotated[
        list[str] | None,
        typer.Option("-c", "--channel", metavar="CHANNEL",
                     help="signal or positions (or the full names); repeatable. "
                          "Default: both.", show_default=False,
                     autocompletion=complete_channel),
    ] = None,
    profile: ProfileOpt = None,
    api_key: ApiKeyOpt = None,
    api_key_file: ApiKeyFileOpt = None,
    url: UrlOpt = None,
    output: OutputOrProfileOpt = None,
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
                           help="Exit 11 once a gap the server cannot replay, or a "
                                "sequence reset, is written.")
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
    record: RecordOpt = None,
    fields: FieldsOpt = None,
    symbol: SymbolOpt = None,
    color: ColorOpt = ColorChoice.auto,
    verbose: VerboseOpt = False,
) -> None:
    """Subscribe to strategies and stream their signals and positions.

    Tables on a terminal, NDJSON in a pipe; messages and errors go to stderr.
    Each STRATEGY_ID is a positive integer ("1,2,3" works too).
    """
    from c2ws.cli.output import OutputSpec, TerminalOptions, check_output_spec
    from c2ws.cli.settings import load_api_key, load_settings
    from c2ws.config import Flags
    from c2ws.engine import EngineConfig, validate_config
    from c2ws.errors import ConfigError
    from c2ws.events import SubscriptionKey
    from c2ws.render.filters import MessageFilter
    from c2ws.session import SessionTimeouts

    settings = load_settings(Flags(
        profile=profile, url=url, api_key=api_key, api_key_file=api_key_file,
        strategies=tuple(parse_strategy_ids(strategy_ids)) if strategy_ids else (),
        channels=tuple(parse_channels(channel)) if channel else (),
        output=output.value if output is not None else None,
    ))
    ids = list(settings.strategies.value)
    if not ids:
        raise typer.BadParameter("no strategy ids: give STRATEGY_ID..., or set strategies "
                                 "in a profile of the config file", param_hint="'STRATEGY_ID'")
    channels = _setting_channels(settings.channels.value, settings.channels.source)
    output_mode = _setting_output(settings.output.value, settings.output.source)
    key = load_api_key(settings, given_on_command_line=api_key is not None)
    keys = [SubscriptionKey(sid, ch) for sid in ids for ch in channels]
    config = EngineConfig(
        url=settings.url.value, api_key=key, keys=keys, max_buffer=max_buffer,
        reconnect=not no_reconnect, max_retries=max_retries, max_backoff=max_backoff,
        connect_timeout=connect_timeout,
        timeouts=SessionTimeouts(silence=silence_timeout), state_path=state,
        traffic=verbose or record is not None,
    )
    try:
        validate_config(config)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint=f"'{exc.param or 'STRATEGY_ID'}'") from None
    zone = tz if tz is not None else _setting_zone(settings.tz.value, settings.tz.source)
    output_spec = OutputSpec(
        mode=output_mode, include_control=include_control, fields=parse_field_list(fields),
        message_filter=MessageFilter.of(symbols=parse_symbols(symbol)), color=color,
        verbose=verbose, terminal=TerminalOptions(zone, progress, bell or bell_fills, bell_fills),
    )
    check_output_spec(output_spec)
    raise typer.Exit(stream(config, output_spec, count=count, timeout=timeout,
                            fail_on_gap=fail_on_gap, record=record))


def _setting_channels(values: tuple[str, ...], source: str) -> list[str]:
    """Channels from the command line (already parsed) or a profile (named in errors)."""
    try:
        return parse_channels(list(values) or None)
    except typer.BadParameter as exc:
        if source == "--channel":
            raise
        raise typer.BadParameter(f"{exc.message} (from {source})", param_hint="channels") from None


def _setting_zone(value: str | None, source: str) -> "DisplayZone | None":
    """The profile's ``tz`` (None: the default for the output)."""
    if value is None:
        return None
    try:
        return parse_zone(value)
    except typer.BadParameter as exc:
        raise typer.BadParameter(f"{exc.message} (from {source})", param_hint="tz") from None


def _setting_output(value: str | None, source: str) -> OutputMode:
    if value is None:
        return OutputMode.auto
    try:
        return OutputMode(value.lower())
    except ValueError:
        names = ", ".join(mode.value for mode in OutputMode)
        raise typer.BadParameter(f"{value!r} (from {source}) is not an output mode: {names}",
                                 param_hint="output") from None


@app.command(cls=Command, epilog=DEMO_EPILOG)
def demo(
    output: OutputOrProfileOpt = None,
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
    record: RecordOpt = None,
    fields: FieldsOpt = None,
    symbol: SymbolOpt = None,
    color: ColorOpt = ColorChoice.auto,
    verbose: VerboseOpt = False,
) -> None:
    """Stream from the bundled reference server: no key, no network needed.

    Runs the reference server on 127.0.0.1 with a synthetic feed and subscribes to
    every strategy on both channels, from the first signal on.
    """
    from c2ws.cli.output import OutputSpec, TerminalOptions, check_output_spec
    from c2ws.engine import EngineConfig
    from c2ws.events import SubscriptionKey
    from c2ws.render.consoles import MessageConsole
    from c2ws.render.filters import MessageFilter

    output_spec = OutputSpec(
        mode=output or OutputMode.auto, include_control=include_control,
        fields=parse_field_list(fields), message_filter=MessageFilter.of(
            symbols=parse_symbols(symbol)), color=color, verbose=verbose,
        terminal=TerminalOptions(tz, progress, bell or bell_fills, bell_fills),
    )
    check_output_spec(output_spec)

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
            url=running.url, api_key=DEMO_API_KEY, keys=keys,
            traffic=verbose or record is not None,
        )
        code = stream(engine_config, output_spec, count=count, timeout=timeout, record=record)
    raise typer.Exit(code)


def stream(
    config: "EngineConfig", output: "OutputSpec", *, count: int | None, timeout: float | None,
    fail_on_gap: bool = False, record: Path | None = None,
) -> int:
    """Run a subscription with the chosen renderer; returns the exit code."""
    from c2ws.cli.output import stderr_diagnostics
    from c2ws.engine import open_state_file
    from c2ws.errors import StateError
    from c2ws.render.safe import terminal_safe

    if sys.stdout is None:  # started with stdout closed (``>&-``): nobody to stream to
        print("c2ws: stdout is closed; nothing to stream to", file=sys.stderr)
        return int(ExitCode.OK)
    if config.state_path is None:
        return _stream(config, output, None, count=count, timeout=timeout,
                       fail_on_gap=fail_on_gap, record=record)
    # The lock before anything else: a run it refuses must leave stdout's file, which the
    # run holding the lock may be appending to, as it is (not even a CSV header).
    try:
        state = open_state_file(config)
    except StateError as exc:
        diagnostics = stderr_diagnostics(output)
        diagnostics.say(terminal_safe(str(exc), 400), "red")
        diagnostics.close()
        return int(ExitCode.STATE_FAILED)
    try:
        return _stream(dataclasses.replace(config, state_path=None), output, state,
                       count=count, timeout=timeout, fail_on_gap=fail_on_gap, record=record)
    finally:
        state.close()  # the engine has, unless the run ended before it started


def _stream(
    config: "EngineConfig", output: "OutputSpec", state: "StateFile | None", *,
    count: int | None, timeout: float | None, fail_on_gap: bool, record: Path | None,
) -> int:
    """:func:`stream` once the state file, if any, is locked."""
    from c2ws.cli.collector import tune_for_streaming
    from c2ws.cli.output import build_output
    from c2ws.cli.run import SubscribeOptions, SubscribeRun
    from c2ws.engine import planned_connections
    from c2ws.errors import StateError
    from c2ws.render.safe import terminal_safe

    channels = {key.channel for key in config.keys}
    built = build_output(output, channels=channels, keys=config.keys,
                         connections=planned_connections(config))
    diagnostics = built.diagnostics
    # Heartbeat events only for what shows them: otherwise an idle connection's heartbeat
    # wakes nothing but its own socket thread.
    config = dataclasses.replace(
        config,
        report_heartbeats=built.table or diagnostics.has_status_line or output.include_control,
        decoded_payloads=built.needs_payloads,
    )
    message_filter = output.message_filter
    options = SubscribeOptions(engine=config, count=count, timeout=timeout,
                               fail_on_gap=fail_on_gap, state=state,
                               selects=message_filter.selects if message_filter.active else None,
                               readback_fd=_fileno(sys.stdout) if built.envelope_lines else None)
    if state is not None:
        try:
            options = _exactly_once_output(options, diagnostics)
        except StateError as exc:
            diagnostics.say(terminal_safe(str(exc), 400), "red")
            diagnostics.close()
            _close_unstarted(built.renderer)
            return int(ExitCode.STATE_FAILED)
    renderer: Renderer = built.renderer
    if record is not None:
        recorder = _open_recording(record, config, diagnostics)
        if recorder is None:
            _close_unstarted(built.renderer)
            return int(ExitCode.USAGE)
        from c2ws.render.recording import TeeRenderer

        renderer = TeeRenderer([recorder, renderer])
    tune_for_streaming()
    run = SubscribeRun(options, renderer, diagnostics)  # it closes the renderer
    try:
        try:
            code = int(run.run())
        finally:
            diagnostics.close()
    except (StdoutClosed, BrokenPipeError):
        silence_stdout()
        return int(ExitCode.OK)
    if run.stdout_lost:
        silence_stdout()
    return code


def _fileno(stream: "TextIO") -> int | None:
    try:
        return stream.fileno()
    except (OSError, ValueError):  # not a file (a test's StringIO), or closed
        return None


def _close_unstarted(renderer: "Renderer") -> None:
    """Close the output of a run refused before it started (a JSON array is still
    closed); failing to write it is not the error to report."""
    try:
        renderer.close()
    except OSError:
        silence_stdout()


def _open_recording(
    path: Path, config: "EngineConfig", diagnostics: "Diagnostics"
) -> "Renderer | None":
    """The --record sink, appending to ``path``; None (said on stderr) when it cannot be
    opened.  A file of this user's with one name, never reached through a symbolic link
    (see :func:`c2ws.localfiles.open_own_file`), created private: it holds the frames."""
    from c2ws.localfiles import UnusableFile, open_own_file
    from c2ws.render.recording import RecordingRenderer
    from c2ws.render.safe import terminal_safe

    try:
        fd, _ = open_own_file(path, append=True)
    except UnusableFile as exc:
        problem = f"--record: {path} {exc.problem}; pass a file of your own"
    except OSError as exc:
        problem = f"--record: cannot open {path}: {exc.strerror or exc}"
    else:
        return RecordingRenderer(os.fdopen(fd, "ab"), keys=config.keys,
                                 per_connection=config.per_connection, url=config.url)
    diagnostics.say(terminal_safe(problem, 400), "red")
    diagnostics.close()
    return None



def _exactly_once_output(
    options: "SubscribeOptions", diagnostics: "Diagnostics"
) -> "SubscribeOptions":
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
    engine = dataclasses.replace(options.engine, start_cursors=tail.cursors,
                                 renumbered=tail.reset_keys)
    return dataclasses.replace(options, engine=engine, sync_output_fd=fd)
