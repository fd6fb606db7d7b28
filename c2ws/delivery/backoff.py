"""Which connection endings are retried, how many times, and how long to wait first.

The whole reconnect policy is here: :data:`RETRY` classifies every
:class:`~c2ws.events.EndReason`, :class:`RetryBudget` counts one connection slot's
consecutive failures against --max-retries, and :class:`Backoff` computes the waits
(exponential, full jitter, capped; a server's Retry-After honoured), so the socket
threads only ask.  No clock is read here: durations are passed in.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum
from typing import Final

from c2ws import spec
from c2ws.events import ConnectionEnd, EndReason


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

    def delay(self, reason: EndReason, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait before the next attempt after ``failures`` consecutive ones.

        ``retry_after``: the wait the server asked for (Retry-After).  It replaces the
        busy schedule's guess: the wait is at least that long and at most the cap; after
        repeated refusals the ordinary schedule applies when it is longer, so a server
        asking for no wait at all is still backed off from."""
        retry = RETRY[reason]
        if retry in (Retry.NEVER, Retry.WHEN_DRAINED):
            return 0.0
        exponent = min(max(failures, 1) - 1, 64)  # bounded: factor**exponent stays finite
        if retry_after is not None:
            step = min(self.cap, self.initial * self.factor**exponent)
            return min(self.cap, max(retry_after, self._rng.uniform(0.0, step)))
        if retry is Retry.LATER:
            step = min(self.cap, self.busy_initial * self.factor**exponent)
            return self._rng.uniform(step / 2, step)
        step = min(self.cap, self.initial * self.factor**exponent)
        return self._rng.uniform(0.0, step)


@dataclass(frozen=True)
class RetryDecision:
    """What to do after a connection ended: ``give_up``, or try again as ``retry`` says;
    ``failures``: the slot's consecutive failures so far (the attempt number shown)."""

    give_up: bool
    retry: Retry
    failures: int


class RetryBudget:
    """One connection slot's consecutive failures, counted against ``max_retries``.

    A connection that stayed up for ``stable_after`` seconds with every subscription
    answered was serving: the count starts again from zero.  One that ends sooner counts
    as a failure even though it was acked, so a server that accepts, acks and closes
    cannot keep the backoff at its first step nor retry for ever past --max-retries.
    Ending because stdout's reader fell behind (Retry.WHEN_DRAINED) is not the server's
    failure: it is never counted."""

    def __init__(
        self,
        *,
        max_retries: int | None,
        reconnect: bool = True,
        stable_after: float = spec.STABLE_CONNECTION_SECONDS,
    ) -> None:
        self.max_retries = max_retries
        self.reconnect = reconnect
        self.stable_after = stable_after
        self.failures = 0

    def after(self, end: ConnectionEnd, served_for: float | None) -> RetryDecision:
        """Account for a connection that ended with ``end``; ``served_for``: how long it
        stayed up once every subscription was answered (None: it never got that far)."""
        retry = RETRY[end.reason]
        if served_for is not None and served_for >= self.stable_after:
            self.failures = 0
        if retry is not Retry.WHEN_DRAINED:
            self.failures += 1
        exhausted = self.max_retries is not None and self.failures > self.max_retries
        give_up = retry is Retry.NEVER or not self.reconnect or exhausted
        return RetryDecision(give_up, retry, self.failures)
