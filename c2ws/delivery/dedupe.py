"""The exactly-once filter: per stream, the newest seq_id held, across reconnects.

One :class:`StreamFilter` serves one connection slot (shard) for the whole run, while
its connections come and go: each new :class:`~c2ws.session.ClientSession` is handed
the same filter, resumes from :meth:`StreamFilter.resume_from` and drops what was
already delivered.  Only subscribed keys ever get state (a :class:`StreamCursor`), so a
server naming other strategies cannot grow it.  "Held" means accepted for output:
written, or waiting in the in-memory backlog that is written before anything newer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from c2ws import events as ev
from c2ws import spec
from c2ws.events import SubscriptionKey
from c2ws.protocol import Envelope

_SUSPECT_JUMP: Final = spec.SUSPECT_SEQ_JUMP
_WARN_ON_JUMPS: Final = spec.SEQ_IDS_CONTIGUOUS


@dataclass(frozen=True, slots=True)
class _PendingGap:
    text: str
    message: Envelope


class StreamCursor:
    """What the filter knows of one stream.  A session keeps a reference per
    subscription, so the per-message path needs no dictionary lookups."""

    __slots__ = ("gap", "held", "held_timestamp", "key", "suspect", "warn_on_jumps")

    def __init__(self, key: SubscriptionKey, held: int | None) -> None:
        self.key = key
        self.held = held  # newest seq_id accepted for output
        self.held_timestamp: str | None = None
        self.suspect: int | None = None  # an implausible seq_id delivered, not yet followed
        self.gap: _PendingGap | None = None  # announced; reported when its far end arrives
        self.warn_on_jumps = _WARN_ON_JUMPS and key.channel == spec.CHANNEL_SIGNAL


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
        cursor: StreamCursor, message: Envelope, seq_id: int, *, replaying: bool,
        out: list[ev.Event],
    ) -> bool:
        """Append the message (or why it was dropped) and any notices to ``out``;
        True when it was delivered."""
        held = cursor.held
        if held is None or (
            seq_id == held + 1 and cursor.gap is None and cursor.suspect is None
        ):  # the usual case: the next message, nothing pending
            cursor.held = seq_id
            cursor.held_timestamp = message.timestamp
            out.append(ev.StreamMessage(cursor.key, message, seq_id))
            return True
        key = cursor.key
        if seq_id <= held:
            if replaying:
                out.append(ev.DuplicateDropped(key, seq_id))
            else:
                out.append(ev.SequenceBackwards(key, held, seq_id))
            return False
        gap, suspect = cursor.gap, cursor.suspect
        cursor.gap = cursor.suspect = None
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
            out.append(ev.StreamMessage(key, message, None))
            return True
        elif seq_id > held + 1 and cursor.warn_on_jumps:
            out.append(ev.SequenceJump(key, held + 1, seq_id))
        cursor.held = seq_id
        cursor.held_timestamp = message.timestamp
        out.append(ev.StreamMessage(key, message, seq_id))
        return True

    def announce_gap(
        self, key: SubscriptionKey, last_replayed: int | None, text: str, message: Envelope,
        out: list[ev.Event],
    ) -> None:
        """The server's ``gap``: say so at once; report the hole when its far end arrives."""
        self.track(key).gap = _PendingGap(text, message)
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
