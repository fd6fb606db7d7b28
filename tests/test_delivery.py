"""Reconnect policy, backoff schedule and sharding (pure functions, no network)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from c2ws import spec
from c2ws.delivery.backoff import RETRY, Backoff, Retry, RetryBudget
from c2ws.delivery.shards import TooManySubscriptions, plan_shards
from c2ws.events import ConnectionEnd, EndReason, SubscriptionKey


def test_every_ending_has_a_retry_policy() -> None:
    assert set(RETRY) == set(EndReason)
    assert RETRY[EndReason.AUTH_FAILED] is Retry.NEVER
    assert RETRY[EndReason.REFUSED] is Retry.NEVER
    assert RETRY[EndReason.BUG] is Retry.NEVER
    assert RETRY[EndReason.BUSY] is Retry.LATER
    assert RETRY[EndReason.OVERFLOW] is Retry.WHEN_DRAINED
    for reason in (EndReason.LOST, EndReason.SERVER_CLOSED, EndReason.SILENT,
                   EndReason.NO_CONNECTED, EndReason.NO_ACK, EndReason.FRAME_STALLED,
                   EndReason.SEND_BLOCKED, EndReason.UNREACHABLE, EndReason.PROTOCOL_ERROR):
        assert RETRY[reason] is Retry.SOON


def test_the_seeded_schedule_is_reproducible_exponential_jittered_and_capped() -> None:
    def schedule(seed: int) -> list[float]:
        backoff = Backoff(cap=30.0, rng=random.Random(seed))
        return [backoff.delay(EndReason.LOST, attempt) for attempt in range(1, 12)]

    first = schedule(7)
    assert first == schedule(7) and first != schedule(8)
    for attempt, delay in enumerate(first, start=1):
        step = min(30.0, spec.BACKOFF_INITIAL_SECONDS * spec.BACKOFF_FACTOR ** (attempt - 1))
        assert 0.0 <= delay <= step
    # Full jitter: over many draws the waits cover the whole range up to the step.
    backoff = Backoff(cap=30.0, rng=random.Random(1))
    draws = [backoff.delay(EndReason.LOST, 4) for _ in range(2000)]
    assert min(draws) < 0.2 and max(draws) > 3.8 and max(draws) <= 4.0


def test_busy_answers_wait_longer() -> None:
    rng = random.Random(3)
    backoff = Backoff(cap=60.0, rng=rng)
    for attempt in range(1, 6):
        step = min(60.0, spec.BACKOFF_BUSY_INITIAL_SECONDS * spec.BACKOFF_FACTOR ** (attempt - 1))
        busy = [backoff.delay(EndReason.BUSY, attempt) for _ in range(200)]
        normal = [backoff.delay(EndReason.LOST, attempt) for _ in range(200)]
        assert min(busy) >= step / 2 and max(busy) <= step
        assert sum(busy) / len(busy) > sum(normal) / len(normal)


def test_the_cap_bounds_every_wait_and_fatal_endings_do_not_wait() -> None:
    backoff = Backoff(cap=0.2, rng=random.Random(0))
    assert all(backoff.delay(EndReason.BUSY, n) <= 0.2 for n in range(1, 200))
    assert all(backoff.delay(EndReason.LOST, n) <= 0.2 for n in range(1, 200))
    assert backoff.delay(EndReason.AUTH_FAILED, 3) == 0.0
    assert backoff.delay(EndReason.OVERFLOW, 3) == 0.0


def test_retry_after_sets_the_wait_within_the_cap() -> None:
    backoff = Backoff(cap=30.0, rng=random.Random(5))
    # Longer than the cap: the cap.  Within it: exactly what the server asked for, not the
    # busy schedule's 2.5 to 5 s.
    assert backoff.delay(EndReason.BUSY, 1, retry_after=120.0) == 30.0
    assert backoff.delay(EndReason.BUSY, 1, retry_after=1.0) == 1.0
    assert Backoff(cap=0.0).delay(EndReason.BUSY, 1, retry_after=120.0) == 0.0
    # Asking for no wait at all, again and again: the ordinary schedule still grows.
    late = [backoff.delay(EndReason.BUSY, 8, retry_after=0.0) for _ in range(200)]
    assert max(late) > 20.0 and all(0.0 <= wait <= 30.0 for wait in late)
    assert all(backoff.delay(EndReason.BUSY, n, retry_after=3.0) >= 3.0 for n in range(1, 30))


BUSY = ConnectionEnd(EndReason.BUSY, "closed with 1008", 1008)


def test_a_connection_acked_then_closed_at_once_counts_as_a_failure() -> None:
    budget = RetryBudget(max_retries=3)
    decisions = [budget.after(BUSY, served_for=0.05) for _ in range(4)]
    assert [d.failures for d in decisions] == [1, 2, 3, 4]
    assert [d.give_up for d in decisions] == [False, False, False, True]


def test_a_connection_that_served_long_enough_starts_the_count_again() -> None:
    budget = RetryBudget(max_retries=1)
    assert budget.after(BUSY, served_for=None).failures == 1
    stable = spec.STABLE_CONNECTION_SECONDS
    assert budget.after(BUSY, served_for=stable - 0.1).give_up  # 2 failures > 1
    budget = RetryBudget(max_retries=1)
    budget.after(BUSY, served_for=None)
    decision = budget.after(BUSY, served_for=stable)
    assert (decision.failures, decision.give_up) == (1, False)


def test_a_slow_reader_is_not_the_servers_failure_and_fatal_endings_give_up() -> None:
    budget = RetryBudget(max_retries=0)
    overflow = budget.after(ConnectionEnd(EndReason.OVERFLOW), served_for=1.0)
    assert (overflow.retry, overflow.failures, overflow.give_up) == (Retry.WHEN_DRAINED, 0, False)
    assert RetryBudget(max_retries=None).after(ConnectionEnd(EndReason.AUTH_FAILED), None).give_up
    assert RetryBudget(max_retries=None, reconnect=False).after(BUSY, None).give_up
    assert not RetryBudget(max_retries=None).after(BUSY, None).give_up


def keys(count: int) -> list[SubscriptionKey]:
    channels = spec.CHANNELS
    return [SubscriptionKey(1 + i // 2, channels[i % 2]) for i in range(count)]


def test_250_subscriptions_take_3_connections_evenly() -> None:
    shards = plan_shards(keys(250))
    assert [len(shard) for shard in shards] == [84, 83, 83]
    assert [key for shard in shards for key in shard] == keys(250)


def test_up_to_100_take_one_connection() -> None:
    assert [len(s) for s in plan_shards(keys(100))] == [100]
    assert plan_shards([]) == []


def test_more_than_1000_is_refused_with_the_reason_and_a_way_out() -> None:
    assert len(plan_shards(keys(1000))) == 10
    with pytest.raises(TooManySubscriptions, match=r"1001 subscriptions .* at most 1000 .* -c"):
        plan_shards(keys(1001))


@given(st.integers(min_value=0, max_value=1000), st.integers(min_value=1, max_value=100))
def test_shards_cover_every_key_once_within_the_limit(count: int, per_connection: int) -> None:
    wanted = keys(count)
    try:
        shards = plan_shards(wanted, per_connection=per_connection)
    except TooManySubscriptions:
        assert count > per_connection * spec.MAX_CONNECTIONS_PER_KEY
        return
    assert [key for shard in shards for key in shard] == wanted
    assert all(0 < len(shard) <= per_connection for shard in shards)
    assert len(shards) == -(-count // per_connection)
