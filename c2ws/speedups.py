"""The socket thread's per-message work on a burst of frames, in C when it can be.

The functions here run over every frame a socket read brings: :func:`ndjson_burst` cuts
the usual frames of a stream out of the bytes read as NDJSON, checking them on the way,
and :func:`run_summary` reads the headers of those lines (in C: a strict JSON scanner
that may give up, never accept what msgspec refuses; its Python twin always gives up,
for msgspec to read them); the others serve every other burst: :func:`text_burst` cuts
the plain text frames out, :func:`text_kind` says whether they are ASCII and one line
each, :func:`any_contains` whether one holds the API key's marker.  One more serves the
output thread of ``-o csv|tsv``: :func:`signal_csv` writes the CSV/TSV lines of a run's
signals straight from their bytes (in C: the same scanner reads each line's row values,
giving up on anything unusual, such as an escape in a key or in a value it reads, a
field name met twice in any spelling, a number a double cannot hold; it writes the line
when every cell is one it makes as c2ws.render.cells does, else gives the values for
c2ws.render.cells to make the row; its Python twin always gives up, for the general
path to decode every line).  One serves the NATS sink's connection: :func:`nats_acks`
cuts the run of the sink's acks out of a socket read (anything else is left to nats-py's
parser: c2ws.sinks.nats_compat).  And one serves the commit thread of ``--state``:
:func:`replace_file`, the state file's durable rewrite (temporary file, fsync, rename,
fsync of the directory), in C in one release of the GIL.  Each is written here in
Python and, when the package was built with a C compiler at hand, also in C
(``c2ws/_speedups.c``, an optional extension: without a compiler c2ws is installed
without it).  The C twin is used when it was built, unless the environment sets
``C2WS_PURE_PYTHON=1``; ``COMPILED`` says which runs.  Both do exactly the same
(run_summary: the same as msgspec's reading, when the C scanner does not give up;
signal_csv: the general path's rows joined, where it does not; replace_file: the same
files, or the same OSError): tests/test_speedups.py and tests/test_render_csv_runs.py
run them side by side on arbitrary input.

Sans-I/O: functions of bytes, but for :func:`replace_file`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Callable
from itertools import repeat
from operator import countOf, itemgetter
from typing import Final

# FIN set, no RSV bits, opcode 1 (text): the first header byte of an unfragmented text
# frame (RFC 6455 5.2).
_FIN_TEXT: Final = 0x81
_OPEN, _CLOSE = ord("{"), ord("}")
_OPEN_ONLY: Final = frozenset({_OPEN})
_CLOSE_ONLY: Final = frozenset({_CLOSE})
_FIRST: Final = itemgetter(0)
_LAST: Final = itemgetter(-1)


def py_text_burst(chunk: bytes, position: int) -> tuple[list[bytes], int]:
    """The plain text frames at ``chunk[position:]``, in order, and the position after the
    last: FIN set, no RSV bits, opcode text, unmasked, a 7- or 16-bit length (at most 64
    KiB), all of it in ``chunk``.  Stops at the first frame that is anything else (or not
    whole), which the caller reads with every check."""
    if position < 0:
        position = max(0, len(chunk) + position)  # as a slice would
    end = len(chunk)
    frames: list[bytes] = []
    append = frames.append
    while position + 2 <= end and chunk[position] == _FIN_TEXT:
        length = chunk[position + 1]
        if length < 126:
            start = position + 2
        elif length == 126 and position + 4 <= end:
            length = chunk[position + 2] << 8 | chunk[position + 3]
            start = position + 4
        else:  # masked (a server must not mask), a 64-bit length, or a split header
            break
        stop = start + length
        if stop > end:
            break
        append(chunk[start:stop])
        position = stop
    return frames, position


def py_text_kind(frames: list[bytes]) -> int:
    """0 when some frame is not bytes or not ASCII; else 2 when no frame holds a line
    break (CR or LF), 1 when one does."""
    if countOf(map(type, frames), bytes) != len(frames):
        return 0
    together = b"".join(frames)  # one pass in C each below, instead of one per frame
    if not together.isascii():
        return 0
    return 2 if together.find(b"\n") < 0 and together.find(b"\r") < 0 else 1


def py_any_contains(frames: list[bytes], needle: bytes) -> bool:
    """Whether some frame holds ``needle``."""
    return any(map(bytes.__contains__, frames, repeat(needle)))


def py_ndjson_burst(
    chunk: bytes, position: int, marker: bytes | None
) -> tuple[bytes, int, int]:
    """The plain text frames at ``chunk[position:]`` (as :func:`text_burst` cuts them) up
    to the first that is not plain, as NDJSON (each payload and a newline), how many
    there are and the position after the last.  Plain: a JSON object's braces at both
    ends (so the next frame starts a new value: see ClientSession.receive_burst), ASCII,
    no CR or LF, and not holding ``marker`` (the API key's, to be redacted; None: no
    check)."""
    if position < 0:
        position = max(0, len(chunk) + position)  # as a slice would
    end, begin = len(chunk), position
    frames: list[bytes] = []
    ends: list[int] = []
    while position + 2 <= end and chunk[position] == _FIN_TEXT:
        length = chunk[position + 1]
        if length < 126:
            start = position + 2
        elif length == 126 and position + 4 <= end:
            length = chunk[position + 2] << 8 | chunk[position + 3]
            start = position + 4
        else:
            break
        stop = start + length
        if stop > end:
            break
        frames.append(chunk[start:stop])
        ends.append(stop)
        position = stop
    if not frames:
        return b"", 0, position
    # Usually every frame is plain: checked for the whole burst at once (a marker found
    # across two frames only sends it to the frame-by-frame check below).
    together = b"".join(frames)
    if (
        min(map(len, frames)) >= 2 and set(map(_FIRST, frames)) == _OPEN_ONLY
        and set(map(_LAST, frames)) == _CLOSE_ONLY and together.isascii()
        and together.find(b"\n") < 0 and together.find(b"\r") < 0
        and (not marker or marker not in together)
    ):
        plain = len(frames)
    else:
        plain = 0
        for payload in frames:
            if not (
                len(payload) >= 2 and payload[0] == _OPEN and payload[-1] == _CLOSE
                and payload.isascii() and b"\n" not in payload and b"\r" not in payload
                and (not marker or marker not in payload)
            ):
                break
            plain += 1
        if not plain:
            return b"", 0, begin
        del frames[plain:]
    frames.append(b"")
    return b"\n".join(frames), plain, ends[plain - 1]


# What nats_acks finds: (token, payload) of each ack, the position after them, whether
# the bytes left may begin one (not whole yet).
NatsAcks = tuple[list[tuple[int, bytes]], int, bool]
# nats_acks: the control line of an ack, made once per inbox prefix (a few); the bytes
# that can begin one after the prefix, not whole yet.
_ACK_CONTROL: dict[bytes, re.Pattern[bytes]] = {}
_ACK_PARTIAL: Final = re.compile(rb"\d{1,18}(?: (?:\d{1,18}(?: (?:\d{1,8}\r?)?)?)?)?")


def py_nats_acks(chunk: bytes | bytearray, position: int, prefix: bytes,
                 ) -> NatsAcks:
    """The NATS sink's acks at ``chunk[position:]`` (what a socket read of its
    connection brought): the run of messages ``MSG <prefix><token> <sid> <size>\\r\\n``
    ``<payload>\\r\\n`` (single spaces; token and sid 1-18 ASCII digits, size 1-8; no
    reply subject, no headers), each as ``(int(token), payload)``, in order; the position
    after the last; and whether the bytes left begin one that is not whole yet (True:
    wait for more; False: they begin something else, or nothing is left), which the
    caller hands to nats-py's parser."""
    if position < 0:
        position = max(0, len(chunk) + position)  # as a slice would
    control = _ACK_CONTROL.get(prefix)
    if control is None:
        control = re.compile(rb"MSG " + re.escape(prefix)
                             + rb"(\d{1,18}) \d{1,18} (\d{1,8})\r\n")
        if len(_ACK_CONTROL) < 64:
            _ACK_CONTROL[prefix] = control
    end = len(chunk)
    acks: list[tuple[int, bytes]] = []
    append = acks.append
    match = control.match
    while position < end:
        found = match(chunk, position)
        if found is None:
            rest = bytes(chunk[position:position + len(prefix) + 64])
            literal = b"MSG " + prefix
            if len(rest) <= len(literal):
                return acks, position, literal.startswith(rest)
            return acks, position, (rest.startswith(literal) and _ACK_PARTIAL.fullmatch(
                rest, len(literal)) is not None)
        start = found.end()
        stop = start + int(found[2])
        if stop + 2 > end:
            return acks, position, True
        if chunk[stop:stop + 2] != b"\r\n":
            return acks, position, False
        append((int(found[1]), bytes(chunk[start:stop])))
        position = stop + 2
    return acks, position, False


text_burst: Callable[[bytes, int], tuple[list[bytes], int]] = py_text_burst
text_kind: Callable[[list[bytes]], int] = py_text_kind
any_contains: Callable[[list[bytes], bytes], bool] = py_any_contains
ndjson_burst: Callable[[bytes, int, bytes | None], tuple[bytes, int, int]] = py_ndjson_burst
nats_acks: Callable[[bytes | bytearray, int, bytes], NatsAcks] = py_nats_acks


# What run_summary finds: the stream's msg_type and strategy id, the first seq_id and the
# last line's timestamp.
RunSummary = tuple[str, int, int, "str | None"]


def py_run_summary(ndjson: bytes, count: int) -> RunSummary | bool | None:
    """Gives up (None): without the compiled core, the caller reads the lines with msgspec
    (c2ws.stream_head.read_burst_heads and run_of_heads)."""
    return None


run_summary: Callable[[bytes, int], RunSummary | bool | None] = py_run_summary

# What the compiled signal_csv reads in a line it cannot write: its seq_id and timestamp,
# the values of the 11 payload lookups of a signal row (c2ws.render.planned.signal_lookups:
# strategy id, strategy name, side, open/close, quantity, order type, limit, stop, time in
# force, status, signal id) and the symbol's candidates (planned.symbol_values), as the
# general path (protocol.decode, then those lookups) finds them.
SignalValues = tuple[object, ...]


def py_signal_csv(
    ndjson: bytes, columns: tuple[int, ...], delimiter: str, kind: str,
    times: dict[str, str], codes: dict[tuple[object, ...], tuple[str, ...]],
    symbols: dict[str, str],
) -> list[str | SignalValues | int]:
    """Gives up on every line (its index each): without the compiled core, each line
    takes the general path (c2ws.render.tabular decodes it in full).

    The compiled twin gives, in order, the parts of a run of signal lines (``ndjson``):
    a str, one or more lines written (joined by newlines, no newline at the end); a
    tuple, the values of a line it read but did not write (:data:`SignalValues`: the
    caller makes the row in Python, c2ws.render.cells); an int, the index of a line it
    did not read (an escape in a key or in a value it reads, a field name met twice in
    any spelling, a number a double cannot hold, not a signal: the caller decodes it).
    It writes a line when every cell is one it makes exactly as c2ws.render.cells does
    (ints, usual floats, a plain timestamp, and the cells the memos ``times``, ``codes``
    and ``symbols`` of c2ws.render.cells already hold) and no cell holds a quote or the
    delimiter: the cells picked by ``columns`` (their index in COMBINED_COLUMNS) joined
    by ``delimiter``, as c2ws.render.tabular joins a row."""
    lines = ndjson.count(b"\n")
    if ndjson and not ndjson.endswith(b"\n"):
        lines += 1
    return list(range(lines))


def py_replace_file(dir_fd: int, temp: str, name: str, data: bytes) -> None:
    """The ``--state`` file's durable rewrite (the one function here with I/O): ``data``
    into a new file ``temp`` (0600, created, never reached through a link) in the
    directory open as ``dir_fd``, fsynced, renamed over ``name``, then the directory
    fsynced (a file system that cannot sync one, EINVAL or ENOTSUP, is let be); ``temp``
    is removed when anything before the rename fails.  The C twin releases the GIL once
    for all of it (here each of the nine system calls takes it back, waiting for the
    threads that hold it); both raise the same ``OSError`` (type and errno)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(temp, flags, 0o600, dir_fd=dir_fd)
    try:
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=dir_fd)
        raise
    try:
        os.fsync(dir_fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise


replace_file: Callable[[int, str, str, bytes], None] = py_replace_file

signal_csv: Callable[
    [bytes, tuple[int, ...], str, str, dict[str, str],
     dict[tuple[object, ...], tuple[str, ...]], dict[str, str]],
    list[str | SignalValues | int],
] = py_signal_csv
COMPILED = False

if os.environ.get("C2WS_PURE_PYTHON", "") in ("", "0"):
    try:
        from c2ws import _speedups
    except ImportError:  # built without a C compiler: the Python twins
        pass
    else:
        text_burst = _speedups.text_burst
        text_kind = _speedups.text_kind
        any_contains = _speedups.any_contains
        ndjson_burst = _speedups.ndjson_burst
        run_summary = _speedups.run_summary
        signal_csv = _speedups.signal_csv
        nats_acks = _speedups.nats_acks
        replace_file = _speedups.replace_file
        COMPILED = True
