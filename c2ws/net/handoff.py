"""The hand-off from the socket threads to the output thread.

Producers never wait: a socket thread must keep reading and answering heartbeats
whatever stdout does.  Memory is bounded by the *backlog* instead: the items handed
over and not yet marked done by the consumer that ``count`` counts (the engine counts
stream messages, what stdout is behind by), and all items, of which at most
``items_per_counted`` times the limit are held (control events cost memory too).  A
producer that finds either past its limit closes its connection and waits for
:meth:`Handoff.wait_for_room` before it reconnects.  One lock and one condition; a batch
(everything one socket read produced) is one hand-over.

**Write-ahead.**  A consumer waiting for items with everything before them done may let
the producer do the consumer's part of a hand-over itself (``write_ahead``: for c2ws,
writing a lone burst of messages to stdout on the socket thread that read it, without
waiting for the output thread to wake).  The items are queued all the same, marked as
written ahead, and the consumer does the rest of its work on them (counting,
acknowledging) when it takes them.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")


class Handoff(Generic[Item]):
    def __init__(
        self, limit: int, *, count: Callable[[Sequence[Item]], int] = len,
        items_per_counted: int = 1,
        split: Callable[[Item, int], tuple[Item, Item]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1 or items_per_counted < 1:
            raise ValueError("limit and items_per_counted must be at least 1")
        self.limit = limit
        self._count = count
        self._items_per_counted = items_per_counted
        # An item that counts as several (a run of messages) may be cut in two so that
        # a take with a limit never counts more than it (see take).
        self._split = split
        self._items: deque[Item] = deque()
        # Handed over and not yet done (queued + being written): counted ones, and all.
        self._backlog = 0
        self._pending = 0
        self._closed = False
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._consumer_waiting = False
        self._producers_waiting = 0
        self._clock = clock
        # When the consumer last finished items, or last had nothing to do: a consumer
        # that was waiting for items has been behind only since they came.
        self._progress_at = clock()
        # Write-ahead (see the module docstring): asked, under the lock, to do the
        # consumer's part for ``items``; True when it did.  Set before producers start;
        # never with takes that have a limit (a written-ahead item is never split).
        self.write_ahead: Callable[[list[Item]], bool] | None = None
        self._written_ahead = 0  # the queue's first items that were written ahead
        # How many of the items the consumer's last take returned (its first ones) were
        # written ahead: read by the consumer's thread after its take.
        self.taken_written_ahead = 0

    @property
    def backlog(self) -> int:
        """Counted items handed over and not yet done."""
        return self._backlog

    @property
    def pending(self) -> int:
        """Items of any kind handed over and not yet done."""
        return self._pending

    def above(self, level: int) -> bool:
        """The backlog is past ``level`` counted items, or all items past their share of
        it (``items_per_counted`` times as many)."""
        return self._backlog > level or self._pending > level * self._items_per_counted

    def put(self, items: list[Item], *, wake: bool = True) -> int:
        """Hand ``items`` over (in order, never blocking); returns the backlog after.
        ``wake=False``: leave a waiting consumer asleep until :meth:`wake_consumer`, so a
        producer reading a burst hands it over in a few large steps instead of waking the
        consumer (on another core, across the GIL) for every small one."""
        with self._lock:
            if self._closed:
                return self._backlog
            if not self._pending:  # the consumer had caught up: behind from now on
                self._progress_at = self._clock()
                # Waiting, with all before done: nothing of its own can come before these.
                if (self._consumer_waiting and self.write_ahead is not None
                        and self.write_ahead(items)):
                    self._written_ahead = len(items)
            self._items.extend(items)
            self._backlog += self._count(items)
            self._pending += len(items)
            if wake and self._consumer_waiting:
                self._changed.notify_all()
            return self._backlog

    def wake_consumer(self) -> None:
        """Wake a waiting consumer for what was put without waking it."""
        with self._lock:
            if self._consumer_waiting and self._items:
                self._changed.notify_all()

    def take(self, timeout: float | None, limit: int | None = None) -> list[Item]:
        """Everything queued (at most ``limit`` items, and with ``split`` at most
        ``limit`` counted), waiting up to ``timeout`` seconds
        (None: for ever) for at least one; [] on timeout or once closed and empty."""
        with self._lock:
            if not self._items and not self._closed:
                self._consumer_waiting = True
                try:
                    self._changed.wait_for(lambda: self._items or self._closed, timeout)
                finally:
                    self._consumer_waiting = False
            if limit is None or limit >= len(self._items):
                taken = list(self._items)
                self._items.clear()
            else:
                taken = [self._items.popleft() for _ in range(limit)]
            if limit is not None and self._split is not None:
                self._keep_within(taken, limit)
            ahead = self.taken_written_ahead = min(self._written_ahead, len(taken))
            self._written_ahead -= ahead
            return taken

    def _keep_within(self, taken: list[Item], limit: int) -> None:
        """Give back the end of ``taken`` (cutting one item in two if need be) until it
        counts at most ``limit``: ``limit`` items may count more (runs of messages)."""
        excess = self._count(taken) - limit
        given_back: list[Item] = []  # last first
        while excess > 0:
            item = taken.pop()
            size = self._count((item,))
            if size <= excess:
                given_back.append(item)
                excess -= size
            else:
                assert self._split is not None
                kept, rest = self._split(item, size - excess)
                taken.append(kept)
                given_back.append(rest)
                excess = 0
        self._items.extendleft(given_back)

    def give_back(self, items: list[Item]) -> None:
        """Put taken items back at the front, in order, to be taken again first (still
        in the backlog: they were never done).  Never items written ahead."""
        with self._lock:
            self._items.extendleft(reversed(items))

    def done(self, items: Sequence[Item]) -> None:
        """The consumer has finished with these taken items: room for producers."""
        counted = self._count(items)
        with self._lock:
            self._backlog = max(0, self._backlog - counted)
            self._pending = max(0, self._pending - len(items))
            self._progress_at = self._clock()
            if self._producers_waiting:
                self._changed.notify_all()

    def wait_for_room(
        self, below: int, stop: Callable[[], bool], timeout: float | None = None
    ) -> bool:
        """Wait until the backlog is at most ``below`` (see :meth:`above`) (True), or
        ``stop()`` / close / ``timeout`` (False).  Whoever sets ``stop`` must call
        :meth:`wake`."""
        def ready() -> bool:
            return self._closed or stop() or not self.above(below)

        with self._lock:
            self._producers_waiting += 1
            try:
                self._changed.wait_for(ready, timeout)
                return not self.above(below) and not self._closed and not stop()
            finally:
                self._producers_waiting -= 1

    def progressing(self, within: float) -> bool:
        """The consumer finished some items in the last ``within`` seconds, or had nothing
        left to do then (a consumer that waited for items is not one that stopped)."""
        return self._clock() - self._progress_at < within

    def wait_below(self, level: int, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the backlog to fall to ``level`` (see
        :meth:`above`)."""
        with self._lock:
            self._producers_waiting += 1
            try:
                return self._changed.wait_for(
                    lambda: not self.above(level) or self._closed, timeout
                )
            finally:
                self._producers_waiting -= 1

    def wake(self) -> None:
        """Re-check every waiter's condition (after a stop flag changed)."""
        with self._lock:
            self._changed.notify_all()

    def close(self) -> None:
        """Take no more; release every waiter.  Items already queued can still be taken."""
        with self._lock:
            self._closed = True
            self._changed.notify_all()

    def discard(self) -> list[Item]:
        """Remove and return everything still queued (for the final report), but the
        items written ahead (see :meth:`take_written_ahead`)."""
        with self._lock:
            left = list(self._items)[self._written_ahead:]
            self._items.clear()
            self._written_ahead = 0
            return left

    def take_written_ahead(self) -> list[Item]:
        """Remove and return the queued items that were written ahead (the consumer
        stopping must count them as its own: they are out)."""
        with self._lock:
            ahead = [self._items.popleft() for _ in range(self._written_ahead)]
            self._written_ahead = 0
            return ahead
