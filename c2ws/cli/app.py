"""The Typer application object and its root options; commands register on it."""

from __future__ import annotations

from typing import Annotated

import typer

from c2ws import __version__


class Terminated(BaseException):
    """Raised in the main thread by the SIGTERM handler."""


class StdoutClosed(Exception):
    """stdout's reader went away; the caller silences stdout and exits OK."""


app = typer.Typer(
    name="c2ws",
    help="Stream Collective2 trading signals and positions from the C2 WebSocket API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


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
