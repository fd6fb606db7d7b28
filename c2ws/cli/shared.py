"""What several commands (and the entry point) share that registers no command: the
optional server module, a closed stdout, the completion variable."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
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


@contextlib.contextmanager
def signals_wake(wake: Callable[[], None]) -> Iterator[None]:
    """While the block runs, a signal with a handler calls ``wake`` from a thread of its
    own (the main thread's wait for messages: ``Stream.wake``).

    Why: Python runs a handler only between two steps of the main thread.  A Ctrl-C that
    lands after the main thread's last step and before its wait for messages began (a
    moment made long by a busy machine) did not end that wait: it was heard only at the
    next message, or when a deadline came, seconds later on a quiet stream.  The signal's
    wake-up byte (``signal.set_wakeup_fd``) is written whatever the main thread is doing,
    and the thread reading it wakes the wait, after which the handler runs."""
    import socket
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    try:
        previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    except (ValueError, OSError):
        reader.close()
        writer.close()
        yield
        return

    def relay() -> None:
        with contextlib.suppress(OSError):
            while reader.recv(64):  # empty once the writer is shut down: the block ended
                wake()

    with threads_without_signals():
        relaying = threading.Thread(target=relay, name="c2ws-signals", daemon=True)
        relaying.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous)
        with contextlib.suppress(OSError):
            writer.shutdown(socket.SHUT_WR)
        relaying.join(1.0)
        writer.close()
        if not relaying.is_alive():
            reader.close()
