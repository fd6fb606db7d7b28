"""The group-commit rule (c2ws.delivery.groups.CommitGroup) on its own, with times passed
in: when a group goes in flight, and how much room the next batch has.  The thread that
runs the commits, with the stream: tests/test_stream.py."""

from __future__ import annotations

import pytest

from c2ws import spec
from c2ws.delivery.groups import CommitGroup, CommitGroups
from c2ws.events import SubscriptionKey

A = SubscriptionKey(1, spec.CHANNEL_SIGNAL)


def group(max_messages: int = 10, max_seconds: float = 1.0) -> CommitGroup:
    return CommitGroup(CommitGroups(max_messages, max_seconds))


def test_a_group_goes_in_flight_at_half_the_bound_or_by_age_whichever_first() -> None:
    rule = group()
    assert rule.settled and rule.due_at() is None and not rule.due(100.0)
    rule.set_cursors({A: 4})
    rule.add(4, now=100.0)
    assert not rule.due(100.5) and rule.due_at() == 101.0
    assert rule.due(101.0)  # by age: its first message is 1 s old
    rule.set_cursors({A: 5})
    rule.add(1, now=100.6)
    assert rule.due(100.6)  # by size: 5 of 10
    assert rule.begin() == {A: 5}
    assert (rule.pending, rule.in_flight, rule.due_at()) == (0, 5, None)


def test_room_counts_everything_not_yet_durable_and_never_stalls_for_ever() -> None:
    rule = group()
    assert rule.room() == 5  # half the bound: the next batch is written while it commits
    assert rule.room(unacknowledged=7) == 3 and rule.room(unacknowledged=25) == 1
    rule.add(6, now=0.0)
    rule.begin()
    rule.add(3, now=0.1)
    assert rule.room() == 1 and rule.room(unacknowledged=1) == 0
    assert not rule.due(0.2)  # one in flight: the next waits for it
    rule.finished()
    assert rule.room(unacknowledged=1) == 5 and rule.room(unacknowledged=3) == 4
    rule.hurry()  # more room is wanted now: no waiting for size or age
    assert rule.due(0.2) and rule.urgent()


def test_a_sequence_reset_makes_its_group_due_at_once() -> None:
    rule = group()
    rule.set_cursors({A: 0})
    rule.add(0, now=5.0, reset=True)
    assert not rule.settled and rule.due(5.0)
    assert rule.begin() == {A: 0}
    rule.finished()
    assert rule.settled


def test_a_group_whose_cursors_did_not_move_commits_nothing() -> None:
    rule = group()
    rule.add(3, now=0.0)  # messages without a cursor (none could be placed)
    assert rule.due(1.0) and rule.begin() is None


@pytest.mark.parametrize("max_messages", [1, 2, 3])
def test_the_smallest_bounds_still_make_progress(max_messages: int) -> None:
    rule = group(max_messages)
    for step in range(5):
        assert rule.room() >= 1
        rule.add(rule.room(), now=float(step))
        assert rule.due(float(step))  # a full batch is half the bound: due at once
        rule.begin()
        rule.finished()
