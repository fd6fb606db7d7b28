"""The bounded hand-off between the socket thread and the output thread.

The socket thread must not wait for stdout for long (heartbeats would go unanswered),
so the hand-off holds up to ``max_items`` items.  When it is full, ``put`` waits up to
a bounded time for the reader to catch up, so a burst slows the server down through
TCP instead of failing; a reader that stays stalled makes ``put`` refuse, and c2ws
then stops reading, outputs what it holds and exits with OUTPUT_OVERFLOW.  Nothing is
dropped silently.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

Item = TypeVar("Item")


class BoundedHandoff(Generic[Item]):
    def __init__(self, max_items: int) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self.max_items = max_items
        self._items: deque[Item] = deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._closed = False

    def put(self, item: Item, *, wait: float = 0.0, force: bool = False) -> bool:
        """Append, waiting up to ``wait`` seconds for room; False if there was none.
        ``force`` is for the final end-of-stream marker, which always fits."""
        with self._lock:
            if self._closed and not force:
                return False
            if not force and len(self._items) >= self.max_items and not self._not_full.wait_for(
                lambda: self._closed or len(self._items) < self.max_items, wait
            ):
                return False
            if self._closed and not force:
                return False
            self._items.append(item)
            self._not_empty.notify()
            return True

    def get(self, timeout: float | None) -> Item | None:
        """The oldest item, waiting at most ``timeout`` seconds (None: for ever)."""
        with self._lock:
            if not self._items and not self._not_empty.wait_for(lambda: self._items, timeout):
                return None
            item = self._items.popleft()
            self._not_full.notify()
            return item

    def close(self) -> None:
        """The consumer is done: waiting and future ``put`` calls return False at once."""
        with self._lock:
            self._closed = True
            self._not_full.notify_all()
