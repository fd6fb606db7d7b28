"""Running the Typer app: signals, and what escapes the commands (a closed stdout,
Ctrl-C, a bug) mapped to exit codes."""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import Final, NoReturn

from c2ws.cli.app import HungUp, StdoutClosed, Terminated, app
from c2ws.cli.shared import COMPLETE_VAR, silence_stdout
from c2ws.cli.typer_compat import register_completion_shells
from c2ws.exitcodes import ExitCode

# Each command and the module that registers it, in the order `c2ws --help` lists them.
COMMAND_MODULES: Final = {
    "subscribe": "subscribe",
    "demo": "subscribe",
    "positions": "rest_cmd",
    "orders": "rest_cmd",
    "check": "check",
    "replay": "replay",
    "config": "config_cmd",
    "serve": "serve",
    "completions": "completions",
}


def register_commands(argv: Sequence[str]) -> None:
    """Register the command ``argv`` names, or every command when it names none (group
    help, a typo): Typer builds every registered command's parameters before it runs
    one, which is most of the time of ``c2ws subscribe --help``.  A completion request
    names its command in the words being completed."""
    if COMPLETE_VAR in os.environ:
        # Typer registers its shells only along with its own --install-completion
        # option, which c2ws leaves out (`c2ws completions` does that job).
        register_completion_shells()
        named = _completed_command(os.environ)
    else:
        named = next((arg for arg in argv if not arg.startswith("-")), None)
    if named in COMMAND_MODULES:
        modules = [COMMAND_MODULES[named]]
    else:
        modules = list(dict.fromkeys(COMMAND_MODULES.values()))
    for module in modules:
        importlib.import_module(f"c2ws.cli.{module}")


def _completed_command(env: Mapping[str, str]) -> str | None:
    """The command of the line a shell completes (bash: COMP_WORDS; zsh and fish:
    _TYPER_COMPLETE_ARGS), once the cursor is past its name: while the name itself is
    being typed ("c2ws su"), every command is a candidate."""
    line = env.get("COMP_WORDS") or env.get("_TYPER_COMPLETE_ARGS") or ""
    words = line.split()[1:]  # after the program's name
    for index, word in enumerate(words):
        if not word.startswith("-"):
            past_it = index + 1 < len(words) or line[-1:].isspace()
            return word if past_it else None
    return None


def _on_sigterm(signum: int, frame: FrameType | None) -> NoReturn:
    raise Terminated()


def _on_sighup(signum: int, frame: FrameType | None) -> None:
    """SIGHUP: see :data:`hangup_action`."""
    hangup_action()


def _end_the_run() -> NoReturn:
    raise HungUp()


# What SIGHUP does: end the run like SIGTERM, exit 129 (a closed terminal, a dropped SSH
# session).  A command that gives SIGHUP a meaning of its own (re-reading a file) sets
# this while it runs; it is called in the main thread.
hangup_action: Callable[[], None] = _end_the_run


def run() -> None:
    """Run the app with ``sys.argv``; exits with the run's status."""
    try:
        _run_app()
    except SystemExit as leaving:
        _exit_now_past_requests_in_flight(leaving.code)
        raise
    _exit_now_past_requests_in_flight(None)


def _exit_now_past_requests_in_flight(code: object) -> None:
    """End the process at once, with the run's status, when a closed stream left a REST
    request in flight on its daemon thread (the table's positions snapshot, from a REST
    server slower than the close waits for).  The interpreter's finalization, OpenSSL's
    clean-up among it, must not run under a thread inside a request: a daemon thread
    caught in TLS set-up at exit crashed a run with SIGSEGV.  Everything the run owes is
    done by now (its output written, the WebSocket closed), and c2ws registers no exit
    hook; the standard streams are flushed here, as finalization would have."""
    streaming = sys.modules.get("c2ws.streaming")
    if streaming is None or not streaming.requests_left_in_flight():
        return
    status: int
    if code is None:
        status = ExitCode.OK
    elif isinstance(code, int):
        status = code
    else:
        return  # a message for sys.exit to print: left to the normal exit
    # Empty by now: the command flushed its output, a failure there being its own exit
    # status (9, or 0 for a reader that closed stdout); flushed again as finalization
    # would, with nothing left to report.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)


def _run_app() -> None:
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, _on_sigterm)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, _on_sighup)
    register_commands(sys.argv[1:])
    try:
        app(prog_name="c2ws")
    except Terminated as ended:  # SIGTERM, SIGHUP
        sys.exit(ended.exit_code)
    except KeyboardInterrupt:
        sys.exit(ExitCode.INTERRUPTED)
    except (StdoutClosed, BrokenPipeError):
        silence_stdout()
        sys.exit(ExitCode.OK)
    except Exception as exc:  # a bug; say so in one line unless asked for the traceback
        if os.environ.get("C2WS_DEBUG"):
            raise
        from c2ws.render.safe import redacted  # not loaded by runs that need it not

        print(redacted(f"c2ws: internal error: {type(exc).__name__}: {exc} "
                       "(set C2WS_DEBUG=1 for a traceback)"), file=sys.stderr)
        sys.exit(ExitCode.ERROR)
