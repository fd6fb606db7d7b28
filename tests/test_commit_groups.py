"""The group-commit rule (c2ws.delivery.groups.CommitGroup) on its own, with times passed
in: when a group goes in flight, and how much room the next batch has.  The thread that
runs the commits (c2ws.commits), with a store of its own here and with the stream in
tests/test_stream.py."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from c2ws import spec
from c2ws.commits import BackgroundCommits
from c2ws.cursors import FileCursors, StreamIdentity
from c2ws.delivery.groups import CommitGroup, CommitGroups
from c2ws.events import SubscriptionKey
from c2ws.monitor.health import CountingCommits, StreamHealth

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


def burst(groups: CommitGroups, messages: int, rate: float, batch: int) -> list[int]:
    """``messages`` acknowledged in batches of at most ``batch`` at ``rate`` msg/s (the time
    passed in; each commit ends at once), then the stream closing: the size of each
    group committed, in order."""
    rule, now, sent, committed = CommitGroup(groups), 0.0, 0, []
    while sent < messages:
        take = min(batch, messages - sent, rule.room())
        assert take > 0  # each commit ends at once: the next batch always has room
        now, sent = now + take / rate, sent + take
        rule.set_cursors({A: sent})
        rule.add(take, now)
        if rule.due(now):
            committed.append(rule.pending)
            rule.begin()
            rule.finished()
    rule.hurry()  # the close
    if rule.due(now):
        committed.append(rule.pending)
    assert sum(committed) == messages
    return committed


def test_a_burst_to_a_file_read_back_commits_by_age_not_by_size(tmp_path: Path) -> None:
    """Issue 22: NDJSON appended to a file (>> out.ndjson) reads every line after the
    last commit back at the next start, so its groups are not cut at 5,000 messages: a
    200,000-message burst at ~440k msg/s (batches of ~530, as measured) is committed
    every COMMIT_GROUP_MAX_SECONDS, 4 groups and the close, not 40 (each commit fsyncs
    the output and rewrites the state file)."""
    out = tmp_path / "out.ndjson"
    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    store = FileCursors(tmp_path / "state.json", output=fd)
    try:
        store.open(StreamIdentity.of("ws://127.0.0.1:9/ws", "group-test-key", [A]))
        groups = store.commit_groups
    finally:
        store.close()
        os.close(fd)
    assert groups is not None and groups.max_messages == spec.READ_BACK_MAX_UNCOMMITTED
    rate, messages = 440_000.0, 200_000
    committed = burst(groups, messages, rate, batch=530)
    by_age = int(messages / rate / groups.max_seconds)
    assert len(committed) == by_age + 1  # and the rest at the close
    for size in committed[:-1]:  # each max_seconds of the burst (give or take the batch
        # its age is counted from, and the batch that makes it due), none cut by size
        assert rate * groups.max_seconds <= size <= rate * groups.max_seconds + 2 * 530
    # A pipe (at least once: the bound is what a crash may repeat) keeps its groups.
    piped = burst(CommitGroups(), messages, rate, batch=530)
    assert len(piped) >= messages // (spec.COMMIT_GROUP_MAX_MESSAGES // 2 + 530)
    # However long the burst, a group is at most half the bound.
    assert max(burst(groups, 2_000_000, rate, batch=5_000)) <= groups.max_messages // 2


# --- the thread that runs them (c2ws.commits.BackgroundCommits) --------------------------

WAIT = 30.0  # a deadline for each event awaited, never a pause


class _PositionedStore:
    """A store that, like FileCursors with an output file, says where its output ends at
    each acknowledgement and commits that position with the cursors.  ``written`` is
    how many messages the output holds; the first commit blocks until released."""

    def __init__(self) -> None:
        self.written = 0
        self.commits: list[tuple[dict[SubscriptionKey, int], object]] = []
        self.committed = threading.Condition()
        self.release_first = threading.Event()
        self.first_begun = threading.Event()
        self.on_position: Callable[[], None] = lambda: None

    def load(self) -> dict[SubscriptionKey, int]:
        return {}

    def position(self) -> int:
        self.on_position()
        return self.written

    def commit(self, cursors: Mapping[SubscriptionKey, int], position: object = None) -> None:
        if not self.commits:
            self.first_begun.set()
            assert self.release_first.wait(WAIT)
        with self.committed:
            self.commits.append((dict(cursors), position))
            self.committed.notify_all()

    def wait_for_commits(self, count: int) -> None:
        with self.committed:
            assert self.committed.wait_for(lambda: len(self.commits) >= count, WAIT)


def test_a_commit_pairs_cursors_with_the_position_of_the_same_acknowledgement() -> None:
    """The engine commits a batch's cursors into BackgroundCommits just before the stream
    reports the acknowledgement (which reads where the output ends).  A commit that
    began between the two took the new cursors with the previous position: after a
    kill -9 the output was cut back to that position while the state file counted the
    lines after it as written, and those messages were lost for good."""
    store = _PositionedStore()
    commits = BackgroundCommits(store, CommitGroups(max_messages=100, max_seconds=0.0))

    def write_and_acknowledge(seq: int) -> None:
        store.written = seq  # the batch's line is in the output
        commits.commit({A: seq})  # what Engine.acknowledge does
        commits.acknowledged(1)

    write_and_acknowledge(1)  # its commit starts and blocks in the store
    assert store.first_begun.wait(WAIT)
    write_and_acknowledge(2)  # pending while 1 is in flight

    def let_the_commit_thread_run() -> None:
        # Between the engine's commit of 3 and the acknowledgement of 3, the commit of
        # 1 ends and the thread begins the pending group (2's).
        store.on_position = lambda: None
        store.release_first.set()
        store.wait_for_commits(2)

    store.on_position = let_the_commit_thread_run
    write_and_acknowledge(3)
    commits.close()
    assert store.commits[0] == ({A: 1}, 1)
    for cursors, position in store.commits:
        assert isinstance(position, int) and cursors[A] <= position, store.commits
    assert store.commits[-1] == ({A: 3}, 3)  # and the last acknowledgement is durable


def test_counted_commits_pass_the_output_position_through() -> None:
    """--metrics wraps the --state store to count its commits: the position of the
    output file (>> FILE) must reach the store, not raise a TypeError."""
    store = _PositionedStore()
    store.release_first.set()
    health = StreamHealth([[A]])
    commits = BackgroundCommits(CountingCommits(store, health),
                                CommitGroups(max_messages=10, max_seconds=0.0))
    store.written = 4
    commits.commit({A: 4})
    commits.acknowledged(4)
    commits.close()
    assert store.commits == [({A: 4}, 4)]
