"""What several commands (and the entry point) share that registers no command: the
optional server module, a closed stdout, the completion variable."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
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


# The signals the command line handles (in the main thread: Python runs handlers there).
HANDLED_SIGNALS = tuple(getattr(signal, name) for name in (
    "SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGALRM") if hasattr(signal, name))


@contextlib.contextmanager
def threads_without_signals() -> Iterator[None]:
    """Threads started within block the signals the command line handles, so the kernel
    delivers those to the main thread.  A signal taken by another thread only marks the
    handler as due, and a main thread asleep in a wait (for the next message) would not
    run it before something else woke it: SIGTERM or SIGHUP would go unheard on a quiet
    stream."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
