"""``c2ws.replay()``: a recording (``c2ws subscribe --record``) or NDJSON output of c2ws,
back as what the live run delivered, the way :func:`c2ws.stream` delivers it::

    with c2ws.replay("session.rec") as r:
        for msg in r:                  # Signal | Position | Gap | SequenceReset
            print(msg.seq_id, msg.line)

The frames go through the same client session, dedupe and gap detection as live
(:class:`~c2ws.replayer.Replayer`), so the messages are those the live run delivered,
each ``.line`` byte for byte what it wrote; the recorded connection life-cycle
(``Connected``, ``SubscriptionRejected``, ``ConnectionEnded``...) goes to ``on_event``,
in the recorded order relative to the messages.  ``batches()`` hands the engine's events
to renderers, as :meth:`c2ws.Stream.batches` does: ``c2ws replay`` is a shell over this.

The file is read as it is iterated (a pipe or a FIFO as its writer writes it); nothing is
acknowledged (a replay keeps no cursors).  Lines that are neither a recording's nor c2ws
output are skipped and counted (:attr:`Replay.skipped`), never fatal.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Final

from c2ws import events as ev
from c2ws.errors import ConfigError
from c2ws.messages import Message, Position, Signal
from c2ws.streaming import Batch, StreamEnd, typed

if TYPE_CHECKING:
    from c2ws.recording import Entry
    from c2ws.replayer import Replayer

__all__ = ["Pacer", "Replay", "replay"]

_STREAM_MESSAGE: Final = ev.StreamMessage
_GAP: Final = ev.GapReported
_MESSAGE_TYPES: Final = (ev.StreamMessage, ev.GapReported, ev.SequenceReset)
_EMPTY: Final = Batch([])


class Pacer:
    """Waits so that entries come out ``speed`` times as fast as they were recorded (None:
    no waiting).  The clock and the sleep are passed in."""

    def __init__(
        self, speed: float | None, clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.speed = speed
        self._clock = clock
        self._sleep = sleep
        self._origin: tuple[float, float] | None = None  # (recorded time, our clock)

    def wait_for(self, at: float) -> None:
        """Return when the entry recorded at ``at`` (epoch seconds) is due."""
        if self.speed is None:
            return
        if self._origin is None:
            self._origin = (at, self._clock())
            return
        recorded, started = self._origin
        delay = started + (at - recorded) / self.speed - self._clock()
        if delay > 0:
            self._sleep(delay)


def replay(
    source: str | os.PathLike[str] | IO[bytes],
    *,
    api_key: str | None = None,
    profile: str | None = None,
    count: int | None = None,
    select: Callable[[Signal | Position], bool] | None = None,
    on_event: Callable[[ev.Event], object] | None = None,
    speed: float | None = None,
) -> Replay:
    """What the recording (or NDJSON output of c2ws) ``source`` holds, delivered as the live
    run delivered it (see docs/library.md).

    ``source``: a path (a regular file, or a FIFO or ``<(...)`` pipe, read as its writer
    writes it), opened at once and closed when the replay ends; or a binary file object,
    left open.  ``api_key``: a key to redact from every frame first, as a live run would
    (recordings made before c2ws redacted frames may hold the key a server echoed); None:
    the key the settings name, as :func:`c2ws.stream` finds it, if one is set; ``""``: none.
    ``count``: end after that many Signal/Position messages (those ``select`` keeps);
    ``select``: keep only the messages it returns True for (gaps and resets are always
    kept); ``on_event``: called with every other event (the recorded connections' life
    cycle, rejections, server errors...); ``speed``: deliver at ``speed`` times the
    recorded pace (None: as fast as it is read).

    Raises :class:`~c2ws.errors.ConfigError` for settings it cannot work with (a path that
    is a directory or a device, ``count < 1``, a ``speed`` that is no positive number, a
    key file that cannot be read), and ``OSError`` when the path cannot be opened
    (``FileNotFoundError``...).  Reading errors come through the iteration."""
    from c2ws.redaction import KeyRedactor
    from c2ws.replayer import Replayer

    if count is not None and (isinstance(count, bool) or count < 1):
        raise ConfigError(f"count must be at least 1, not {count!r}", param="--count")
    if speed is not None and (isinstance(speed, bool) or not 0 < speed < math.inf):
        raise ConfigError(f"speed must be a positive number, not {speed!r}", param="--speed")
    if api_key is None:
        api_key = _settings_key(profile)
    redactor = None
    if api_key:
        from c2ws.config import check_api_key

        redactor = KeyRedactor(check_api_key(api_key))
    if isinstance(source, (str, os.PathLike)):
        file, owned = _open(Path(source)), True
    else:
        file, owned = source, False
    return Replay(file, Replayer(redactor), owned=owned, count=count, select=select,
                  on_event=on_event, pacer=Pacer(speed))


def _settings_key(profile: str | None) -> str:
    """The API key the settings name ("" when none is set), read and checked."""
    from c2ws.config import Flags, api_key_of, resolve

    return api_key_of(resolve(Flags(profile=profile), os.environ))


def _open(path: Path) -> IO[bytes]:
    from c2ws.localfiles import UnusableFile, open_for_reading

    try:
        fd = open_for_reading(path, pipes=True)
    except UnusableFile as exc:
        raise ConfigError(str(exc), param="FILE") from None
    return os.fdopen(fd, "rb")


class Replay:
    """A recording being replayed: a context manager (leaving the block closes the file
    it opened) and an iterator of typed messages (``Signal | Position | Gap |
    SequenceReset``), as :class:`c2ws.Stream` is.

    **Order.**  ``on_event`` gets every other event: those recorded before a message
    before that message is yielded, those after it once the caller asks for what follows.
    With :meth:`batches` a batch ends before any other event (an entry of the recording
    is one frame: a batch is what one frame brought).

    **Ends.**  The iteration ends with the source (:attr:`end_reason` ``StreamEnd.END``),
    or after ``count`` messages (``StreamEnd.COUNT``); either way, announced gaps whose
    far end never arrived are yielded as :class:`~c2ws.messages.Gap` messages, last.
    :attr:`recorded_at` is the recorded time of the entry the latest batch or event came
    from, :attr:`skipped` and :attr:`skip_reasons` say what was not a recording, and
    :attr:`usable` counts the entries that were (0: the source holds no recording and no
    c2ws output).

    Not thread-safe: one thread iterates."""

    def __init__(
        self, file: IO[bytes], replayer: Replayer, *, owned: bool = False,
        count: int | None = None, select: Callable[[Signal | Position], bool] | None = None,
        on_event: Callable[[ev.Event], object] | None = None, pacer: Pacer | None = None,
    ) -> None:
        self._file = file
        self._owned = owned
        self._replayer = replayer
        self._entries: Iterator[Entry] | None = None
        self.count = count
        self.select = select
        self.on_event = on_event
        self.pacer = pacer or Pacer(None)
        self.delivered = 0
        self.usable = 0
        self.end_reason: StreamEnd | None = None
        self.recorded_at: float | None = None
        # The events of the entry being handed out, and how far.
        self._pending: list[ev.Event] = []
        self._pending_at = 0
        self._finished = False  # the replayer's end (pending opens, open gaps) was taken
        self._current: Batch | None = None
        self._current_at = 0

    # --- life cycle ---------------------------------------------------------------------

    def __enter__(self) -> Replay:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop: close the file if the replay opened it.  The iteration ends."""
        if self.end_reason is None:
            self.end_reason = StreamEnd.CLOSED
        self._pending, self._pending_at = [], 0
        self._current = None
        self._close_file()

    def _close_file(self) -> None:
        if self._owned:
            self._owned = False
            self._file.close()

    @property
    def skipped(self) -> int:
        """Lines that were neither a recording's nor c2ws output (and recorded connections
        past the bound), skipped."""
        return self._replayer.skipped

    @property
    def skip_reasons(self) -> list[str]:
        """Why the first few skipped lines were skipped."""
        return self._replayer.skip_reasons

    # --- delivering ---------------------------------------------------------------------

    def __iter__(self) -> Iterator[Message]:
        return self

    def __next__(self) -> Message:
        while True:
            current = self._current
            if current is not None and self._current_at < len(current):
                index = self._current_at
                self._current_at = index + 1
                return current[index]
            batch = self.next_batch()
            if batch is None:
                self._current = None
                raise StopIteration
            self._current, self._current_at = batch, 0

    def batches(self, *, include_empty: bool = False) -> Iterator[Batch]:
        """The messages batch by batch (:class:`c2ws.Batch`: ``.events`` for renderers,
        ``.lines()``).  ``include_empty``: also an empty batch after events that went to
        ``on_event`` with no message after them in the same entry (a point to flush at)."""
        while (batch := self.next_batch()) is not None:
            if batch or include_empty:
                yield batch

    def next_batch(self) -> Batch | None:
        """One batch (empty when only other events came); None once the replay has
        ended."""
        while True:
            if self._pending_at >= len(self._pending) and not self._refill():
                return None
            batch = self._cut()
            if batch is not None:
                return batch

    def _refill(self) -> bool:
        """The events of the next entry (or the replay's end) into the pending list;
        False once there is nothing more."""
        self._pending, self._pending_at = [], 0
        if self.end_reason is not None or self._finished:
            if self.end_reason is None:
                self.end_reason = StreamEnd.END
            self._close_file()
            return False
        if self._entries is None:
            from c2ws.recording import read_entries

            self._entries = read_entries(self._file)
        entry = next(self._entries, None)
        if entry is None:
            self._finished = True
            self._pending = self._replayer.finish()
            return True
        from c2ws.recording import Unusable

        if not isinstance(entry, Unusable):
            self.usable += 1
        self._pending = self._replayer.feed(entry)
        at = getattr(entry, "at", None)
        if at is not None:
            self.pacer.wait_for(at)
            self.recorded_at = at
        return True

    def _cut(self) -> Batch | None:
        """The next batch out of the pending events: the other events before its first
        message go to ``on_event``; it ends before the next other event, or where
        ``count`` ends the replay.  None when the pending events held nothing at all."""
        events, start, end = self._pending, self._pending_at, len(self._pending)
        on_event, select, count = self.on_event, self.select, self.count
        index = start
        while index < end and type(events[index]) not in _MESSAGE_TYPES:
            event = events[index]
            index += 1
            self._pending_at = index  # handled, whatever on_event does
            if on_event is not None:
                on_event(event)
        passed_on = index > start
        shown: list[ev.Event] = []
        while index < end:
            event = events[index]
            kind = type(event)
            if kind not in _MESSAGE_TYPES:
                break
            index += 1
            if kind is _STREAM_MESSAGE:
                if select is not None and not select(typed(event)):  # type: ignore[arg-type]
                    continue
                shown.append(event)
                self.delivered += 1
                if count is not None and self.delivered >= count:
                    self._count_reached()  # the rest of the entry is never delivered
                    return Batch(shown)
            else:  # gaps and resets are always delivered: a hole must never go unseen
                shown.append(event)
        self._pending_at = index
        if shown:
            return Batch(shown)
        return _EMPTY if passed_on else None

    def _count_reached(self) -> None:
        """``count`` is reached: what is left is the announced gaps whose far end never
        came (as a live run reports them when it stops), last."""
        self.end_reason = StreamEnd.COUNT
        self._finished = True
        self._pending = [event for event in self._replayer.finish() if type(event) is _GAP]
        self._pending_at = 0
