"""``c2ws completions SHELL``: the shell completion scripts."""


from enum import Enum
from typing import Annotated

import typer

# Typer prints these scripts only for the shell it detects; this is the same function,
# for any shell.  tests/test_completions.py notices if it moves.
from typer._completion_classes import completion_init
from typer._completion_shared import get_completion_script

from c2ws.cli.app import Command, app
from c2ws.cli.options import choice
from c2ws.cli.shared import COMPLETE_VAR

# Typer registers its shells only along with its own --install-completion option, which
# c2ws leaves out (this command does that job): the scripts' requests need them.
completion_init()


class Shell(str, Enum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


@app.command(cls=Command)
def completions(
    shell: Annotated[
        Shell, typer.Argument(metavar="SHELL", help="bash, zsh or fish.",
                              parser=choice(Shell, "'SHELL'"))
    ],
) -> None:
    """Print the shell completion script (the files in completions/ are its output).

    \b
    Examples:
      c2ws completions bash > ~/.local/share/bash-completion/completions/c2ws
      c2ws completions zsh > ~/.zfunc/_c2ws
      c2ws completions fish > ~/.config/fish/completions/c2ws.fish
    """
    # The script asks c2ws itself for candidates, so it never goes stale as options change.
    typer.echo(get_completion_script(prog_name="c2ws", complete_var=COMPLETE_VAR,
                                     shell=shell.value))
