"""Which connection endings are retried, and how long to wait first.

The whole reconnect policy is here: :data:`RETRY` classifies every
:class:`~c2ws.events.EndReason` and :class:`Backoff` computes the waits (exponential,
full jitter, capped), so the socket threads only ask.
"""

from __future__ import annotations

import random
from enum import Enum
from typing import Final

from c2ws import spec
from c2ws.events import EndReason


class Retry(Enum):
    NEVER = "never"  # fatal: retrying cannot help (or we were asked to stop)
    SOON = "soon"  # exponential backoff with full jitter
    LATER = "later"  # the server is busy: a higher start, never much below the step
    WHEN_DRAINED = "when-drained"  # once stdout's reader has caught up, at once


RETRY: Final[dict[EndReason, Retry]] = {
    EndReason.STOPPED: Retry.NEVER,
    EndReason.AUTH_FAILED: Retry.NEVER,
    EndReason.REFUSED: Retry.NEVER,
    EndReason.BUG: Retry.NEVER,
    EndReason.BUSY: Retry.LATER,
    EndReason.UNREACHABLE: Retry.SOON,
    EndReason.LOST: Retry.SOON,
    EndReason.SERVER_CLOSED: Retry.SOON,
    EndReason.SILENT: Retry.SOON,
    EndReason.NO_CONNECTED: Retry.SOON,
    EndReason.NO_ACK: Retry.SOON,
    EndReason.FRAME_STALLED: Retry.SOON,
    EndReason.SEND_BLOCKED: Retry.SOON,
    EndReason.PROTOCOL_ERROR: Retry.SOON,
    EndReason.OVERFLOW: Retry.WHEN_DRAINED,
}


class Backoff:
    """Waits before reconnect attempt ``failures`` (1 for the first retry after a
    failure).  Seed ``rng`` for a reproducible schedule."""

    def __init__(
        self,
        *,
        cap: float = spec.BACKOFF_MAX_SECONDS,
        initial: float = spec.BACKOFF_INITIAL_SECONDS,
        busy_initial: float = spec.BACKOFF_BUSY_INITIAL_SECONDS,
        factor: float = spec.BACKOFF_FACTOR,
        rng: random.Random | None = None,
    ) -> None:
        if cap < 0 or initial <= 0 or busy_initial <= 0 or factor < 1:
            raise ValueError("backoff needs cap >= 0, positive starts and factor >= 1")
        self.cap = cap
        self.initial = initial
        self.busy_initial = busy_initial
        self.factor = factor
        self._rng = rng or random.Random()

    def delay(self, reason: EndReason, failures: int) -> float:
        """Seconds to wait before the next attempt after ``failures`` consecutive ones."""
        retry = RETRY[reason]
        if retry in (Retry.NEVER, Retry.WHEN_DRAINED):
            return 0.0
        exponent = min(max(failures, 1) - 1, 64)  # bounded: factor**exponent stays finite
        if retry is Retry.LATER:
            step = min(self.cap, self.busy_initial * self.factor**exponent)
            return self._rng.uniform(step / 2, step)
        step = min(self.cap, self.initial * self.factor**exponent)
        return self._rng.uniform(0.0, step)
