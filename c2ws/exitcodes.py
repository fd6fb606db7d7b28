"""Exit statuses of c2ws: documented in the README, stable across releases."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # --count reached, --timeout reached, or stdout closed by the reader
    ERROR = 1  # unexpected internal error (a bug: please report it)
    USAGE = 2  # bad arguments or options
    AUTH_FAILED = 3  # HTTP 401 at the upgrade: missing or invalid API key
    CONNECT_FAILED = 4  # DNS, refused, TLS, timeout or another HTTP status at the upgrade
    SERVER_BUSY = 5  # HTTP 429 / 503, or closed with 1008 (per-key connection limit)
    CONNECTION_LOST = 6  # the server closed or dropped the stream, or it went silent
    NOTHING_TO_STREAM = 7  # every requested subscription was rejected
    OUTPUT_OVERFLOW = 8  # the reader of stdout fell behind by more than --max-buffer messages
    OUTPUT_FAILED = 9  # writing stdout failed (disk full, I/O error)
    COUNT_NOT_REACHED = 124  # --timeout expired before --count messages arrived
    INTERRUPTED = 130  # Ctrl-C (SIGINT)
    TERMINATED = 143  # SIGTERM
