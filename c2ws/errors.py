"""The typed errors that end a run.  ``str()`` of each is one line, safe to print, and
never contains the API key; the CLI maps them to exit codes in one place
(:func:`c2ws.exitcodes.exit_code_for`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from c2ws.endings import ConnectionEnd


class EngineError(Exception):
    """Base of every error that ends a run."""


class ConfigError(EngineError):
    """Bad settings: a key that cannot travel in a header, a bad URL, too many
    subscriptions.  ``param`` names the option at fault, when there is one."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ConnectionFailed(EngineError):
    """A connection ended in a way that is not retried (or retries ran out)."""

    def __init__(self, end: ConnectionEnd) -> None:
        super().__init__(end.detail or end.reason.value)
        self.end = end


class NothingToStream(EngineError):
    """Every requested subscription was rejected."""


class InternalError(EngineError):
    """A bug in c2ws (an unexpected exception in a socket thread)."""

    def __init__(self, summary: str, traceback: str) -> None:
        super().__init__(summary)
        self.traceback = traceback


class StateError(EngineError):
    """The ``--state`` file is corrupt, belongs to another endpoint or key, is locked by
    another run, or cannot be read or written (``c2ws.delivery.state`` has a subclass
    for each); ``str()`` is one line fit to show the user."""

    kind: ClassVar[str] = "state"

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(message)
        self.path = path
