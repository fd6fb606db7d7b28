"""``c2ws subscribe`` and ``c2ws demo``: parse, build the engine's configuration, pick
the renderer, and run (see :mod:`c2ws.cli.run`).  Nothing here knows the wire protocol."""


import contextlib
import functools
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from c2ws import spec
from c2ws.cli.app import Command, StdoutClosed, app
from c2ws.cli.options import (
    OUTPUT_HELP,
    ApiKeyFileOpt,
    ApiKeyOpt,
    BellFillsOpt,
    BellOpt,
    ColorOpt,
    CountOpt,
    FieldsOpt,
    IncludeControlOpt,
    LogFormat,
    LogFormatOpt,
    MaxBufferOpt,
    OutputMode,
    ProfileOpt,
    ProgressOpt,
    QuietOpt,
    RecordOpt,
    RestUrlOpt,
    SymbolOpt,
    TimeoutOpt,
    TzOpt,
    UrlOpt,
    VerboseOpt,
    choice,
    complete_channel,
    exit_codes_epilog,
    number,
    parse_channels,
    parse_field_list,
    parse_strategy_ids,
    parse_symbols,
    parse_zone,
    seconds,
    whole_number,
)
from c2ws.cli.shared import server_module, silence_stdout, threads_without_signals
from c2ws.cli.sinks import (
    CreateStreamOpt,
    CredsOpt,
    DeadLetterOpt,
    ExecFailOpt,
    ExecOpt,
    ExecRetriesOpt,
    ExecTimeoutOpt,
    NkeyOpt,
    PasswordOpt,
    SubjectPrefixOpt,
    TlsCaOpt,
    TlsCertOpt,
    TlsKeyOpt,
    ToOpt,
    UserOpt,
)
from c2ws.exitcodes import ExitCode
from c2ws.render.color import ColorChoice

if TYPE_CHECKING:
    from c2ws import FileCursors, Stream
    from c2ws.cli.output import OutputSpec
    from c2ws.cli.params import SinkOptions, StreamParams, Unattended
    from c2ws.cli.strategies_watch import StrategiesFileWatch
    from c2ws.cursors import CursorStore
    from c2ws.events import SubscriptionKey
    from c2ws.monitor.health import StreamHealth
    from c2ws.monitor.metrics import MetricsServer
    from c2ws.render import Renderer
    from c2ws.render.clock import DisplayZone
    from c2ws.render.diagnostics import Diagnostics
    from c2ws.render.recording import RecordingRenderer
    from c2ws.sinks import Guarantee, Sink
    from c2ws.sinks.ahead import WriteAhead

# -o given as None: the profile's output, else auto.
OutputOrProfileOpt = Annotated[
    OutputMode | None,
    typer.Option("-o", "--output", metavar="MODE", show_default=False,
                 parser=choice(OutputMode, "'-o' / '--output'"),
                 help=OUTPUT_HELP),
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
"""
SUBSCRIBE_EPILOG += "\n" + exit_codes_epilog()

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
                          "it: exactly once across restarts (see 'Running unattended' in the "
                          "README)."),
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
    ] = spec.CONNECT_TIMEOUT_SECONDS,
    record: RecordOpt = None,
    fields: FieldsOpt = None,
    symbol: SymbolOpt = None,
    color: ColorOpt = ColorChoice.auto,
    verbose: VerboseOpt = False,
    # --- issue 24: the REST side ---
    snapshot: Annotated[
        bool, typer.Option("--snapshot",
                           help="NDJSON/JSON: first a positions.snapshot line per strategy "
                                "(its open positions from the REST API), then the live "
                                "stream. Tables always start from one.")
    ] = False,
    heal_gaps: Annotated[
        bool, typer.Option("--heal-gaps",
                           help="After a gap, write the missing orders from the REST order "
                                "history (backfill.order lines) before the next signal; with "
                                "--fail-on-gap only a gap that could not be healed exits 11.")
    ] = False,
    rest_url: RestUrlOpt = None,
    # --- issue 25: running unattended ---
    quiet: QuietOpt = False,
    log_format: LogFormatOpt = LogFormat.human,
    strict: Annotated[
        bool, typer.Option("--strict",
                           help="Exit 7 as soon as any requested subscription is rejected "
                                "(by default only when every one is).")
    ] = False,
    strategies_file: Annotated[
        Path | None,
        typer.Option("--strategies-file", metavar="FILE", show_default=False,
                     help="Also follow the strategies in FILE (one id per line, '#' "
                          "comments, ID:signal or ID:positions for one channel), "
                          "subscribing and unsubscribing without a reconnect when it "
                          "changes or on SIGHUP (see 'Changing strategies without a "
                          "restart' in the README)."),
    ] = None,
    metrics: Annotated[
        str | None,
        typer.Option("--metrics", metavar="HOST:PORT", show_default=False,
                     help="Serve Prometheus metrics on http://HOST:PORT/metrics and a health "
                          "check on /healthz (the 'metrics' extra; see 'Running unattended' "
                          "in the README)."),
    ] = None,
    # --- issue 23: sinks other than stdout ---
    exec_command: ExecOpt = None,
    exec_retries: ExecRetriesOpt = spec.EXEC_DEFAULT_RETRIES,
    exec_timeout: ExecTimeoutOpt = None,
    exec_fail: ExecFailOpt = None,
    dead_letter: DeadLetterOpt = None,
    to: ToOpt = None,
    subject_prefix: SubjectPrefixOpt = spec.NATS_SUBJECT_PREFIX,
    create_stream: CreateStreamOpt = None,
    creds: CredsOpt = None,
    nkey: NkeyOpt = None,
    user: UserOpt = None,
    password: PasswordOpt = None,
    tlscert: TlsCertOpt = None,
    tlskey: TlsKeyOpt = None,
    tlsca: TlsCaOpt = None,
) -> None:
    """Subscribe to strategies and stream their signals and positions.

    Tables on a terminal, NDJSON in a pipe; messages and errors go to stderr.
    Each STRATEGY_ID is a positive integer ("1,2,3" works too).
    """
    from c2ws.cli.output import OutputSpec, TerminalOptions, check_output_spec
    from c2ws.cli.params import SinkOptions, StreamParams, Unattended
    from c2ws.cli.settings import load_api_key, load_settings
    from c2ws.config import Flags
    from c2ws.render.filters import MessageFilter

    settings = load_settings(Flags(
        profile=profile, url=url, api_key=api_key, api_key_file=api_key_file,
        strategies=tuple(parse_strategy_ids(strategy_ids)) if strategy_ids else (),
        channels=tuple(parse_channels(channel)) if channel else (),
        output=output.value if output is not None else None,
    ))
    ids = list(settings.strategies.value)
    if not ids and strategies_file is None:
        raise typer.BadParameter("no strategy ids: give STRATEGY_ID..., --strategies-file, "
                                 "or set strategies in a profile of the config file",
                                 param_hint="'STRATEGY_ID'")
    channels = _setting_channels(settings.channels.value, settings.channels.source)
    from_file = _strategies_from_file(strategies_file, ids, channels)
    output_mode = _setting_output(settings.output.value, settings.output.source)
    key = load_api_key(settings, given_on_command_line=api_key is not None, quiet=quiet)
    params = StreamParams(
        strategies=tuple(ids), channels=tuple(channels), url=settings.url.value, api_key=key,
        max_buffer=max_buffer, reconnect=not no_reconnect, max_retries=max_retries,
        max_backoff=max_backoff, connect_timeout=connect_timeout,
        silence_timeout=silence_timeout, traffic=verbose or record is not None,
        count=count, timeout=timeout, fail_on_gap=fail_on_gap,
        heal_gaps=heal_gaps, snapshot=snapshot, rest_url=rest_url,
        strategies_file=strategies_file, subscriptions=tuple(from_file),
    )
    params.check()
    zone = tz if tz is not None else _setting_zone(settings.tz.value, settings.tz.source)
    output_spec = OutputSpec(
        mode=output_mode, include_control=include_control, fields=parse_field_list(fields),
        message_filter=MessageFilter.of(symbols=parse_symbols(symbol)), color=color,
        verbose=verbose, terminal=TerminalOptions(zone, progress, bell or bell_fills, bell_fills),
        quiet=quiet, log_format=log_format.value,
    )
    check_output_spec(output_spec)
    sinks = SinkOptions(  # issue 23
        exec_command=exec_command, exec_retries=exec_retries, exec_timeout=exec_timeout,
        exec_fail=exec_fail, dead_letter=dead_letter, to=to, subject_prefix=subject_prefix,
        create_stream=create_stream, creds=creds, nkey=nkey, user=user, password=password,
        tlscert=tlscert, tlskey=tlskey, tlsca=tlsca)
    sinks.check(fields=output_spec.fields)
    unattended = Unattended(metrics=_metrics_address(metrics), strict=strict)
    raise typer.Exit(run_stream(params, output_spec, record=record, state=state,
                                unattended=unattended, sinks=sinks))


def _strategies_from_file(
    path: Path | None, ids: Sequence[int], channels: Sequence[str]
) -> "list[SubscriptionKey]":
    """What --strategies-file asks for at the start, besides the command line's; a file
    that cannot be used is a usage error (exit 2) naming the file and line."""
    if path is None:
        return []
    from c2ws.cli.strategies_watch import read_subscriptions
    from c2ws.events import SubscriptionKey
    from c2ws.strategies_file import StrategiesFileError

    fixed = [SubscriptionKey(sid, channel) for sid in ids for channel in channels]
    try:
        wanted = read_subscriptions(path, channels=channels, fixed=fixed)
    except StrategiesFileError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--strategies-file'") from None
    return [key for key in wanted if key not in set(fixed)]


def _metrics_address(text: str | None) -> tuple[str, int] | None:
    if text is None:
        return None
    from c2ws.monitor.metrics import parse_address

    try:
        return parse_address(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--metrics'") from None


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
    quiet: QuietOpt = False,
    log_format: LogFormatOpt = LogFormat.human,
) -> None:
    """Stream from the bundled reference server: no key, no network needed.

    Runs the reference server on 127.0.0.1 with a synthetic feed and subscribes to
    every strategy on both channels, from the first signal on.
    """
    from c2ws.cli.output import (
        OutputSpec,
        TerminalOptions,
        check_output_spec,
        stderr_diagnostics,
    )
    from c2ws.render.consoles import MessageConsole
    from c2ws.render.filters import MessageFilter

    output_spec = OutputSpec(
        mode=output or OutputMode.auto, include_control=include_control,
        fields=parse_field_list(fields), message_filter=MessageFilter.of(
            symbols=parse_symbols(symbol)), color=color, verbose=verbose,
        terminal=TerminalOptions(tz, progress, bell or bell_fills, bell_fills),
        quiet=quiet, log_format=log_format.value,
    )
    check_output_spec(output_spec)

    server = server_module()
    # The feed starts once the subscriptions are in, so every stream shows from seq_id 1.
    config = server.ServerConfig(rate=rate, seed=seed, api_keys=(DEMO_API_KEY,),
                                 feed_waits_for_subscription=True)
    with server.ReferenceServer(config) as running:
        banner = (f"reference server on {running.url} with a synthetic feed (strategies "
                  f"{', '.join(map(str, config.strategies))}); Ctrl-C to stop")
        if output_spec.log_format == LogFormat.json.value:
            stderr_diagnostics(output_spec).say(f"demo: {banner}", event="demo")
        elif not quiet:
            MessageConsole(stderr=True, highlight=False, markup=False).print(
                f"c2ws demo: {banner}", soft_wrap=True)
        from c2ws.cli.params import StreamParams

        params = StreamParams(
            strategies=tuple(config.strategies), channels=spec.CHANNELS, url=running.url,
            api_key=DEMO_API_KEY, traffic=verbose or record is not None, count=count,
            timeout=timeout,
        )
        code = run_stream(params, output_spec, record=record)
    raise typer.Exit(code)


def run_stream(
    params: "StreamParams", output: "OutputSpec", *, record: Path | None = None,
    state: Path | None = None, unattended: "Unattended | None" = None,
    sinks: "SinkOptions | None" = None,
) -> int:
    """Run a subscription with the chosen renderer; returns the exit code.
    ``unattended``: none of --metrics and --strict when None."""
    import c2ws
    from c2ws.cli.output import stderr_diagnostics
    from c2ws.cli.params import Unattended
    from c2ws.errors import StateFileError
    from c2ws.render.safe import terminal_safe

    unattended = unattended or Unattended()
    if sinks is not None and sinks.active:  # issue 23: --exec, --to
        from c2ws.cli.fanout import run_to_sink

        return run_to_sink(params, output, sinks, record=record, state=state,
                           run_stream=functools.partial(_run_stream, unattended=unattended))
    if sys.stdout is None:  # started with stdout closed (``>&-``): nobody to stream to
        print("c2ws: stdout is closed; nothing to stream to", file=sys.stderr)
        return int(ExitCode.OK)
    if state is None:
        return _run_stream(params, output, None, record=record, unattended=unattended)
    # --- issue 23: what stdout keeps with --state (refused, warned, or exactly once) ---
    from c2ws.cli.output import resolve_mode
    from c2ws.sinks import Guarantee
    from c2ws.sinks.output import output_guarantee

    stdout_fd = _fileno(sys.stdout)
    mode = resolve_mode(output.mode, sys.stdout)
    read_back = mode is OutputMode.ndjson and not output.fields
    guarantee = output_guarantee(stdout_fd, read_back=read_back,
                                 one_document=mode is OutputMode.json)
    if guarantee[0] is Guarantee.NONE:  # before the lock: nothing is touched
        diagnostics = stderr_diagnostics(output)
        diagnostics.say(f"--state with stdout: {guarantee[1]}", "red")
        diagnostics.close()
        return int(ExitCode.USAGE)
    # The lock before anything else: a run it refuses must leave stdout's file, which the
    # run holding the lock may be appending to, as it is (not even a CSV header).  Then
    # stdout, when it is a file appended to, is read back from where the last commit says
    # its lines end: a torn last line is cut, and what it holds after that is resumed
    # after (NDJSON) or cut (other formats; the server sends it again).
    cursors = c2ws.FileCursors(state, output=stdout_fd, read_back=read_back)
    try:
        cursors.open(c2ws.StreamIdentity.of(params.url, params.api_key, params.keys()))
    except StateFileError as exc:
        diagnostics = stderr_diagnostics(output)
        diagnostics.say(terminal_safe(str(exc), 400), "red")
        diagnostics.close()
        return int(ExitCode.STATE_FAILED)
    try:
        return _run_stream(params, output, cursors, record=record, guarantee=guarantee,
                           unattended=unattended)
    finally:
        cursors.close()  # the stream has, unless the run ended before it started


def _run_stream(
    params: "StreamParams", output: "OutputSpec", cursors: "FileCursors | None", *,
    record: Path | None, unattended: "Unattended | None" = None,
    guarantee: "tuple[Guarantee, str] | None" = None,
    sink: "Sink | None" = None, store: "CursorStore | None" = None,
) -> int:
    """:func:`run_stream` once the state file, if any, is locked."""
    from c2ws.cli.collector import tune_for_streaming
    from c2ws.cli.output import build_output
    from c2ws.cli.params import Unattended
    from c2ws.cli.run import ForwardEvents, SubscribeRun
    from c2ws.cli.watch import RunWatch
    from c2ws.monitor.health import CountingCommits, StreamHealth, socket_heartbeats
    from c2ws.monitor.notify import SystemdNotifier
    from c2ws.sinks import check_promise
    from c2ws.sinks.output import OutputSink

    unattended = unattended or Unattended()
    plan = params.stream()
    built = build_output(output, channels=set(params.channels), keys=plan.keys,
                         connections=plan.connection_count)
    diagnostics = built.diagnostics
    if cursors is not None and cursors.torn_bytes_removed:
        diagnostics.say(f"removed a torn last line ({cursors.torn_bytes_removed} bytes) from "
                        "the output file left by an earlier run", "yellow")
    _say_reconciliation(cursors, diagnostics)
    message_filter = output.message_filter
    renderer: Renderer = built.renderer
    if record is not None:
        recorder = _open_recording(record, params, plan.keys, diagnostics)
        if recorder is None:
            _close_unstarted(built.renderer)
            return int(ExitCode.USAGE)
        from c2ws.render.recording import TeeRenderer

        renderer = TeeRenderer([recorder, renderer])
        _end_table_with(built.renderer, recorder)
    events = ForwardEvents()
    # Issue 24: a table's positions start from the REST snapshot, again after each
    # reconnect; other outputs only with --snapshot, once, before the live stream.
    # Without the rest extra a table goes without (asked for with --snapshot, it warns).
    snapshot: bool | str = params.snapshot
    if built.table and spec.CHANNEL_POSITIONS in params.channels and _has_httpx():
        snapshot = "reconnect"
    # Issue 25: the run's health (reconnected lines, SIGUSR1, metrics, systemd).  A
    # heartbeat is due within the server's interval and grace, or --silence-timeout.
    # Heartbeats are read from the socket threads' sessions when asked for (metrics, the
    # watchdog, SIGUSR1), not reported: that would wake the consumer at each one.
    health = StreamHealth.of(plan, count_streams=unattended.metrics is not None,
                             heartbeat_deadline=min(spec.HEALTH_HEARTBEAT_DEADLINE_SECONDS,
                                                    params.silence_timeout),
                             heartbeats=socket_heartbeats)
    diagnostics.expect(health.plan)
    notifier = SystemdNotifier()
    # Heartbeat events only for what shows them: otherwise an idle connection's
    # heartbeat wakes nothing but its own socket thread.
    heartbeats = built.table or diagnostics.has_status_line or output.include_control
    # --exec/--to bring a store of their own (the sink's cursors over the state file).
    kept: FileCursors | CursorStore | CountingCommits | None = (
        store if store is not None else cursors)
    if kept is not None and unattended.metrics is not None:
        kept = CountingCommits(kept, health)
    stream = params.stream(
        snapshot=snapshot,
        cursors=kept, auto_ack=False, on_event=events,
        select=message_filter.selects_message if message_filter.active else None,
        heartbeats=heartbeats, decode_payloads=built.needs_payloads,
    )
    metrics = None
    if unattended.metrics is not None:
        metrics = _start_metrics(unattended.metrics, health, stream, diagnostics)
        if metrics is None:
            notifier.close()
            _close_unstarted(renderer)
            return int(ExitCode.USAGE)
    watch = RunWatch(stream, diagnostics, health, metrics=metrics, notifier=notifier,
                     strict=unattended.strict)
    watch.warn_about_watchdog()
    watch.start()
    tune_for_streaming()
    strategies = _strategies_watch(params, stream, diagnostics)
    # Issue 23: stdout is the sink (the table writes through the text stream: flushed too)
    # unless another was given (then the renderer gets the other events only).
    if sink is None:
        sink = OutputSink(renderer, text=sys.stdout if built.table else None)
        if guarantee is not None:
            sink.guarantee, sink.guarantee_detail = guarantee
    if kept is None and isinstance(sink, OutputSink) and sink.renderer is renderer:
        _write_ahead(stream, renderer)
    if cursors is not None:  # --state: what the sink keeps across a crash
        warning = check_promise(sink)
        if warning is not None:
            diagnostics.say(warning, "yellow")
    run = SubscribeRun(stream, renderer, diagnostics, events=events, count=params.count,
                       timeout=params.timeout, sink=sink,
                       readback_fd=_fileno(sys.stdout) if built.envelope_lines and isinstance(
                           sink, OutputSink) else None,
                       watch=watch, on_started=strategies.start if strategies else None)
    try:
        try:
            with _hangup_rereads(strategies):
                code = int(run.run())  # it closes the renderer
        finally:
            if strategies is not None:
                strategies.close()
            watch.close()
            diagnostics.close()
    except (StdoutClosed, BrokenPipeError):
        silence_stdout()
        return int(ExitCode.OK)
    if run.stdout_lost:
        silence_stdout()
    return code


def _write_ahead(stream: "Stream", renderer: "Renderer") -> "WriteAhead | None":
    """Plain NDJSON to a pipe or /dev/null: a quiet stream's lines are written by the
    socket thread that read them (c2ws.sinks.ahead), when the stream allows it; the
    writer, if so."""
    from c2ws.render.ndjson import NdjsonRenderer

    if type(renderer) is not NdjsonRenderer:
        return None
    from c2ws.sinks.ahead import WriteAhead

    writer = WriteAhead.of(renderer.sink)
    if writer is None or not stream.write_ahead(writer):
        return None
    return writer


def _strategies_watch(
    params: "StreamParams", stream: "Stream", diagnostics: "Diagnostics"
) -> "StrategiesFileWatch | None":
    """--strategies-file's watch over ``stream`` (started once the stream runs)."""
    if params.strategies_file is None:
        return None
    from c2ws.cli.strategies_watch import StrategiesFileWatch
    from c2ws.events import SubscriptionKey

    return StrategiesFileWatch(
        params.strategies_file, channels=params.channels,
        fixed=[SubscriptionKey(sid, channel) for sid in params.strategies
               for channel in params.channels],
        current=params.keys(), stream=stream, diagnostics=diagnostics)


@contextlib.contextmanager
def _hangup_rereads(strategies: "StrategiesFileWatch | None") -> Iterator[None]:
    """With --strategies-file, SIGHUP re-reads it (without, it ends the run: 129)."""
    if strategies is None:
        yield
        return
    from c2ws.cli import entry

    previous, entry.hangup_action = entry.hangup_action, strategies.hangup
    try:
        yield
    finally:
        entry.hangup_action = previous


def _start_metrics(
    address: tuple[str, int], health: "StreamHealth", stream: "Stream",
    diagnostics: "Diagnostics",
) -> "MetricsServer | None":
    """The --metrics server, listening; None (said on stderr) when it cannot be."""
    from c2ws.monitor.metrics import MetricsServer, MetricsUnavailable
    from c2ws.render.safe import terminal_safe

    host, port = address
    try:
        with threads_without_signals():
            server = MetricsServer(health, host, port, backlog=lambda: stream.backlog).start()
    except MetricsUnavailable as exc:
        diagnostics.say(str(exc), "red", event="metrics")
    except OSError as exc:
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        diagnostics.say(f"cannot serve --metrics on {terminal_safe(where, 300)}: "
                        f"{exc.strerror or exc}", "red", event="metrics")
        return None
    # Port 0 picks a free one: the line says which.
    diagnostics.say(f"metrics on {server.url}/metrics, health on {server.url}/healthz",
                    event="metrics")
    return server


def _say_reconciliation(cursors: "FileCursors | None", diagnostics: "Diagnostics") -> None:
    """What the start found in the output file after the last commit, when it is worth a
    line: a tail cut (formats not read back) or a file that is not the one recorded."""
    found = cursors.reconciliation if cursors is not None else None
    if found is None:
        return
    if found.cut_bytes:
        diagnostics.say(f"cut {found.cut_lines} line(s) ({found.cut_bytes} bytes) written "
                        "after the last commit from the output file: the server sends those "
                        "messages again", "yellow")
    if found.notice is not None:
        from c2ws.render.safe import terminal_safe

        diagnostics.say(terminal_safe(found.notice, 400), "yellow")


def _has_httpx() -> bool:
    import importlib.util

    return importlib.util.find_spec("httpx") is not None


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


def _end_table_with(table: object, recorder: "RecordingRenderer") -> None:
    """A table's "run ended" moment is the recording's last line (a replay's is too)."""
    import time

    from c2ws.render.table import TableRenderer

    if isinstance(table, TableRenderer):
        table.ended_clock = lambda: (time.time() if recorder.last_at is None
                                     else recorder.last_at)


def _open_recording(
    path: Path, params: "StreamParams", keys: "Sequence[SubscriptionKey]",
    diagnostics: "Diagnostics",
) -> "RecordingRenderer | None":
    """The --record sink, appending to ``path``; None (said on stderr) when it cannot be
    opened."""
    from c2ws.render.recording import RecordingUnusable, open_recording
    from c2ws.render.safe import terminal_safe

    try:
        return open_recording(path, keys=keys, url=params.url,
                              per_connection=spec.MAX_SUBSCRIPTIONS_PER_CONNECTION)
    except RecordingUnusable as exc:
        diagnostics.say(terminal_safe(str(exc), 400), "red")
        diagnostics.close()
        return None
