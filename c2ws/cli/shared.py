"""What several commands (and the entry point) share that registers no command: the
optional server module, a closed stdout, the completion variable."""

from __future__ import annotations

import os
import sys
from types import ModuleType

import typer

from c2ws.exitcodes import ExitCode

# The environment variable through which the completion scripts ask c2ws for candidates.
COMPLETE_VAR = "_C2WS_COMPLETE"


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


def silence_stdout() -> None:
    """After the reader left, make the interpreter's final flush a no-op, not a traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
