"""The gap healer of --heal-gaps (c2ws/backfill.py), sans-I/O: window, dedupe by
SignalId in any key case, anchors at both ends of the hole, retries, failures."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from c2ws import events as ev
from c2ws.backfill import GapHealer
from c2ws.events import StreamMessage, SubscriptionKey
from c2ws.protocol import Envelope
from c2ws.rest.errors import RestAuthenticationFailed, RestUnavailable

KEY = SubscriptionKey(7, "strategy.signal")
UTC = datetime.timezone.utc


def signal(seq: int, payload: dict[str, Any], at: str = "2026-11-25T09:00:00Z"
           ) -> StreamMessage:
    return StreamMessage(KEY, Envelope("strategy.signal", payload, seq_id=seq, timestamp=at),
                         seq)


def gap(after: int, before: int | None) -> ev.GapReported:
    return ev.GapReported(KEY, after, "2026-11-25T09:00:00Z", before,
                          None if before is None else "2026-11-25T09:10:00Z", "limit",
                          Envelope("gap", {}))


def test_the_window_is_widened_and_delivered_signal_ids_are_left_out_in_any_key_case(
) -> None:
    asked: list[tuple[int, datetime.datetime, datetime.datetime | None]] = []

    def fetch(sid: int, start: datetime.datetime, end: datetime.datetime | None
              ) -> list[dict[str, Any]]:
        asked.append((sid, start, end))
        return [{"signalId": n} for n in range(1, 9)]

    healer = GapHealer(fetch, sleep=lambda s: None)
    # The stream's payloads name it in snake_case, the REST objects in camelCase.
    healer.observe([signal(10, {"signal_id": 2}), signal(11, {"SignalId": 3})])
    out, done = healer.heal(gap(11, 15), [signal(15, {"signal_id": 7})])
    # Orders up to the last one held (3) come before the hole; from the first after it
    # (7) on, after it.
    assert [e.order["signalId"] for e in out] == [4, 5, 6]  # type: ignore[union-attr]
    assert not done.failed and done.written == 3
    (sid, start, end) = asked[0]
    assert sid == 7 and start == datetime.datetime(2026, 11, 25, 8, 59, tzinfo=UTC)
    assert end == datetime.datetime(2026, 11, 25, 9, 11, tzinfo=UTC)
    assert done.window["margin_seconds"] == 60


def test_signals_handed_over_as_a_run_are_anchors_and_seen_like_any_other() -> None:
    """A burst of signals as one StreamRun (issue 22): their SignalIds count."""
    frames = [b'{"msg_type":"strategy.signal","seq_id":%d,"timestamp":"2026-11-25T09:00:00Z",'
              b'"payload":{"SignalId":%d}}' % (seq, sid) for seq, sid in [(10, 2), (11, 3)]]
    healer = GapHealer(lambda *a: [{"SignalId": n} for n in (1, 2, 3, 4, 5)],
                       sleep=lambda s: None)
    healer.observe([ev.StreamRun(KEY, b"".join(f + b"\n" for f in frames), 2, 11)])
    out, _ = healer.heal(gap(11, None))
    assert [e.order for e in out] == [{"SignalId": 4}, {"SignalId": 5}]  # type: ignore[union-attr]


def test_a_stream_that_heals_gaps_hands_messages_over_one_by_one() -> None:
    """heal_gaps looks at each message after a gap (the first signal after the hole):
    its stream never makes runs."""
    import c2ws

    healing = c2ws.stream([7], "signal", api_key="k" * 16, url="ws://127.0.0.1:9/ws",
                          heal_gaps=True)
    plain = c2ws.stream([7], "signal", api_key="k" * 16, url="ws://127.0.0.1:9/ws")
    assert (healing.config.message_runs, plain.config.message_runs) == (False, True)


def test_without_anchors_the_seen_signal_ids_are_left_out_and_none_twice() -> None:
    healer = GapHealer(lambda *a: [{"SignalId": 5}, {"SignalId": 1}, {"SignalId": 5},
                                   {"OrderId": 9}], sleep=lambda s: None)
    healer.observe([signal(3, {"SignalId": 1}), signal(4, {"Side": "1"})])  # last: no id
    out, _ = healer.heal(gap(4, None))
    assert [e.order for e in out] == [{"SignalId": 5}, {"OrderId": 9}]  # type: ignore[union-attr]
    # What was backfilled is not backfilled again by a later gap.
    again, _ = healer.heal(gap(4, None))
    assert [e.order for e in again] == [{"OrderId": 9}]  # type: ignore[union-attr]


def test_a_failing_fetch_is_retried_then_reported_as_backfill_failed() -> None:
    calls: list[int] = []
    waits: list[float] = []

    def fetch(*args: Any) -> list[dict[str, Any]]:
        calls.append(1)
        raise RestUnavailable("GET x answered HTTP 502")

    out, done = GapHealer(fetch, sleep=waits.append).heal(gap(1, 5))
    assert len(calls) == 3 and len(waits) == 2 and done.failed
    (failed,) = out
    assert isinstance(failed, ev.BackfillFailed) and "502" in failed.reason
    assert failed.obj["msg_type"] == "backfill.failed" and failed.obj["written"] == 0


def test_a_refused_key_is_not_retried() -> None:
    calls: list[int] = []

    def fetch(*args: Any) -> list[dict[str, Any]]:
        calls.append(1)
        raise RestAuthenticationFailed("HTTP 401")

    _, done = GapHealer(fetch, sleep=lambda s: None).heal(gap(1, 5))
    assert len(calls) == 1 and done.failed


@pytest.mark.parametrize("limit", [2])
def test_more_orders_than_the_limit_are_cut_and_said(limit: int) -> None:
    healer = GapHealer(lambda *a: [{"SignalId": n} for n in range(5)], sleep=lambda s: None,
                       max_orders=limit)
    out, done = healer.heal(gap(1, 9))
    assert [type(e).__name__ for e in out] == ["BackfillOrder", "BackfillOrder",
                                               "BackfillFailed"]
    assert done.failed and done.written == 2


def test_a_hole_whose_start_has_no_time_cannot_be_backfilled() -> None:
    hole = ev.GapReported(KEY, 4, None, 9, "2026-11-25T09:10:00Z", "x", Envelope("gap", {}))
    out, done = GapHealer(lambda *a: [], sleep=lambda s: None).heal(hole)
    assert done.failed and "start of the hole is unknown" in out[0].reason  # type: ignore[union-attr]
