"""Grouped commits of a cursor store, made on a thread of their own.

The shell around :class:`c2ws.delivery.groups.CommitGroup` (which decides): the engine
commits into :class:`BackgroundCommits` as into any store (that only keeps the cursors),
the stream reports each acknowledgement and asks how large the next batch may be, and a
thread commits each group to the real store when it falls due.  A commit's fsyncs then
never stall the consumer (the thread releases the GIL while it waits for the disk); only
a disk slower than ``max_messages`` messages' worth of output makes the stream wait, for
the bound on what a crash can repeat.

The store's ``commit`` runs on that thread, one at a time, never at the same time as any
other call to the store (``load`` comes before the thread starts, ``close`` after it
ended).  An exception it raises is raised on the consumer's thread at its next request,
acknowledgement or close; the thread goes on with the next group.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from c2ws.delivery.groups import CommitGroup, CommitGroups
from c2ws.events import SubscriptionKey

if TYPE_CHECKING:
    from c2ws.cursors import CursorStore

__all__ = ["BackgroundCommits"]


class BackgroundCommits:
    """``store``'s commits grouped by ``groups`` and made on a thread (started on the
    first acknowledgement).  Used from one consumer thread; see the module docstring."""

    def __init__(
        self, store: CursorStore, groups: CommitGroups, *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self._clock = clock
        self._group = CommitGroup(groups)
        self._changed = threading.Condition()
        self._error: BaseException | None = None
        self._closing = False
        self._thread: threading.Thread | None = None
        # A store that commits where its output ended (FileCursors with an output file)
        # says so at each acknowledgement, on the consumer's thread, right after the
        # write the acknowledgement covers: committed with the cursors of that moment.
        self._position: Callable[[], object] | None = getattr(store, "position", None)
        # The cursors the engine committed, held until the acknowledgement that covers
        # them (consumer thread only): they join the group together with the position
        # taken then, in one locked step.  Set into the group at once, the commit thread
        # could begin a group with the new cursors and the previous position; a kill -9
        # then cut lines the state file counted as written (lost for good).
        self._staged: dict[SubscriptionKey, int] | None = None

    # --- the engine's side: a cursor store --------------------------------------------------

    def load(self) -> Mapping[tuple[int, str], int]:
        return self.store.load()

    def commit(self, cursors: Mapping[SubscriptionKey, int]) -> None:
        """Keep ``cursors`` for the pending group's commit (nothing is written here): they
        join it at the next :meth:`acknowledged`, with the output's position then."""
        self._staged = dict(cursors)

    # --- the consumer's side ------------------------------------------------------------------

    def acknowledged(self, messages: int, *, reset: bool = False) -> None:
        """``messages`` more were acknowledged (their cursors committed into this object
        just before); with a sequence ``reset``, returns once it is durable."""
        position = self._position() if self._position is not None else None
        staged, self._staged = self._staged, None
        with self._changed:
            self._raise_error()
            group = self._group
            if staged is not None:
                group.set_cursors(staged)
            filling = group.due_at() is not None
            group.add(messages, self._clock(), reset=reset, position=position)
            # The thread sleeps until a group starts filling (then until it is due by
            # age): woken only then, or when the group is due by size, not every batch.
            if not filling or group.urgent():
                self._start_thread()
                self._changed.notify_all()
            if reset:
                self._changed.wait_for(lambda: self._group.settled or self._error is not None)
                self._raise_error()

    def room(self, unacknowledged: int = 0) -> int:
        """How many messages the next batch may hold (at least 1): waits while the
        messages not yet durable are as many as the bound allows, for a commit to end."""
        with self._changed:
            self._raise_error()
            group = self._group
            if group.room(unacknowledged) == 0:
                group.hurry()
                self._changed.notify_all()
                self._changed.wait_for(
                    lambda: group.room(unacknowledged) > 0 or self._error is not None)
                self._raise_error()
            return group.room(unacknowledged)

    def close(self) -> None:
        """Commit what is pending, wait for it and stop the thread; raises the error of a
        commit that failed (once)."""
        if self._staged is not None:  # committed, never acknowledged: joins the last group
            self.acknowledged(0)
        with self._changed:
            self._closing = True
            self._group.hurry()
            self._changed.notify_all()
        thread = self._thread
        if thread is not None:
            thread.join()
        elif not self._group.settled:  # acknowledged, never started: commit here
            self._commit_due()
        self._raise_error()

    # --- internals ------------------------------------------------------------------------------

    def _raise_error(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _start_thread(self) -> None:
        if self._thread is None and not self._closing:
            self._thread = threading.Thread(target=self._run, name="c2ws-commits",
                                             daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while self._commit_due():
            pass

    def _commit_due(self) -> bool:
        """Wait for a group to fall due and commit it; False once closing with nothing
        left to commit."""
        group = self._group
        with self._changed:
            while True:
                now = self._clock()
                if group.due(now):
                    cursors = group.begin()
                    position = group.committing_position
                    break
                if self._closing and group.settled:
                    return False
                due_at = group.due_at()
                self._changed.wait(None if due_at is None else max(0.0, due_at - now))
        error: BaseException | None = None
        try:
            if position is not None:
                commit: Callable[..., None] = self.store.commit
                commit(cursors if cursors is not None else {}, position=position)
            elif cursors is not None:
                self.store.commit(cursors)
        except BaseException as exc:  # raised on the consumer's thread
            error = exc
        with self._changed:
            group.finished()
            if error is not None and self._error is None:
                self._error = error
            self._changed.notify_all()
        return True
