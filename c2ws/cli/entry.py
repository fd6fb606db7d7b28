"""Running the Typer app: signals, and what escapes the commands (a closed stdout,
Ctrl-C, a bug) mapped to exit codes."""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType
from typing import NoReturn

# Importing the command modules registers their commands on the app.
from c2ws.cli import check, completions, config_cmd, replay, serve, subscribe  # noqa: F401
from c2ws.cli.app import StdoutClosed, Terminated, app
from c2ws.cli.subscribe import silence_stdout
from c2ws.exitcodes import ExitCode
from c2ws.render.safe import redacted


def _on_sigterm(signum: int, frame: FrameType | None) -> NoReturn:
    raise Terminated()


def run() -> None:
    """Run the app with ``sys.argv``; exits with the run's status."""
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        app(prog_name="c2ws")
    except Terminated:
        sys.exit(ExitCode.TERMINATED)
    except KeyboardInterrupt:
        sys.exit(ExitCode.INTERRUPTED)
    except (StdoutClosed, BrokenPipeError):
        silence_stdout()
        sys.exit(ExitCode.OK)
    except Exception as exc:  # a bug; say so in one line unless asked for the traceback
        if os.environ.get("C2WS_DEBUG"):
            raise
        print(redacted(f"c2ws: internal error: {type(exc).__name__}: {exc} "
                       "(set C2WS_DEBUG=1 for a traceback)"), file=sys.stderr)
        sys.exit(ExitCode.ERROR)
