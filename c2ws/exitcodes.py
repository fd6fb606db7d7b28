"""Exit statuses of c2ws (stable across releases), what each means, and the one place
that maps what ended a run to its status: every error class of :mod:`c2ws.errors` has
exactly one.

The README's "Exit codes" table is :func:`markdown_table` (``python -m c2ws.exitcodes``
prints it; tests/test_exit_codes.py fails when the two differ), ``c2ws subscribe --help``
lists :data:`SUMMARIES` and the man page :data:`MEANINGS`: one truth, three places."""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from c2ws.endings import EndReason
    from c2ws.errors import C2wsError

# The error classes (c2ws.errors, c2ws.endings) load when a status is first looked up:
# ExitCode alone is what most of the command line needs (`c2ws X --help`).


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
    SINK_FAILED = 12  # the sink failed: --exec (after its retries, --exec-fail stop), NATS
    COUNT_NOT_REACHED = 124  # --timeout expired before --count messages arrived
    HANGUP = 129  # SIGHUP (a closed terminal, a dropped SSH session)
    INTERRUPTED = 130  # Ctrl-C (SIGINT)
    TERMINATED = 143  # SIGTERM


# What each status means, as the README's table says it (Markdown: `code` spans).
MEANINGS: Final[dict[ExitCode, str]] = {
    ExitCode.OK: "`--count` reached, `--timeout` reached after a subscription was confirmed, "
                 "or stdout's reader went away",
    ExitCode.ERROR: "internal error (a bug: please report it; `C2WS_DEBUG=1` shows the "
                    "traceback)",
    ExitCode.USAGE: "bad arguments or options, or settings that cannot be used (a config or "
                    "key file others can read, say)",
    ExitCode.AUTH_FAILED: "authentication failed (HTTP 401, or the server withdrew it): "
                          "missing or invalid API key",
    ExitCode.CONNECT_FAILED: "cannot connect: DNS, refused, TLS, timeout, a redirect, or "
                             "another HTTP status at the upgrade (at once for those not "
                             "retried; with `--no-reconnect` or after `--max-retries`)",
    ExitCode.SERVER_BUSY: "server busy: HTTP 429 / 503, or closed with 1008 (with "
                          "`--no-reconnect` or after `--max-retries` of any one connection)",
    ExitCode.CONNECTION_LOST: "connection lost (with `--no-reconnect` or after "
                              "`--max-retries`): the server closed or dropped the stream, "
                              "went silent, never sent `connection.connected` or a "
                              "`subscription.ack`, stalled mid-frame or stopped reading",
    ExitCode.NOTHING_TO_STREAM: "every requested subscription was rejected; `positions`, "
                                "`orders`: the REST API refused a strategy (HTTP 403)",
    ExitCode.OUTPUT_OVERFLOW: "`--no-reconnect`: stdout's reader fell more than "
                              "`--max-buffer` messages behind",
    ExitCode.OUTPUT_FAILED: "writing stdout failed (disk full, file size limit, quota, I/O "
                            "error; also the `--record` file): stderr says where each "
                            "stream's output ends",
    ExitCode.STATE_FAILED: "the `--state` file is corrupt or too large, belongs to another "
                           "endpoint or key, is used by another run, cannot be written, or "
                           "is not a regular file of yours (a symbolic link, another user's "
                           "file; its `.lock` too)",
    ExitCode.GAP: "`--fail-on-gap`: the server could not replay every missed signal, or "
                  "restarted its numbering (a sequence reset)",
    ExitCode.SINK_FAILED: "the sink failed: an `--exec` handler failed after its retries "
                          "with `--exec-fail stop`, or NATS JetStream (`--to nats://`) could "
                          "not be reached or did not acknowledge a publish; what it had "
                          "taken is acknowledged, the message that failed is not",
    ExitCode.COUNT_NOT_REACHED: "`--timeout` expired before `--count` messages arrived",
    ExitCode.HANGUP: "hung up (SIGHUP: a closed terminal, a dropped SSH session), ended as "
                     "by SIGTERM",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
    ExitCode.TERMINATED: "terminated (SIGTERM)",
}

# The same in a line of at most 70 characters, for `c2ws subscribe --help` (at 80 columns).
SUMMARIES: Final[dict[ExitCode, str]] = {
    ExitCode.OK: "--count or --timeout reached, or stdout's reader went away",
    ExitCode.ERROR: "internal error (a bug; C2WS_DEBUG=1 shows the traceback)",
    ExitCode.USAGE: "bad arguments, options or settings",
    ExitCode.AUTH_FAILED: "authentication failed (HTTP 401): missing or invalid API key",
    ExitCode.CONNECT_FAILED: "cannot connect (DNS, refused, TLS, timeout, HTTP status at "
                             "upgrade)",
    ExitCode.SERVER_BUSY: "server busy (HTTP 429/503, or closed with 1008)",
    ExitCode.CONNECTION_LOST: "connection lost (the server closed or dropped it, or went "
                              "silent)",
    ExitCode.NOTHING_TO_STREAM: "every requested subscription was rejected",
    ExitCode.OUTPUT_OVERFLOW: "--no-reconnect: stdout's reader fell --max-buffer messages "
                              "behind",
    ExitCode.OUTPUT_FAILED: "writing stdout failed (disk full, I/O error)",
    ExitCode.STATE_FAILED: "the --state file is corrupt, foreign, locked or cannot be written",
    ExitCode.GAP: "--fail-on-gap: a gap the server could not replay, or a sequence reset",
    ExitCode.SINK_FAILED: "the sink failed (--exec handler, NATS JetStream)",
    ExitCode.COUNT_NOT_REACHED: "--timeout expired before --count messages arrived",
    ExitCode.HANGUP: "hung up (SIGHUP: a closed terminal, a dropped SSH session)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
    ExitCode.TERMINATED: "terminated (SIGTERM)",
}

# A timeout before any subscription was confirmed delivered nothing: it ends with what
# kept the subscriptions from being confirmed (see Stream._timed_out), not with 0 or 124.
TIMEOUT_BEFORE_CONFIRMED: Final = (
    "A `--timeout` that expires before any subscription was confirmed is no success: the "
    "run ends with the code of what kept the subscriptions from being confirmed, the last "
    "connection's failure (3, 4 or 5: `--url ws://127.0.0.1:9/ws --timeout 6` exits 4, "
    "cannot connect), or 6 when the server never confirmed one or no attempt had ended yet."
)


def markdown_table() -> str:
    """The README's "Exit codes" table."""
    rows = [f"| {int(code)} | {MEANINGS[code]} |" for code in ExitCode]
    return "\n".join(["| code | meaning |", "|---|---|", *rows])


# Every concrete error class and its status (EXIT_CODES, built on first use).  BacklogFull
# shares 8 with BacklogOverflow: both say the consumer fell --max-buffer messages behind
# (the CLI acknowledges what it writes, so it only ever meets the second).
if TYPE_CHECKING:
    EXIT_CODES: dict[type[C2wsError], ExitCode]


def _exit_codes() -> dict[type[C2wsError], ExitCode]:
    from c2ws.errors import (
        AuthenticationFailed,
        BacklogFull,
        BacklogOverflow,
        CannotConnect,
        ConfigError,
        ConnectionLost,
        GapDetected,
        InternalError,
        ServerBusy,
        SinkFailed,
        StateFileError,
        SubscriptionsRejected,
    )

    codes: dict[type[C2wsError], ExitCode] = {
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
        SinkFailed: ExitCode.SINK_FAILED,
    }
    globals()["EXIT_CODES"] = codes
    return codes


def __getattr__(name: str) -> Any:
    if name == "EXIT_CODES":
        return _exit_codes()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def exit_code_for(error: C2wsError) -> ExitCode:
    """The one mapping from what ended a run to its exit status: that of the nearest
    class of ``error`` in :data:`EXIT_CODES` (a subclass, such as the state file's
    ``StateLocked``, has its base's)."""
    from c2ws.errors import ConnectionFailed, connection_error

    if type(error) is ConnectionFailed:  # built directly, not by connection_error()
        replacement = connection_error(error.end)
        return exit_code_for(replacement)
    codes = globals().get("EXIT_CODES") or _exit_codes()
    for cls in type(error).__mro__:
        code = codes.get(cls)
        if code is not None:
            return code
    return ExitCode.ERROR


def exit_code_for_end(reason: EndReason) -> ExitCode:
    """The status of a run a connection ending with ``reason`` ended (every ending not
    named in :func:`c2ws.errors.connection_error` is 'lost')."""
    from c2ws.endings import ConnectionEnd
    from c2ws.errors import connection_error

    return exit_code_for(connection_error(ConnectionEnd(reason)))


if __name__ == "__main__":  # the README's table, to paste after changing MEANINGS
    print(markdown_table())
