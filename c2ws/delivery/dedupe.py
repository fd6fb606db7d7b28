"""The exactly-once filter: per stream, the newest seq_id held, across reconnects.

One :class:`StreamFilter` serves one connection slot (shard) for the whole run, while
its connections come and go: each new :class:`~c2ws.session.ClientSession` is handed
the same filter, resumes from :meth:`StreamFilter.resume_from` and drops what was
already delivered.  Only subscribed keys ever get state (a :class:`StreamCursor`), so a
server naming other strategies cannot grow it.  "Held" means accepted for output:
written, or waiting in the in-memory backlog that is written before anything newer.

A message at or below the cursor is never delivered at once: it is *held aside* until
the stream shows whether it still follows the old numbering (then it was a duplicate)
or was renumbered (a sequence reset: it is delivered).  The rule and its constants are
in :mod:`c2ws.spec` (``REPLAY_WINDOW_SECONDS``); the session passes the clock in and
says whether the stream is in its replay phase.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, NamedTuple

from c2ws import events as ev
from c2ws import spec
from c2ws.events import SubscriptionKey
from c2ws.protocol import Envelope

_SUSPECT_JUMP: Final = spec.SUSPECT_SEQ_JUMP
_WARN_ON_JUMPS: Final = spec.SEQ_IDS_CONTIGUOUS
_HELD_ASIDE_LIMIT: Final = spec.HELD_ASIDE_LIMIT
_WINDOW: Final = spec.REPLAY_WINDOW_SECONDS


@dataclass(frozen=True, slots=True)
class _PendingGap:
    text: str
    message: Envelope


class HeldAside(NamedTuple):
    """Messages still held aside (at or below ``cursor``) when a run ends: not written."""

    key: SubscriptionKey
    cursor: int
    messages: int
    first_seq: int
    last_seq: int


class StreamCursor:
    """What the filter knows of one stream.  A session keeps a reference per
    subscription, so the per-message path needs no dictionary lookups."""

    __slots__ = ("aside", "aside_until", "gap", "held", "held_timestamp", "key", "settled",
                 "suspect", "warn_on_jumps")

    def __init__(self, key: SubscriptionKey, held: int | None) -> None:
        self.key = key
        self.held = held  # newest seq_id accepted for output
        self.held_timestamp: str | None = None
        self.suspect: int | None = None  # an implausible seq_id delivered, not yet followed
        self.gap: _PendingGap | None = None  # announced; reported when its far end arrives
        # Messages at or below ``held``, in arrival order, awaiting the verdict (see the
        # module docstring); None when there are none.
        self.aside: list[tuple[Envelope, int]] | None = None
        # When what is held aside becomes a sequence reset (monotonic seconds); None while
        # the replay phase decides (the session ends it).
        self.aside_until: float | None = None
        # Nothing pending (no gap, suspect or message held aside): the next seq_id can
        # take the short path, which checks this one flag.
        self.settled = True
        self.warn_on_jumps = _WARN_ON_JUMPS and key.channel == spec.CHANNEL_SIGNAL

    def settle(self) -> None:
        """Recompute ``settled`` after ``gap``, ``suspect`` or ``aside`` changed."""
        self.settled = self.gap is None and self.suspect is None and self.aside is None


class StreamFilter:
    """Decides, per stream message, deliver or drop, and what to say about it."""

    def __init__(
        self, keys: Iterable[SubscriptionKey], cursors: Mapping[SubscriptionKey, int]
    ) -> None:
        self._cursors: dict[SubscriptionKey, StreamCursor] = {
            key: StreamCursor(key, cursors.get(key)) for key in keys
        }

    @property
    def keys(self) -> frozenset[SubscriptionKey]:
        return frozenset(self._cursors)

    def track(self, key: SubscriptionKey) -> StreamCursor:
        """The cursor of ``key``, created when it is first subscribed."""
        cursor = self._cursors.get(key)
        if cursor is None:
            cursor = self._cursors[key] = StreamCursor(key, None)
        return cursor

    def adopt(self, key: SubscriptionKey, held: int | None) -> None:
        """Resume ``key`` from ``held`` (a stream added to the running connection); a
        stream it already follows keeps its own cursor, which is never behind."""
        if key not in self._cursors:
            self._cursors[key] = StreamCursor(key, held)

    def held(self, key: SubscriptionKey) -> int | None:
        cursor = self._cursors.get(key)
        return None if cursor is None else cursor.held

    def resume_from(self, key: SubscriptionKey) -> int | None:
        """What to send as ``resume_from`` (signals only: positions resume live)."""
        if key.channel != spec.CHANNEL_SIGNAL:
            return None
        return self.held(key)

    @staticmethod
    def admit(
        cursor: StreamCursor, message: Envelope, seq_id: int, *, replaying: bool, now: float,
        out: list[ev.Event], window: float = _WINDOW,
    ) -> bool:
        """Append the message (or why it was dropped) and any notices to ``out``;
        True when it was delivered.  ``replaying``: the stream is in its replay phase;
        ``now``: monotonic seconds (a verdict that fell due is applied first); ``window``:
        how long a message held aside outside a replay waits for its verdict."""
        held = cursor.held
        if held is None or (seq_id == held + 1 and cursor.settled):
            # the usual case: the next message, nothing pending
            cursor.held = seq_id
            cursor.held_timestamp = message.timestamp
            out.append(ev.StreamMessage(cursor.key, message, seq_id))
            return True
        if cursor.aside is not None:
            if cursor.aside_until is not None and now >= cursor.aside_until:
                StreamFilter.declare_reset(cursor, out)
                return StreamFilter.admit(cursor, message, seq_id, replaying=replaying,
                                          now=now, out=out, window=window)
            if seq_id > held:
                # The stream still follows the old numbering: what is held aside was
                # replay overlap or stray duplicates, reported as such when it arrived.
                cursor.aside = cursor.aside_until = None
                cursor.settle()
        key = cursor.key
        if seq_id <= held:
            if replaying:
                out.append(ev.DuplicateDropped(key, seq_id))
            else:
                out.append(ev.SequenceBackwards(key, held, seq_id))
            if seq_id > 0:  # seq_ids start at 1: 0 and below start no numbering
                decided_at = None if replaying else now + window
                StreamFilter._hold_aside(cursor, message, seq_id, decided_at, out)
            return False
        gap, suspect = cursor.gap, cursor.suspect
        if gap is not None or suspect is not None:
            cursor.gap = cursor.suspect = None
            cursor.settle()
        if gap is not None:
            if seq_id == held + 1:
                out.append(ev.GapFilled(key, held))
            else:
                out.append(ev.GapReported(
                    key, last_seq=held, last_timestamp=cursor.held_timestamp,
                    next_seq=seq_id, next_timestamp=message.timestamp, text=gap.text,
                    message=gap.message,
                ))
        elif suspect is not None and seq_id == suspect + 1:
            pass  # the server really renumbered: follow it from here
        elif seq_id > held + _SUSPECT_JUMP:
            out.append(ev.SequenceJump(key, held + 1, seq_id, suspect=True))
            cursor.suspect = seq_id
            cursor.settle()
            out.append(ev.StreamMessage(key, message, None))
            return True
        elif seq_id > held + 1 and cursor.warn_on_jumps:
            out.append(ev.SequenceJump(key, held + 1, seq_id))
        cursor.held = seq_id
        cursor.held_timestamp = message.timestamp
        out.append(ev.StreamMessage(key, message, seq_id))
        return True

    @staticmethod
    def _hold_aside(
        cursor: StreamCursor, message: Envelope, seq_id: int, decided_at: float | None,
        out: list[ev.Event],
    ) -> None:
        """Keep a message at or below the cursor for the verdict.  ``decided_at``: None
        in the replay phase (its end decides), else when this message's window ends."""
        aside = cursor.aside
        if aside is None:
            aside = cursor.aside = []
            cursor.aside_until = decided_at
            cursor.settle()
        elif cursor.aside_until is None:
            cursor.aside_until = decided_at
        if len(aside) >= _HELD_ASIDE_LIMIT:
            # More than any replay: no overlap is this long.
            aside.append((message, seq_id))
            StreamFilter.declare_reset(cursor, out)
            return
        aside.append((message, seq_id))

    @staticmethod
    def declare_reset(cursor: StreamCursor, out: list[ev.Event]) -> None:
        """What is held aside persisted: the stream was renumbered.  Say so, deliver the
        held messages in order (dropping those that do not increase: true duplicates)
        and follow the new numbering."""
        aside, held = cursor.aside, cursor.held
        if not aside or held is None:
            return
        key = cursor.key
        gap = cursor.gap
        cursor.aside = cursor.aside_until = cursor.gap = cursor.suspect = None
        cursor.settle()
        if gap is not None:
            # The hole announced in the old numbering never got a far end.
            out.append(ev.GapReported(
                key, last_seq=held, last_timestamp=cursor.held_timestamp, next_seq=None,
                next_timestamp=None, text=gap.text, message=gap.message,
            ))
        first_message, first = aside[0]
        last, released = first, 1
        for _, seq_id in aside:
            if seq_id > last:
                last, released = seq_id, released + 1
        out.append(ev.SequenceReset(
            key, last_seq=held, last_timestamp=cursor.held_timestamp, next_seq=first,
            next_timestamp=first_message.timestamp, released=released, cursor=first - 1,
        ))
        newest: int | None = None
        for message, seq_id in aside:
            if newest is not None and seq_id <= newest:
                out.append(ev.DuplicateDropped(key, seq_id))
                continue
            newest = seq_id
            cursor.held = seq_id
            cursor.held_timestamp = message.timestamp
            out.append(ev.StreamMessage(key, message, seq_id))

    @staticmethod
    def decide(
        cursor: StreamCursor, now: float, *, replay_over: bool, out: list[ev.Event]
    ) -> None:
        """Apply the verdict on what is held aside if it is due at ``now``.
        ``replay_over``: the replay phase that was to decide it has just ended."""
        if cursor.aside is None:
            return
        until = cursor.aside_until
        if replay_over or (until is not None and now >= until):
            StreamFilter.declare_reset(cursor, out)

    def follow_reset(self, reset: ev.SequenceReset) -> None:
        """A reset read back from output (``c2ws replay``): continue in its numbering."""
        cursor = self.track(reset.key)
        cursor.held = reset.cursor
        cursor.held_timestamp = None
        cursor.aside = cursor.aside_until = cursor.gap = cursor.suspect = None
        cursor.settle()

    def held_aside(self) -> list[HeldAside]:
        """Streams with messages still held aside (for the end of a run)."""
        return [
            HeldAside(cursor.key, cursor.held, len(cursor.aside),
                      min(seq for _, seq in cursor.aside), max(seq for _, seq in cursor.aside))
            for cursor in self._cursors.values()
            if cursor.aside and cursor.held is not None
        ]

    def announce_gap(
        self, key: SubscriptionKey, last_replayed: int | None, text: str, message: Envelope,
        out: list[ev.Event],
    ) -> None:
        """The server's ``gap``: say so at once; report the hole when its far end arrives."""
        cursor = self.track(key)
        cursor.gap = _PendingGap(text, message)
        cursor.settle()
        out.append(ev.GapAnnounced(key, last_replayed, text, message))

    def unresolved_gaps(self) -> list[ev.GapReported]:
        """Gaps whose far end never arrived (for the end of a run)."""
        return [
            ev.GapReported(
                cursor.key, last_seq=cursor.held, last_timestamp=cursor.held_timestamp,
                next_seq=None, next_timestamp=None, text=cursor.gap.text,
                message=cursor.gap.message,
            )
            for cursor in self._cursors.values()
            if cursor.gap is not None
        ]
