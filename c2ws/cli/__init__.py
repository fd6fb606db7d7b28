"""The command line: a Typer app whose commands parse, build the engine and render.

``main`` is the console-script entry point.  It is kept apart from the app so that
``c2ws --version`` loads nothing else.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Console-script entry point."""
    if sys.argv[1:] == ["--version"]:
        from c2ws import __version__

        print(f"c2ws {__version__}")
        return
    from c2ws.cli.entry import run

    run()
