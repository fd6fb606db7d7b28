"""The Typer command line: parses arguments and wires the pieces together.

Nothing here knows the wire protocol; see ``subscribe.py`` for the run itself.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from enum import Enum
from pathlib import Path
from types import FrameType, ModuleType
from typing import Annotated, NoReturn

import typer

# Typer prints these scripts only for the shell it detects; this is the same function,
# for any shell.  tests/test_completions.py notices if it moves.
from typer._completion_shared import get_completion_script

from c2ws import __version__, spec
from c2ws.engine import DEFAULT_MAX_BUFFER, EngineConfig, validate_config
from c2ws.errors import ConfigError, StateError
from c2ws.events import SubscriptionKey
from c2ws.exitcodes import ExitCode
from c2ws.render import Renderer
from c2ws.render.consoles import DataConsole, MessageConsole
from c2ws.render.diagnostics import Diagnostics
from c2ws.render.ndjson import NdjsonRenderer
from c2ws.render.safe import keep_secret, redacted, terminal_safe
from c2ws.session import SessionTimeouts
from c2ws.subscribe import StdoutClosed, SubscribeOptions, SubscribeRun, Terminated

app = typer.Typer(
    name="c2ws",
    help="Stream Collective2 trading signals and positions from the C2 WebSocket API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# The key the demo's in-process reference server accepts; no real key is involved.
DEMO_API_KEY = "demo"
COMPLETE_VAR = "_C2WS_COMPLETE"

CHANNEL_ALIASES = {
    "signal": spec.CHANNEL_SIGNAL,
    "signals": spec.CHANNEL_SIGNAL,
    spec.CHANNEL_SIGNAL: spec.CHANNEL_SIGNAL,
    "positions": spec.CHANNEL_POSITIONS,
    "position": spec.CHANNEL_POSITIONS,
    spec.CHANNEL_POSITIONS: spec.CHANNEL_POSITIONS,
}


class Shell(str, Enum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def complete_channel(incomplete: str) -> list[str]:
    return [name for name in CHANNEL_ALIASES if name.startswith(incomplete)]


class OutputMode(str, Enum):
    auto = "auto"
    table = "table"
    ndjson = "ndjson"


def parse_strategy_ids(values: list[str]) -> list[int]:
    ids: list[int] = []
    for value in values:
        for part in value.split(","):
            text = part.strip()
            if not (text.isascii() and text.isdigit()) or int(text) <= 0:
                raise typer.BadParameter(
                    f"{part!r} is not a strategy id (a positive integer)",
                    param_hint="'STRATEGY_ID'",
                )
            if int(text) not in ids:
                ids.append(int(text))
    return ids


def parse_channels(values: list[str] | None) -> list[str]:
    if not values:
        return list(spec.CHANNELS)
    channels: list[str] = []
    for value in values:
        for part in value.split(","):
            channel = CHANNEL_ALIASES.get(part.strip().lower())
            if channel is None:
                raise typer.BadParameter(
                    f"{part!r} is not a channel; use signal, positions, "
                    f"{spec.CHANNEL_SIGNAL} or {spec.CHANNEL_POSITIONS}",
                    param_hint="'-c' / '--channel'",
                )
            if channel not in channels:
                channels.append(channel)
    return channels


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"c2ws {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True,
                     help="Show the version and exit."),
    ] = False,
) -> None:
    """Stream Collective2 trading signals and positions from the C2 WebSocket API."""


# Options shared by subscribe and demo.
CountOpt = Annotated[
    int | None,
    typer.Option("-n", "--count", min=1, help="Exit 0 after N signal/position messages."),
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option("--timeout", min=0.0,
                 help="Stop after S seconds (exit 0; 124 if --count was not reached)."),
]
OutputOpt = Annotated[
    OutputMode,
    typer.Option("-o", "--output",
                 help="auto: tables on a terminal, NDJSON otherwise.", case_sensitive=False),
]
IncludeControlOpt = Annotated[
    bool,
    typer.Option("--include-control",
                 help="NDJSON: also print control traffic (connected, heartbeats, acks, errors)."),
]
MaxBufferOpt = Annotated[
    int,
    typer.Option("--max-buffer", min=1,
                 help="Messages held for a slow stdout reader; past that, c2ws closes the "
                      "connection and resumes where the output stopped once the reader "
                      "catches up (exit 8 with --no-reconnect)."),
]
VerboseOpt = Annotated[
    bool, typer.Option("-v", "--verbose", help="Show protocol traffic on stderr (key redacted).")
]


@app.command()
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
        typer.Option("--api-key", envvar="C2_API_KEY", show_default=False,
                     help="C2 API key (sent as a Bearer token; never printed)."),
    ] = None,
    url: Annotated[
        str, typer.Option("--url", envvar="C2WS_URL", help="WebSocket endpoint.")
    ] = spec.DEFAULT_URL,
    output: OutputOpt = OutputMode.auto,
    count: CountOpt = None,
    timeout: TimeoutOpt = None,
    include_control: IncludeControlOpt = False,
    max_buffer: MaxBufferOpt = DEFAULT_MAX_BUFFER,
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
        typer.Option("--max-retries", min=0, metavar="N", show_default=False,
                     help="Give up after N consecutive failed reconnects (default: never)."),
    ] = None,
    max_backoff: Annotated[
        float, typer.Option("--max-backoff", min=0.0, metavar="S",
                            help="Longest wait between reconnect attempts, in seconds.")
    ] = spec.BACKOFF_MAX_SECONDS,
    fail_on_gap: Annotated[
        bool, typer.Option("--fail-on-gap",
                           help="Exit 11 once a gap the server cannot replay is written.")
    ] = False,
    silence_timeout: Annotated[
        float, typer.Option("--silence-timeout", min=0.1, metavar="S",
                            help="Reconnect when nothing, not even a heartbeat, arrives for "
                                 "S seconds.")
    ] = spec.CLIENT_STALE_AFTER_SECONDS,
    connect_timeout: Annotated[
        float, typer.Option("--connect-timeout", min=0.1,
                            help="Seconds to wait for the connection and upgrade.")
    ] = 10.0,
    verbose: VerboseOpt = False,
) -> None:
    """Subscribe to strategies and stream their signals and positions."""
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
                            include_control=include_control, fail_on_gap=fail_on_gap))


@app.command()
def demo(
    output: OutputOpt = OutputMode.auto,
    count: CountOpt = None,
    timeout: TimeoutOpt = None,
    include_control: IncludeControlOpt = False,
    rate: Annotated[
        float, typer.Option("--rate", min=0.1, help="Synthetic messages per second.")
    ] = 2.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthetic feed.")] = 0,
    verbose: VerboseOpt = False,
) -> None:
    """Stream from the bundled reference server: no key, no network needed."""
    server_module = _server_module()
    # The feed starts once the subscriptions are in, so every stream shows from seq_id 1.
    config = server_module.ServerConfig(rate=rate, seed=seed, api_keys=(DEMO_API_KEY,),
                                        feed_waits_for_subscription=True)
    with server_module.ReferenceServer(config) as server:
        MessageConsole(stderr=True, highlight=False, markup=False).print(
            f"c2ws demo: reference server on {server.url} with a synthetic feed "
            f"(strategies {', '.join(map(str, config.strategies))}); Ctrl-C to stop",
            soft_wrap=True,
        )
        keys = [SubscriptionKey(sid, ch) for sid in config.strategies for ch in spec.CHANNELS]
        engine_config = EngineConfig(
            url=server.url, api_key=DEMO_API_KEY, keys=keys, traffic=verbose
        )
        code = stream(engine_config, output, count=count, timeout=timeout,
                      include_control=include_control)
    raise typer.Exit(code)


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port (0: any free).")]
    = 8765,
    api_key: Annotated[
        list[str] | None,
        typer.Option("--api-key", help="Accepted API key; repeatable. Default: test-key.",
                     show_default=False),
    ] = None,
    heartbeat_interval: Annotated[
        float, typer.Option("--heartbeat-interval", min=0.05, help="Seconds between heartbeats.")
    ] = spec.HEARTBEAT_INTERVAL_SECONDS,
    feed: Annotated[
        str, typer.Option("--feed", metavar="synthetic|none|FILE",
                          help="Synthetic trading, nothing, or a recorded NDJSON file.")
    ] = "synthetic",
    rate: Annotated[float, typer.Option("--rate", min=0.0, help="Feed messages per second.")]
    = 2.0,
    strategies: Annotated[
        str | None,
        typer.Option("--strategies", metavar="ID,...",
                     help="Strategies the keys may see (others are FORBIDDEN).",
                     show_default=False),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthetic feed.")] = 0,
) -> None:
    """Run the reference server: a local stand-in for the C2 WebSocket API."""
    server_module = _server_module()
    if not server_module.is_bind_host(host):
        raise typer.BadParameter(f"{host!r} is not a host name or IP address",
                                 param_hint="'--host'")
    settings: dict[str, object] = {}
    if strategies:
        settings["strategies"] = tuple(parse_strategy_ids([strategies]))
    if api_key:
        settings["api_keys"] = tuple(api_key)
    feed_source = feed if feed in ("synthetic", "none") else Path(feed)
    if isinstance(feed_source, Path) and not feed_source.is_file():
        raise typer.BadParameter(f"no such file: {feed}", param_hint="'--feed'")
    config = server_module.ServerConfig(
        host=host, port=port, heartbeat_interval=heartbeat_interval, feed=feed_source,
        rate=rate, seed=seed, closed_records=0, **settings,  # no one reads them here
    )
    # Keys given on the command line may be real ones: only the default test key is shown.
    raise typer.Exit(server_module.run_server(config, show_api_keys=not api_key))


@app.command()
def completions(
    shell: Annotated[Shell, typer.Argument(help="bash, zsh or fish.", case_sensitive=False)],
) -> None:
    """Print the shell completion script (the files in completions/ are its output).

    Example: c2ws completions zsh > ~/.zfunc/_c2ws
    """
    # The script asks c2ws itself for candidates, so it never goes stale as options change.
    typer.echo(get_completion_script(prog_name="c2ws", complete_var=COMPLETE_VAR,
                                     shell=shell.value))


def _server_module() -> ModuleType:
    """The reference server needs the optional ``websockets`` dependency."""
    try:
        import c2ws.server.app as server_app
    except ImportError:
        MessageConsole(stderr=True, highlight=False, markup=False).print(
            "c2ws: the reference server needs the 'server' extra: pip install 'c2ws[server]'",
            soft_wrap=True,
        )
        raise typer.Exit(ExitCode.USAGE) from None
    return server_app


def stream(
    config: EngineConfig, output: OutputMode, *, count: int | None, timeout: float | None,
    include_control: bool, fail_on_gap: bool = False,
) -> int:
    """Run a subscription with the chosen renderer; returns the exit code."""
    if sys.stdout is None:  # started with stdout closed (``>&-``): nobody to stream to
        print("c2ws: stdout is closed; nothing to stream to", file=sys.stderr)
        return int(ExitCode.OK)
    stdout_is_tty = sys.stdout.isatty()
    table = output is OutputMode.table or (output is OutputMode.auto and stdout_is_tty)
    err_console = MessageConsole(stderr=True, highlight=False, markup=False, emoji=False)
    diagnostics = Diagnostics(
        err_console,
        verbose=config.traffic,
        status_line=not table and err_console.is_terminal and not config.traffic,
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
    if table:
        from c2ws.render.table import TableRenderer  # rich tables only when asked for

        table_renderer = TableRenderer(DataConsole(highlight=False, markup=False, emoji=False))
        table_renderer.expect_subscriptions(config.keys)
        renderer = table_renderer
    else:
        renderer = NdjsonRenderer(sys.stdout.buffer, include_control=include_control)
    try:
        try:
            return int(SubscribeRun(options, renderer, diagnostics).run())
        finally:
            diagnostics.close()
            renderer.close()
    except (StdoutClosed, BrokenPipeError):
        _silence_stdout()
        return int(ExitCode.OK)


def _exactly_once_output(options: SubscribeOptions, diagnostics: Diagnostics) -> SubscribeOptions:
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


def _silence_stdout() -> None:
    """After the reader left, make the interpreter's final flush a no-op, not a traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _on_sigterm(signum: int, frame: FrameType | None) -> NoReturn:
    raise Terminated()


def main() -> None:
    """Console-script entry point."""
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, _on_sigterm)
    if not (sys.stderr and sys.stderr.isatty()):
        # Scripts read usage errors: one plain "Error: ..." line, not a boxed panel.
        app.rich_markup_mode = None
    try:
        app(prog_name="c2ws")
    except Terminated:
        sys.exit(ExitCode.TERMINATED)
    except KeyboardInterrupt:
        sys.exit(ExitCode.INTERRUPTED)
    except (StdoutClosed, BrokenPipeError):
        _silence_stdout()
        sys.exit(ExitCode.OK)
    except Exception as exc:  # a bug; say so in one line unless asked for the traceback
        if os.environ.get("C2WS_DEBUG"):
            raise
        print(redacted(f"c2ws: internal error: {type(exc).__name__}: {exc} "
                       "(set C2WS_DEBUG=1 for a traceback)"), file=sys.stderr)
        sys.exit(ExitCode.ERROR)
