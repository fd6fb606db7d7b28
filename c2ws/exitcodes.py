"""Exit statuses of c2ws (documented in the README, stable across releases), and the one
place that maps what ended a run to its status."""

from __future__ import annotations

from enum import IntEnum
from typing import Final

from c2ws.endings import EndReason
from c2ws.errors import ConfigError, ConnectionFailed, EngineError, NothingToStream, StateError


class ExitCode(IntEnum):
    OK = 0  # --count reached, --timeout reached, or stdout closed by the reader
    ERROR = 1  # unexpected internal error (a bug: please report it)
    USAGE = 2  # bad arguments or options
    AUTH_FAILED = 3  # HTTP 401 at the upgrade: missing or invalid API key
    CONNECT_FAILED = 4  # DNS, refused, TLS, timeout or another HTTP status at the upgrade
    SERVER_BUSY = 5  # HTTP 429 / 503, or closed with 1008 (per-key connection limit)
    CONNECTION_LOST = 6  # the server closed or dropped the stream, or it went silent
    NOTHING_TO_STREAM = 7  # every requested subscription was rejected
    OUTPUT_OVERFLOW = 8  # --no-reconnect: stdout's reader fell --max-buffer messages behind
    OUTPUT_FAILED = 9  # writing stdout failed (disk full, I/O error)
    STATE_FAILED = 10  # the --state file is corrupt, foreign, locked or cannot be written
    GAP = 11  # --fail-on-gap: a gap the server could not replay, or a sequence reset
    COUNT_NOT_REACHED = 124  # --timeout expired before --count messages arrived
    INTERRUPTED = 130  # Ctrl-C (SIGINT)
    TERMINATED = 143  # SIGTERM


_BY_END_REASON: Final[dict[EndReason, ExitCode]] = {
    EndReason.AUTH_FAILED: ExitCode.AUTH_FAILED,
    EndReason.REFUSED: ExitCode.CONNECT_FAILED,
    EndReason.UNREACHABLE: ExitCode.CONNECT_FAILED,
    EndReason.BUSY: ExitCode.SERVER_BUSY,
    EndReason.OVERFLOW: ExitCode.OUTPUT_OVERFLOW,
    EndReason.BUG: ExitCode.ERROR,
}


def exit_code_for_end(reason: EndReason) -> ExitCode:
    """Every other ending of a connection (drops, silence, deadlines) is 'lost'."""
    return _BY_END_REASON.get(reason, ExitCode.CONNECTION_LOST)


def exit_code_for(error: EngineError) -> ExitCode:
    """The one mapping from what ended a run to its exit status."""
    if isinstance(error, ConfigError):
        return ExitCode.USAGE
    if isinstance(error, ConnectionFailed):
        return exit_code_for_end(error.end.reason)
    if isinstance(error, NothingToStream):
        return ExitCode.NOTHING_TO_STREAM
    if isinstance(error, StateError):
        return ExitCode.STATE_FAILED
    return ExitCode.ERROR
