"""The Typer application object and its root options; commands register on it."""


import re
from collections.abc import Callable
from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption
from typer.models import CommandFunctionType

from c2ws import __version__
from c2ws.cli.typer_compat import HelpFlag, MetavarArgument, NoSuchOption, PlainOption
from c2ws.exitcodes import ExitCode


class Terminated(BaseException):
    """Raised in the main thread by the SIGTERM handler: the run closes cleanly, says what
    was not written, and exits :attr:`exit_code`."""

    exit_code = ExitCode.TERMINATED
    why = "terminated"


class HungUp(Terminated):
    """Raised in the main thread by the SIGHUP handler (a closed terminal, a dropped SSH
    session): the run ends as on SIGTERM, with its own status."""

    exit_code = ExitCode.HANGUP
    why = "hung up (SIGHUP)"


class StdoutClosed(Exception):
    """stdout's reader went away; the caller silences stdout and exits OK."""


# "-1", "-12345678", "-1,2": a negative number where an argument was meant.
_NEGATIVE_NUMBER = re.compile(r"-\d[\d,]*")


class Command(TyperCommand):
    """Every c2ws command: plain metavars, values left as typed while the shell completes
    (see :class:`PlainOption`), and a negative number among the arguments is called a bad
    strategy id rather than an unknown option."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if type(param) is TyperArgument:
                param.__class__ = MetavarArgument
            elif type(param) is TyperOption:
                param.__class__ = PlainOption

    def get_help_option(self, ctx: Any) -> Any:
        return _help_flag(super().get_help_option(ctx))

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
    """The ``c2ws`` group and ``c2ws config``: a help flag that loads nothing to be parsed,
    options left as typed while the shell completes, and each command's summary whole."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if type(param) is TyperOption:
                param.__class__ = PlainOption

    def get_help_option(self, ctx: Any) -> Any:
        return _help_flag(super().get_help_option(ctx))

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        # Typer cuts each summary to what fits beside the name on one line ("Subscribe to
        # strategies and stream their signals and..."); a summary is a sentence, and a
        # sentence cut short says less than one that wraps.
        rows = [(name, command.get_short_help_str(limit=_WHOLE))
                for name in self.list_commands(ctx)
                if (command := self.get_command(ctx, name)) is not None and not command.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _help_flag(option: Any) -> Any:
    """The ``--help`` option Typer made, as a :class:`HelpFlag`."""
    if option is not None and type(option) is TyperOption:
        option.__class__ = HelpFlag
    return option


# A summary's length limit no summary reaches: the first sentence, whole.
_WHOLE = 10_000


class App(typer.Typer):
    """A Typer app whose commands are :class:`Command`s unless they say otherwise, so that
    no command shows Python types in its help or slows down completion."""

    def command(
        self, name: str | None = None, *, cls: type[TyperCommand] | None = None,
        **kwargs: Any,
    ) -> Callable[[CommandFunctionType], CommandFunctionType]:
        return super().command(name, cls=cls or Command, **kwargs)


app = App(
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
