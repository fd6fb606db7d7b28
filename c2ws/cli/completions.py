"""``c2ws completions SHELL``: the shell completion scripts."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

# Typer prints these scripts only for the shell it detects; this is the same function,
# for any shell.  tests/test_completions.py notices if it moves.
from typer._completion_shared import get_completion_script

from c2ws.cli.app import app

COMPLETE_VAR = "_C2WS_COMPLETE"


class Shell(str, Enum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


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
