"""``c2ws serve``: the reference server in the foreground."""


from pathlib import Path
from typing import Annotated

import typer

from c2ws import spec
from c2ws.cli.app import Command, app
from c2ws.cli.options import QuietOpt, number, parse_strategy_ids, seconds, whole_number
from c2ws.cli.shared import server_module

# The synthetic feed's strategies, without importing the server (it needs websockets).
DEFAULT_SERVE_STRATEGIES = "12345678, 23456789, 34567890"

SERVE_EPILOG = """\b
Examples:
  c2ws serve                         ws://127.0.0.1:8765/ws, key test-key
  c2ws serve --port 0 --rate 10      any free port, a busier feed
  c2ws serve --feed rec.ndjson --strategies 42   replay a recording
"""


@app.command(cls=Command, epilog=SERVE_EPILOG)
def serve(
    host: Annotated[str, typer.Option("--host", metavar="HOST", help="Address to bind.")]
    = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", metavar="PORT",
                          parser=whole_number("'--port'", minimum=0, maximum=65535),
                          help="Port to bind (0: any free port).")
    ] = 8765,
    api_key: Annotated[
        list[str] | None,
        typer.Option("--api-key", metavar="KEY",
                     help="Accepted API key; repeatable. Default: test-key.",
                     show_default=False),
    ] = None,
    heartbeat_interval: Annotated[
        float, typer.Option("--heartbeat-interval", metavar="S",
                            parser=seconds("'--heartbeat-interval'", minimum=0.05),
                            help="Seconds between heartbeats.")
    ] = spec.HEARTBEAT_INTERVAL_SECONDS,
    feed: Annotated[
        str, typer.Option("--feed", metavar="synthetic|none|FILE",
                          help="Synthetic trading, nothing, or a recorded NDJSON file.")
    ] = "synthetic",
    rate: Annotated[
        float, typer.Option("--rate", metavar="N", parser=number("'--rate'", minimum=0),
                            help="Feed messages per second.")
    ] = 2.0,
    strategies: Annotated[
        str | None,
        typer.Option("--strategies", metavar="ID,...",
                     help="Strategies the keys may see and the feed trades (others are "
                          f"FORBIDDEN). Default: {DEFAULT_SERVE_STRATEGIES}.",
                     show_default=False),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", metavar="N", parser=whole_number("'--seed'", minimum=0),
                          help="Seed of the synthetic feed.")
    ] = 0,
    clock_offset: Annotated[
        float, typer.Option("--clock-offset", metavar="S",
                            help="Run the server's clock S seconds ahead (negative: behind), "
                                 "to try 'c2ws check'.")
    ] = 0.0,
    renumber_on_connect: Annotated[
        bool, typer.Option("--renumber-on-connect",
                           help="Each connection after the first finds every stream's "
                                "numbering started again at 1 (a server that lost it), to "
                                "try a client's sequence-reset handling.")
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Run the reference server: a local stand-in for the C2 WebSocket API.

    It prints its URL on stderr, then a line per connection, refusal, subscription and
    close (-q: none), and runs until Ctrl-C; needs the 'server' extra.
    """
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
        renumber_on_connect=renumber_on_connect,
        **settings,  # closed_records=0: no one reads them here
    )
    # Keys given on the command line may be real ones: only the default test key is shown.
    raise typer.Exit(server.run_server(config, show_api_keys=not api_key, quiet=quiet))
