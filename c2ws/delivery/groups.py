"""Group commit: when a cursor store's commits are made, so that they cost little and
what a crash can repeat stays bounded.

A store that makes each commit durable on disk (the ``--state`` file: a rewrite and two
fsyncs, 0.5-2.5 ms) and is committed after every message written to a pipe capped c2ws
at ~1,500 msg/s.  A store that declares :class:`CommitGroups` (``FileCursors`` with an
output) is committed per *group* of acknowledged messages instead.  :class:`CommitGroup`
is the rule, as a plain state machine (the thread that runs the commits is
:mod:`c2ws.commits`):

* acknowledgements only update the cursors of the group being filled (*pending*);
* the pending group is committed (goes *in flight*, one commit at a time) once it holds
  half of ``max_messages`` messages, or its first message was acknowledged
  ``max_seconds`` ago, or it holds a sequence reset (the cursor moves *down*: durable
  before any line of the new numbering is written, see :mod:`c2ws.engine`), or more room
  is needed, or the stream closes;
* :meth:`CommitGroup.room` caps the next batch: the messages handed out and not yet
  durable (unacknowledged, pending, in flight) never exceed ``max_messages``, whatever
  the disk's speed.  So after a crash a restart delivers again at most ``max_messages``
  (what a pipe's reader may see twice).  A batch holds at most half of it, so that the
  next batch is written while a group's commit is in flight: the stream only waits for
  a disk slower than half the bound's worth of output per commit (at 150k msg/s and
  10,000 messages, a commit of more than ~33 ms).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from c2ws import spec
from c2ws.events import SubscriptionKey

__all__ = ["CommitGroup", "CommitGroups"]


@dataclass(frozen=True, slots=True)
class CommitGroups:
    """How a store's commits are grouped: at most ``max_messages`` messages handed out
    and not yet durable, and a group committed at the latest ``max_seconds`` after its
    first message was acknowledged (plus the time the commit before it takes)."""

    max_messages: int = spec.COMMIT_GROUP_MAX_MESSAGES
    max_seconds: float = spec.COMMIT_GROUP_MAX_SECONDS

    def __post_init__(self) -> None:
        if isinstance(self.max_messages, bool) or not (
                isinstance(self.max_messages, int) and self.max_messages >= 1):
            raise ValueError(f"max_messages must be at least 1, not {self.max_messages!r}")
        if not self.max_seconds >= 0:
            raise ValueError(f"max_seconds must be 0 or more, not {self.max_seconds!r}")


class CommitGroup:
    """The pending group and the one in flight (see the module docstring).  Times are
    whatever clock the caller passes, consistently."""

    def __init__(self, groups: CommitGroups) -> None:
        self.groups = groups
        # A group this large goes in flight at once; the next fills meanwhile.
        self._start_at = max(1, groups.max_messages // 2)
        # The latest cursors (every subscription's, as the engine commits them): what
        # the pending group commits; None when none moved since the last commit began.
        self._cursors: dict[SubscriptionKey, int] | None = None
        self.pending = 0  # messages acknowledged since the last commit began
        self._since: float | None = None  # when the first of them was
        self._reset = False  # the pending group holds a sequence reset
        self._hurry = False  # the pending group is wanted durable now (room, closing)
        self.in_flight: int | None = None  # messages of the commit under way, if one is

    def set_cursors(self, cursors: Mapping[SubscriptionKey, int]) -> None:
        """The cursors moved (what a store's ``commit`` is given)."""
        self._cursors = dict(cursors)

    def add(self, messages: int, now: float, *, reset: bool = False) -> None:
        """``messages`` more were acknowledged (``reset``: with a sequence reset)."""
        if (messages or reset) and self._since is None:
            self._since = now
        self.pending += messages
        self._reset = self._reset or reset

    @property
    def settled(self) -> bool:
        """Nothing pending, nothing in flight: everything acknowledged is durable."""
        return self._since is None and self.in_flight is None

    def room(self, unacknowledged: int = 0) -> int:
        """How many messages the next batch may hold (0: none until a commit ends).  At
        most half the bound: while one group's commit is in flight, the next fills."""
        if self.settled:
            return max(1, min(self._start_at, self.groups.max_messages - unacknowledged))
        return max(0, min(self._start_at, self.groups.max_messages - self.pending
                          - (self.in_flight or 0) - unacknowledged))

    def hurry(self) -> None:
        """Commit the pending group as soon as nothing is in flight (more room is
        needed, or the stream is closing)."""
        if self._since is not None:
            self._hurry = True

    def due_at(self) -> float | None:
        """When the pending group falls due by age (None: nothing pending)."""
        since = self._since
        return None if since is None else since + self.groups.max_seconds

    def due(self, now: float) -> bool:
        """The pending group should go in flight now."""
        since = self._since
        return since is not None and self.in_flight is None and (
            self._reset or self._hurry or self.pending >= self._start_at
            or now >= since + self.groups.max_seconds
        )

    def urgent(self) -> bool:
        """The pending group must not wait for its size or age (see :meth:`due`)."""
        return self._since is not None and (
            self._reset or self._hurry or self.pending >= self._start_at)

    def begin(self) -> dict[SubscriptionKey, int] | None:
        """The pending group goes in flight: the cursors to commit (None: no cursor
        moved, nothing to write; :meth:`finished` all the same)."""
        cursors, self._cursors = self._cursors, None
        self.in_flight = self.pending
        self.pending, self._since, self._reset, self._hurry = 0, None, False, False
        return cursors

    def finished(self) -> None:
        """The commit in flight ended (done or failed)."""
        self.in_flight = None
