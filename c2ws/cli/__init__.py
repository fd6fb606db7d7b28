"""The command line: a Typer app whose commands parse, build the engine and render.

``main`` is the console-script entry point.  It is kept apart from the app so that
``c2ws --version`` loads nothing else, and ``c2ws COMMAND --help`` only the help kept
for it (c2ws/cli/help_cache.py).
"""

from __future__ import annotations

import sys


def main() -> None:
    """Console-script entry point."""
    argv = sys.argv[1:]
    if argv == ["--version"]:
        from c2ws import __version__

        print(f"c2ws {__version__}")
        return
    if argv and argv[-1] in ("--help", "-h"):
        from c2ws.cli.help_cache import print_kept_help

        if print_kept_help(argv):
            return
    from c2ws.cli.entry import run

    run()
