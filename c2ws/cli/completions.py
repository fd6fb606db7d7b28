"""``c2ws completions SHELL``: the shell completion scripts."""


from enum import Enum
from typing import Annotated

import typer

from c2ws.cli.app import Command, app
from c2ws.cli.options import QuietOpt, choice
from c2ws.cli.shared import COMPLETE_VAR
from c2ws.cli.typer_compat import completion_script

# The scripts' requests are answered by Typer, its shells registered by c2ws.cli.entry.


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
    # Accepted by every command (a script may pass -q to any); this one says nothing on
    # stderr anyway.
    quiet: QuietOpt = False,
) -> None:
    """Print the shell completion script (the files in completions/ are its output).

    \b
    Examples:
      c2ws completions bash > ~/.local/share/bash-completion/completions/c2ws
      c2ws completions zsh > ~/.zfunc/_c2ws
      c2ws completions fish > ~/.config/fish/completions/c2ws.fish
    """
    # The script asks c2ws itself for candidates, so it never goes stale as options change.
    typer.echo(completion_script(shell.value, prog_name="c2ws", complete_var=COMPLETE_VAR))
