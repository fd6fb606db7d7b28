"""``c2ws serve``: the reference server in the foreground."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Annotated

import typer

from c2ws import spec
from c2ws.cli.app import app
from c2ws.cli.options import parse_strategy_ids
from c2ws.exitcodes import ExitCode


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
    clock_offset: Annotated[
        float, typer.Option("--clock-offset", metavar="S",
                            help="Run the server's clock S seconds ahead (negative: behind), "
                                 "to try 'c2ws check'.")
    ] = 0.0,
) -> None:
    """Run the reference server: a local stand-in for the C2 WebSocket API."""
    server = server_module()
    if not server.is_bind_host(host):
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
    config = server.ServerConfig(
        host=host, port=port, heartbeat_interval=heartbeat_interval, feed=feed_source,
        rate=rate, seed=seed, closed_records=0, clock_offset=clock_offset,
        **settings,  # closed_records=0: no one reads them here
    )
    # Keys given on the command line may be real ones: only the default test key is shown.
    raise typer.Exit(server.run_server(config, show_api_keys=not api_key))


def server_module() -> ModuleType:
    """The reference server needs the optional ``websockets`` dependency."""
    try:
        import c2ws.server.app as server_app
    except ImportError:
        from c2ws.render.consoles import MessageConsole

        MessageConsole(stderr=True, highlight=False, markup=False).print(
            "c2ws: the reference server needs the 'server' extra: pip install 'c2ws[server]'",
            soft_wrap=True,
        )
        raise typer.Exit(ExitCode.USAGE) from None
    return server_app
