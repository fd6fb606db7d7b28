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
from c2ws.cli.app import StdoutClosed, app
from c2ws.cli.options import (
    CountOpt,
    IncludeControlOpt,
    MaxBufferOpt,
    OutputMode,
    OutputOpt,
    TimeoutOpt,
    VerboseOpt,
    complete_channel,
    parse_channels,
    parse_strategy_ids,
)
from c2ws.cli.serve import server_module
from c2ws.events import SubscriptionKey
from c2ws.exitcodes import ExitCode

if TYPE_CHECKING:
    from c2ws.cli.run import SubscribeOptions
    from c2ws.engine import EngineConfig
    from c2ws.render.diagnostics import Diagnostics

# The key the demo's in-process reference server accepts; no real key is involved.
DEMO_API_KEY = "demo"


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
                      include_control=include_control)
    raise typer.Exit(code)


def stream(
    config: EngineConfig, output: OutputMode, *, count: int | None, timeout: float | None,
    include_control: bool, fail_on_gap: bool = False,
) -> int:
    """Run a subscription with the chosen renderer; returns the exit code."""
    from c2ws.cli.run import SubscribeOptions, SubscribeRun
    from c2ws.errors import StateError
    from c2ws.render import Renderer
    from c2ws.render.consoles import DataConsole, MessageConsole
    from c2ws.render.diagnostics import Diagnostics
    from c2ws.render.ndjson import NdjsonRenderer
    from c2ws.render.safe import terminal_safe

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
        silence_stdout()
        return int(ExitCode.OK)


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
