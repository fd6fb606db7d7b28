"""The exactly-once filter: per stream, the newest seq_id held, across reconnects.

One :class:`StreamFilter` serves one connection slot (shard) for the whole run, while
its connections come and go: each new :class:`~c2ws.session.ClientSession` is handed
the same filter, resumes from :meth:`StreamFilter.resume_from` and drops what was
already delivered.  Only subscribed keys ever get state, so a server naming other
strategies cannot grow it.  "Held" means accepted for output: written, or waiting in
the in-memory backlog that is written before anything newer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from c2ws import events as ev
from c2ws import spec
from c2ws.events import SubscriptionKey
from c2ws.protocol import Envelope


@dataclass(frozen=True, slots=True)
class _PendingGap:
    text: str
    message: Envelope


class StreamFilter:
    """Decides, per stream message, deliver or drop, and what to say about it."""

    def __init__(
        self, keys: Iterable[SubscriptionKey], cursors: Mapping[SubscriptionKey, int]
    ) -> None:
        self.keys = frozenset(keys)
        self._held: dict[SubscriptionKey, int] = {
            key: seq for key, seq in cursors.items() if key in self.keys
        }
        self._held_timestamp: dict[SubscriptionKey, str | None] = {}
        self._suspect: dict[SubscriptionKey, int] = {}
        self._gaps: dict[SubscriptionKey, _PendingGap] = {}

    def held(self, key: SubscriptionKey) -> int | None:
        return self._held.get(key)

    def resume_from(self, key: SubscriptionKey) -> int | None:
        """What to send as ``resume_from`` (signals only: positions resume live)."""
        if key.channel != spec.CHANNEL_SIGNAL:
            return None
        return self._held.get(key)

    def admit(
        self, key: SubscriptionKey, message: Envelope, seq_id: int, *, replaying: bool,
        out: list[ev.Event],
    ) -> bool:
        """Append the message (or why it was dropped) and any notices to ``out``;
        True when it was delivered."""
        held = self._held.get(key)
        if held is None:
            return self._deliver(key, message, seq_id, out)
        if seq_id <= held:
            if replaying:
                out.append(ev.DuplicateDropped(key, seq_id))
            else:
                out.append(ev.SequenceBackwards(key, held, seq_id))
            return False
        gap = self._gaps.pop(key, None)
        suspect = self._suspect.pop(key, None)
        if gap is not None:
            if seq_id == held + 1:
                out.append(ev.GapFilled(key, held))
            else:
                out.append(ev.GapReported(
                    key, last_seq=held, last_timestamp=self._held_timestamp.get(key),
                    next_seq=seq_id, next_timestamp=message.timestamp, text=gap.text,
                    message=gap.message,
                ))
        elif suspect is not None and seq_id == suspect + 1:
            pass  # the server really renumbered: follow it from here
        elif seq_id > held + spec.SUSPECT_SEQ_JUMP:
            out.append(ev.SequenceJump(key, held + 1, seq_id, suspect=True))
            self._suspect[key] = seq_id
            out.append(ev.StreamMessage(key, message, None))
            return True
        elif seq_id > held + 1 and spec.SEQ_IDS_CONTIGUOUS and key.channel == spec.CHANNEL_SIGNAL:
            out.append(ev.SequenceJump(key, held + 1, seq_id))
        return self._deliver(key, message, seq_id, out)

    def announce_gap(
        self, key: SubscriptionKey, last_replayed: int | None, text: str, message: Envelope,
        out: list[ev.Event],
    ) -> None:
        """The server's ``gap``: say so at once; report the hole when its far end arrives."""
        self._gaps[key] = _PendingGap(text, message)
        out.append(ev.GapAnnounced(key, last_replayed, text, message))

    def unresolved_gaps(self) -> list[ev.GapReported]:
        """Gaps whose far end never arrived (for the end of a run)."""
        return [
            ev.GapReported(
                key, last_seq=self._held.get(key),
                last_timestamp=self._held_timestamp.get(key), next_seq=None,
                next_timestamp=None, text=gap.text, message=gap.message,
            )
            for key, gap in self._gaps.items()
        ]

    def _deliver(
        self, key: SubscriptionKey, message: Envelope, seq_id: int, out: list[ev.Event]
    ) -> bool:
        self._held[key] = seq_id
        self._held_timestamp[key] = message.timestamp
        out.append(ev.StreamMessage(key, message, seq_id))
        return True
