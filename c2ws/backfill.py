"""``heal_gaps``: a gap the server could not replay, filled from the REST order history.

Sans-I/O: :class:`GapHealer` is given what the stream delivered and each gap, and a
``fetch`` function (the REST history of one strategy for a time window; the I/O); it
decides the window, retries, dedupes and builds the events the stream writes right after
the gap, before the first signal after the hole.  The clock and the waits are passed in.

The rules ([ours]: nothing public links a stream ``seq_id`` to a REST ``SignalId``):

- **Window.** From the timestamp of the last signal held before the hole to that of the
  first after it (none yet: up to now), each end widened by
  ``spec.BACKFILL_MARGIN_SECONDS`` (the two may come from different clocks, and both
  have whole seconds only).
- **Dedupe by SignalId** (any key case): an order whose ``SignalId`` the stream
  delivered (the last ``spec.BACKFILL_SEEN_SIGNAL_IDS`` per strategy), or already
  backfilled, or carried by a signal already received after the hole, is left out.
- **Anchors.** The history is oldest first.  When the SignalId of the last signal before
  the hole is in it, the orders up to it were posted before the hole (delivered, perhaps
  by an earlier run): left out.  When the SignalId of the first signal after the hole is
  in it, after that anchor, the orders from it on come after the hole: left out.
- **Failures.** A fetch that fails is tried ``spec.BACKFILL_ATTEMPTS`` times in all
  (the REST client retries 429s and 5xx itself), then a :class:`~c2ws.events.
  BackfillFailed` is written; a refused key or strategy is not tried again.  More than
  ``spec.BACKFILL_MAX_ORDERS`` orders: the first are written, then the failure.
"""

from __future__ import annotations

import datetime
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Final

import orjson

from c2ws import events as ev
from c2ws import spec
from c2ws.errors import AuthenticationFailed, C2wsError, SubscriptionsRejected
from c2ws.protocol import JsonObject, parse_datetime
from c2ws.rest import api
from c2ws.rest.results import backfill_failed_object, backfill_object, window_object

Fetch = Callable[[int, datetime.datetime, "datetime.datetime | None"], Iterable[JsonObject]]
"""The REST order history of a strategy from a start to an end (None: now), oldest first."""

_SIGNAL: Final = spec.CHANNEL_SIGNAL
_STREAM_MESSAGE: Final = ev.StreamMessage
_STREAM_RUN: Final = ev.StreamRun
_MARGIN: Final = datetime.timedelta(seconds=spec.BACKFILL_MARGIN_SECONDS)


def signal_id_of_message(event: ev.StreamMessage) -> int | None:
    """The SignalId of a stream message (its payload decoded when the engine did not)."""
    payload: object = event.message.payload
    if not payload and event.message.data is not None:
        try:
            frame = orjson.loads(event.message.data)
        except orjson.JSONDecodeError:
            return None
        payload = frame.get("payload") if isinstance(frame, dict) else None
    return api.signal_id_of(payload) if isinstance(payload, dict) else None


class GapHealer:
    """See the module docstring.  ``sleep`` and ``rng``: the waits between attempts."""

    def __init__(
        self, fetch: Fetch, *, attempts: int = spec.BACKFILL_ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None,
        max_orders: int = spec.BACKFILL_MAX_ORDERS,
    ) -> None:
        from c2ws.delivery.backoff import Backoff

        self._fetch = fetch
        self._attempts = max(attempts, 1)
        self._sleep = sleep
        self._backoff = Backoff(rng=rng)
        self._max_orders = max_orders
        self._seen: dict[int, OrderedDict[int, None]] = {}
        self._last: dict[int, int | None] = {}  # per strategy: the last signal's SignalId

    # --- what the stream delivered ----------------------------------------------------

    def observe(self, events: Sequence[ev.Event]) -> None:
        """Remember the SignalIds of the signals among ``events`` (delivered in order)."""
        for event in events:
            if type(event) is _STREAM_MESSAGE:
                key = event.key
                if key is not None and key.channel == _SIGNAL:
                    self._remember(key.strategy_id, signal_id_of_message(event))
            elif type(event) is _STREAM_RUN and event.key.channel == _SIGNAL:
                # A burst handed over as one event (issue 22): each of its signals.
                self.observe(event.messages())

    def _remember(self, strategy_id: int, signal_id: int | None) -> None:
        self._last[strategy_id] = signal_id
        if signal_id is None:
            return
        seen = self._seen.setdefault(strategy_id, OrderedDict())
        seen.pop(signal_id, None)
        seen[signal_id] = None
        if len(seen) > spec.BACKFILL_SEEN_SIGNAL_IDS:
            seen.popitem(last=False)

    # --- a gap ---------------------------------------------------------------------------

    def heal(self, gap: ev.GapReported, ahead: Sequence[ev.Event] = ()
             ) -> tuple[list[ev.Event], ev.BackfillDone]:
        """The events to write right after ``gap``: a ``BackfillOrder`` per order of the
        hole, then a ``BackfillFailed`` if it failed.  ``ahead``: the events already
        received after the gap (their signals are not backfilled)."""
        key = gap.key
        strategy_id = key.strategy_id
        before = parse_datetime(gap.last_timestamp)
        after = parse_datetime(gap.next_timestamp)
        start = None if before is None else before - _MARGIN
        end = None if after is None else after + _MARGIN
        window = window_object(start or datetime.datetime.fromtimestamp(0, datetime.timezone.utc),
                               end)
        if start is None:
            window["start"] = None
            return self._failed(gap, "the start of the hole is unknown (the signal before it "
                                "has no timestamp)", [], window, 0)
        coming = [signal_id_of_message(event) for event in ahead
                  if type(event) is _STREAM_MESSAGE and event.key == key]
        first_after = coming[0] if coming else None
        orders, error = self._fetch_with_retries(strategy_id, start, end)
        written: list[ev.Event] = []
        left_out = 0
        if orders:
            chosen, left_out = self._choose(strategy_id, orders,
                                            {sid for sid in coming if sid is not None},
                                            first_after)
            for order in chosen[: self._max_orders]:
                written.append(ev.BackfillOrder(key, order, gap,
                                                backfill_object(gap, order, window)))
                self._remember_backfilled(strategy_id, order)
            if len(chosen) > self._max_orders:
                error = (f"the window holds {len(chosen)} missing orders: only the first "
                         f"{self._max_orders} were written")
        if error is not None:
            return self._failed(gap, error, written, window, left_out)
        return written, ev.BackfillDone(key, gap, len(written), left_out, window, failed=False)

    def _choose(self, strategy_id: int, orders: list[JsonObject], coming: set[int],
                first_after: int | None) -> tuple[list[JsonObject], int]:
        ids = [api.signal_id_of(order) for order in orders]
        begin = 0
        last_before = self._last.get(strategy_id)
        if last_before is not None and last_before in ids:
            begin = len(ids) - ids[::-1].index(last_before)
        stop = len(orders)
        if first_after is not None and first_after in ids[begin:]:
            stop = begin + ids[begin:].index(first_after)
        seen = self._seen.get(strategy_id, OrderedDict())
        chosen: list[JsonObject] = []
        taken: set[int] = set()
        for order, signal_id in zip(orders[begin:stop], ids[begin:stop], strict=True):
            if signal_id is not None and (signal_id in seen or signal_id in coming
                                          or signal_id in taken):
                continue
            if signal_id is not None:
                taken.add(signal_id)
            chosen.append(order)
        return chosen, len(orders) - len(chosen)

    def _remember_backfilled(self, strategy_id: int, order: JsonObject) -> None:
        signal_id = api.signal_id_of(order)
        if signal_id is not None:
            seen = self._seen.setdefault(strategy_id, OrderedDict())
            seen[signal_id] = None
            if len(seen) > spec.BACKFILL_SEEN_SIGNAL_IDS:
                seen.popitem(last=False)

    def _fetch_with_retries(self, strategy_id: int, start: datetime.datetime,
                            end: datetime.datetime | None) -> tuple[list[JsonObject], str | None]:
        error = "not tried"
        for attempt in range(1, self._attempts + 1):
            try:
                return list(self._fetch(strategy_id, start, end)), None
            except (AuthenticationFailed, SubscriptionsRejected) as exc:
                return [], str(exc)  # retrying cannot change a refused key or strategy
            except C2wsError as exc:
                error = str(exc)
            if attempt < self._attempts:
                self._sleep(self._backoff.delay(ev.EndReason.UNREACHABLE, attempt))
        return [], f"{error} ({self._attempts} attempts)"

    @staticmethod
    def _failed(gap: ev.GapReported, reason: str, written: list[ev.Event], window: JsonObject,
                left_out: int) -> tuple[list[ev.Event], ev.BackfillDone]:
        count = len(written)
        failure = ev.BackfillFailed(gap.key, gap, reason, count,
                                    backfill_failed_object(gap, reason, count, window))
        return [*written, failure], ev.BackfillDone(gap.key, gap, count, left_out, window,
                                                 failed=True)
