"""The Typer application object and its root options; commands register on it."""


import re
from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from c2ws import __version__
from c2ws.cli.typer_compat import HelpFlag, MetavarArgument, NoSuchOption


class Terminated(BaseException):
    """Raised in the main thread by the SIGTERM handler."""


class StdoutClosed(Exception):
    """stdout's reader went away; the caller silences stdout and exits OK."""


# "-1", "-12345678", "-1,2": a negative number where an argument was meant.
_NEGATIVE_NUMBER = re.compile(r"-\d[\d,]*")


class Command(TyperCommand):
    """Every c2ws command: plain metavars, and a negative number among the arguments is
    called a bad strategy id rather than an unknown option."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if type(param) is TyperArgument:
                param.__class__ = MetavarArgument

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        given = list(args)  # the parser consumes the list it is handed
        try:
            return super().parse_args(ctx, args)
        except NoSuchOption:
            negative = next((arg for arg in given if _NEGATIVE_NUMBER.fullmatch(arg)), None)
            takes_ids = any(getattr(p, "metavar", None) == "STRATEGY_ID" for p in self.params)
            if negative is None or not takes_ids:
                raise
            raise typer.BadParameter(
                f"{negative!r} is not a strategy id: ids are positive integers "
                "(an argument that starts with '-' is read as an option)",
                ctx=ctx, param_hint="'STRATEGY_ID'",
            ) from None


class Group(TyperGroup):
    """The ``c2ws`` group, with a help flag that loads nothing to be parsed."""

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None and type(option) is TyperOption:
            option.__class__ = HelpFlag
        return option


app = typer.Typer(
    cls=Group,
    name="c2ws",
    help="Stream Collective2 trading signals and positions from the C2 WebSocket API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain help and errors: they read the same on a terminal, in a pipe and in the docs.
    rich_markup_mode=None,
    # `c2ws completions SHELL` prints the scripts; Typer's own options would duplicate it.
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"c2ws {__version__}")
        raise typer.Exit()


@app.callback(epilog="Run 'c2ws COMMAND --help' for a command's options and examples; "
                     "'c2ws demo' tries it all without a key or network.")
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True,
                     help="Show the version and exit."),
    ] = False,
) -> None:
    """Stream Collective2 trading signals and positions from the C2 WebSocket API."""
