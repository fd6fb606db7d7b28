"""The bounded hand-off between the socket thread and the output thread.

The socket thread must never wait for stdout (heartbeats would go unanswered),
so it only appends here; the output thread takes.  The bound keeps memory flat
when the reader of stdout stalls: past it, ``put`` refuses and c2ws stops
reading, outputs what it holds and exits with OUTPUT_OVERFLOW.  Nothing is
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
        self._ready = threading.Condition()

    def put(self, item: Item, *, force: bool = False) -> bool:
        """Append unless full; ``force`` is for the final end-of-stream marker."""
        with self._ready:
            if not force and len(self._items) >= self.max_items:
                return False
            self._items.append(item)
            self._ready.notify()
            return True

    def get(self, timeout: float | None) -> Item | None:
        """The oldest item, waiting at most ``timeout`` seconds (None: for ever)."""
        with self._ready:
            if not self._items and not self._ready.wait_for(lambda: self._items, timeout):
                return None
            return self._items.popleft()

    def __len__(self) -> int:
        with self._ready:
            return len(self._items)
