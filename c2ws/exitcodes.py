"""Exit statuses of c2ws (documented in the README, stable across releases), and the one
place that maps what ended a run to its status: every error class of :mod:`c2ws.errors`
has exactly one."""

from __future__ import annotations

from enum import IntEnum
from typing import Final

from c2ws.endings import ConnectionEnd, EndReason
from c2ws.errors import (
    AuthenticationFailed,
    BacklogFull,
    BacklogOverflow,
    C2wsError,
    CannotConnect,
    ConfigError,
    ConnectionFailed,
    ConnectionLost,
    GapDetected,
    InternalError,
    ServerBusy,
    StateFileError,
    SubscriptionsRejected,
    connection_error,
)


class ExitCode(IntEnum):
    OK = 0  # --count reached, --timeout reached, or stdout closed by the reader
    ERROR = 1  # unexpected internal error (a bug: please report it)
    USAGE = 2  # bad arguments or options
    AUTH_FAILED = 3  # HTTP 401 at the upgrade: missing or invalid API key
    CONNECT_FAILED = 4  # DNS, refused, TLS, timeout or another HTTP status at the upgrade
    SERVER_BUSY = 5  # HTTP 429 / 503, or closed with 1008 (per-key connection limit)
    CONNECTION_LOST = 6  # the server closed or dropped the stream, or it went silent
    NOTHING_TO_STREAM = 7  # every requested subscription was rejected
    OUTPUT_OVERFLOW = 8  # the reader fell --max-buffer messages behind (--no-reconnect)
    OUTPUT_FAILED = 9  # writing stdout failed (disk full, I/O error)
    STATE_FAILED = 10  # the --state file is corrupt, foreign, locked or cannot be written
    GAP = 11  # --fail-on-gap: a gap the server could not replay, or a sequence reset
    COUNT_NOT_REACHED = 124  # --timeout expired before --count messages arrived
    INTERRUPTED = 130  # Ctrl-C (SIGINT)
    TERMINATED = 143  # SIGTERM


# Every concrete error class and its status.  BacklogFull shares 8 with BacklogOverflow:
# both say the consumer fell --max-buffer messages behind (the CLI acknowledges what it
# writes, so it only ever meets the second).
EXIT_CODES: Final[dict[type[C2wsError], ExitCode]] = {
    InternalError: ExitCode.ERROR,
    ConfigError: ExitCode.USAGE,
    AuthenticationFailed: ExitCode.AUTH_FAILED,
    CannotConnect: ExitCode.CONNECT_FAILED,
    ServerBusy: ExitCode.SERVER_BUSY,
    ConnectionLost: ExitCode.CONNECTION_LOST,
    SubscriptionsRejected: ExitCode.NOTHING_TO_STREAM,
    BacklogOverflow: ExitCode.OUTPUT_OVERFLOW,
    BacklogFull: ExitCode.OUTPUT_OVERFLOW,
    StateFileError: ExitCode.STATE_FAILED,
    GapDetected: ExitCode.GAP,
}


def exit_code_for(error: C2wsError) -> ExitCode:
    """The one mapping from what ended a run to its exit status: that of the nearest
    class of ``error`` in :data:`EXIT_CODES` (a subclass, such as the state file's
    ``StateLocked``, has its base's)."""
    if type(error) is ConnectionFailed:  # built directly, not by connection_error()
        replacement = connection_error(error.end)
        return exit_code_for(replacement)
    for cls in type(error).__mro__:
        code = EXIT_CODES.get(cls)
        if code is not None:
            return code
    return ExitCode.ERROR


def exit_code_for_end(reason: EndReason) -> ExitCode:
    """The status of a run a connection ending with ``reason`` ended (every ending not
    named in :func:`c2ws.errors.connection_error` is 'lost')."""
    return exit_code_for(connection_error(ConnectionEnd(reason)))
