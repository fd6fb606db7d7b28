"""The ``--strategies-file`` format: which subscriptions a file's text asks for (sans
I/O), and :func:`read_file`, the one read of the file.

One strategy id per line; ``#`` starts a comment (a whole line, or the rest of one);
blank lines are ignored; ``ID:signal`` or ``ID:positions`` (or a channel's full name)
takes one channel of that strategy, a bare ``ID`` the run's channels (``-c``, default
both).  The subscriptions a run follows are the union of those named on the command line
(always kept) and the file's, in that order; more than
``spec.MAX_SUBSCRIPTIONS_PER_KEY`` in all is refused, naming the line that passes the
limit.  Every problem is a :class:`StrategiesFileError` saying ``FILE:LINE: what is
wrong``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from c2ws import spec
from c2ws.events import SubscriptionKey
from c2ws.render.safe import terminal_safe

_COMMENT: Final = "#"
_QUOTED_CHARS: Final = 60  # of a bad line's text, in the error
_MAX_DIGITS: Final = len(str(spec.MAX_WIRE_INT))


class StrategiesFileError(ValueError):
    """A strategies file that cannot be used; the message names the file (and line)."""


def subscriptions_of(
    text: str, *, name: str, channels: Sequence[str],
    fixed: Sequence[SubscriptionKey] = (),
    limit: int = spec.MAX_SUBSCRIPTIONS_PER_KEY,
) -> list[SubscriptionKey]:
    """The subscriptions ``fixed`` and the file ``name`` holding ``text`` ask for
    together (see the module docstring); ``channels``: those of a line without one."""
    wanted = dict.fromkeys(fixed)
    named = 0  # lines naming a strategy
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(_COMMENT, 1)[0].strip()
        if not line:
            continue
        named += 1
        for key in _line_keys(line, name, number, channels):
            wanted.setdefault(key)
        if len(wanted) > limit:
            raise StrategiesFileError(
                f"{name}:{number}: more than {limit} subscriptions in all (strategies x "
                f"channels, the command line's included); one API key may hold at most "
                f"{limit}")
    if not wanted:
        raise StrategiesFileError(f"{name}: names no strategy (and none is given on the "
                                  "command line)")
    return list(wanted)


def read_file(path: Path, name: str) -> bytes:
    """The bytes of the regular file at ``path``; a directory, a FIFO (refused without
    waiting for a writer), a device or a file over ``spec.STRATEGIES_FILE_MAX_BYTES`` is a
    :class:`StrategiesFileError` naming it (``name``: the path as shown)."""
    from c2ws.localfiles import UnusableFile, open_for_reading

    try:
        fd = open_for_reading(path, max_bytes=spec.STRATEGIES_FILE_MAX_BYTES)
    except UnusableFile as exc:
        raise StrategiesFileError(f"{name} {exc.problem}") from None
    except OSError as exc:
        raise StrategiesFileError(f"cannot read {name}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "rb") as file:
            return file.read(spec.STRATEGIES_FILE_MAX_BYTES + 1)
    except OSError as exc:
        raise StrategiesFileError(f"cannot read {name}: {exc.strerror or exc}") from None


def decode(data: bytes, name: str) -> str:
    """The file's bytes as text, or the error naming it."""
    if len(data) > spec.STRATEGIES_FILE_MAX_BYTES:
        raise StrategiesFileError(
            f"{name}: larger than {spec.STRATEGIES_FILE_MAX_BYTES} bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise StrategiesFileError(f"{name}:{line}: not UTF-8 text") from None


def _line_keys(
    line: str, name: str, number: int, channels: Sequence[str]
) -> list[SubscriptionKey]:
    strategy, colon, channel = line.partition(":")
    strategy, channel = strategy.strip(), channel.strip()
    where = f"{name}:{number}"
    if not (strategy.isascii() and strategy.isdigit()) or len(strategy) > _MAX_DIGITS or not (
            0 < int(strategy) <= spec.MAX_WIRE_INT):
        raise StrategiesFileError(
            f"{where}: {terminal_safe(strategy, _QUOTED_CHARS)!r} is not a strategy id "
            "(a positive integer)")
    if not colon:
        return [SubscriptionKey(int(strategy), each) for each in channels]
    full = spec.CHANNEL_ALIASES.get(channel.lower())
    if full is None:
        raise StrategiesFileError(
            f"{where}: {terminal_safe(channel, _QUOTED_CHARS)!r} is not a channel; use "
            "signal or positions")
    return [SubscriptionKey(int(strategy), full)]
