"""Group commit: a cursor store's commits made durable per group of messages, not per
acknowledgement.

A store that makes each commit durable on disk (the ``--state`` file: a rewrite and two
fsyncs) costs a millisecond or more per commit; committed after every message written to
a pipe, it capped c2ws at ~1,500 msg/s.  A store that declares :class:`CommitGroups`
(``FileCursors`` with an output) is committed by the stream through a
:class:`GroupCommit`: acknowledgements update the cursors in memory, and the store's own
``commit`` runs once the group is *due*:

* it holds ``max_messages`` acknowledged messages, or
* its first message was acknowledged ``max_seconds`` ago (the stream wakes up for this
  while it waits for messages), or
* it holds a sequence reset (the cursor moves *down*: that must be durable before any
  line of the new numbering is written, see :mod:`c2ws.engine`), or
* the stream closes (however it closes; only ``kill -9`` or a power loss skip it).

The stream also never takes a batch larger than :attr:`GroupCommit.room`, so the
messages handed out and not yet durable never exceed ``max_messages``: after a crash a
restart delivers again at most that many (what a pipe's reader may see twice).

Plain class, clock passed in; no threads, no files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from c2ws import spec
from c2ws.events import SubscriptionKey

if TYPE_CHECKING:
    from c2ws.cursors import CursorStore

__all__ = ["CommitGroups", "GroupCommit"]


@dataclass(frozen=True, slots=True)
class CommitGroups:
    """How a store's commits are grouped: durable at the latest after ``max_messages``
    messages or ``max_seconds`` seconds, whichever comes first."""

    max_messages: int = spec.COMMIT_GROUP_MAX_MESSAGES
    max_seconds: float = spec.COMMIT_GROUP_MAX_SECONDS

    def __post_init__(self) -> None:
        if isinstance(self.max_messages, bool) or not (
                isinstance(self.max_messages, int) and self.max_messages >= 1):
            raise ValueError(f"max_messages must be at least 1, not {self.max_messages!r}")
        if not self.max_seconds >= 0:
            raise ValueError(f"max_seconds must be 0 or more, not {self.max_seconds!r}")


class GroupCommit:
    """The cursor store the engine commits to when ``store`` groups its commits: it keeps
    the latest cursors and commits them to ``store`` when the group is due (see the module
    docstring).  The stream reports each acknowledgement with :meth:`acknowledged`."""

    def __init__(
        self, store: CursorStore, groups: CommitGroups, clock: Callable[[], float]
    ) -> None:
        self.store = store
        self.groups = groups
        self._clock = clock
        # The cursors to commit (every subscription's, as the engine passes them), None
        # when nothing moved since the last commit.
        self._cursors: dict[SubscriptionKey, int] | None = None
        # Messages acknowledged since the last commit, and when the first of them was.
        self._messages = 0
        self._since: float | None = None
        self._urgent = False

    # --- the engine's side: a cursor store ---------------------------------------------------

    def load(self) -> Mapping[tuple[int, str], int]:
        return self.store.load()

    def commit(self, cursors: Mapping[SubscriptionKey, int]) -> None:
        """Keep ``cursors`` for the group's commit (nothing is written here)."""
        self._cursors = dict(cursors)

    # --- the stream's side -------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Messages acknowledged and not yet committed to the store."""
        return self._messages

    def room(self, unacknowledged: int = 0) -> int:
        """How many messages the next batch may hold so that, with the ``unacknowledged``
        ones handed out already, the group never passes ``max_messages`` (at least 1)."""
        return max(1, self.groups.max_messages - self._messages - unacknowledged)

    def due_at(self) -> float | None:
        """When the group falls due by age (None: nothing pending)."""
        since = self._since
        return None if since is None else since + self.groups.max_seconds

    def acknowledged(self, messages: int, *, reset: bool = False) -> None:
        """``messages`` more were acknowledged (``reset``: with a sequence reset, which
        makes the group due at once); commits when the group is due."""
        if messages and self._since is None:
            self._since = self._clock()
        self._messages += messages
        self._urgent = self._urgent or reset
        if self._urgent or self._messages >= self.groups.max_messages:
            self.flush()
        else:
            self.flush_if_due()

    def flush_if_due(self) -> None:
        """Commit when the group's first message is ``max_seconds`` old."""
        due = self.due_at()
        if due is not None and self._clock() >= due:
            self.flush()

    def flush(self) -> None:
        """Commit what is pending to the store now.  The group is emptied first: a commit
        that raises is not retried by the next one (the error ends the stream)."""
        cursors, self._cursors = self._cursors, None
        self._messages, self._since, self._urgent = 0, None, False
        if cursors is not None:
            self.store.commit(cursors)
