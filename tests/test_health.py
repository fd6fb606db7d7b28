"""The run's health, sans-I/O (c2ws/monitor/health.py): the "reconnected" line, heartbeats
per connection and the deadline /healthz and systemd's watchdog go by, READY, the
counters the metrics show; and the systemd notifier over a socket the test binds."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from c2ws import events as ev
from c2ws import spec
from c2ws.events import ConnectionEnd, EndReason, SubscriptionKey
from c2ws.monitor.health import CountingCommits, Reconnected, StreamHealth
from c2ws.monitor.notify import SystemdNotifier
from c2ws.protocol import Envelope

S1 = SubscriptionKey(1, spec.CHANNEL_SIGNAL)
P1 = SubscriptionKey(1, spec.CHANNEL_POSITIONS)
S2 = SubscriptionKey(2, spec.CHANNEL_SIGNAL)
LOST = ConnectionEnd(EndReason.LOST, "the connection broke")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def env(msg_type: str) -> Envelope:
    return Envelope(msg_type, {})


def message(key: SubscriptionKey, seq: int) -> ev.StreamMessage:
    return ev.StreamMessage(key, Envelope(key.channel, {}, None, seq), seq)


def confirmed(key: SubscriptionKey) -> ev.SubscriptionConfirmed:
    return ev.SubscriptionConfirmed(key, "r", env("subscription.ack"))


def rejected(key: SubscriptionKey) -> ev.SubscriptionRejected:
    return ev.SubscriptionRejected(key, "r", (), env("error"))


def connected(shard: int = 0) -> ev.Connected:
    return ev.Connected(env("connection.connected"), shard)


def ended(shard: int = 0) -> ev.ConnectionEnded:
    return ev.ConnectionEnded(shard, LOST, True)


def make(plan: list[list[SubscriptionKey]] | None = None, **options: Any) -> tuple[
        StreamHealth, Clock]:
    clock = Clock()
    return StreamHealth(plan or [[S1, P1]], clock=clock, **options), clock


def feed(health: StreamHealth, *events: ev.Event) -> list[Reconnected]:
    return [line for event in events if (line := health.observe(event)) is not None]


def test_a_connection_that_comes_back_says_so_once_it_has_caught_up() -> None:
    health, clock = make()
    feed(health, connected(), confirmed(S1), confirmed(P1))
    assert health.ready and health.due(0) == []  # the first connection: nothing to say
    clock.now += 5
    feed(health, ended(), ev.Reconnecting(0, 1, 0.5, LOST))
    clock.now += 1.5
    feed(health, ev.Reconnecting(0, 2, 1.0, LOST))
    clock.now += 2
    feed(health, connected(), confirmed(S1))
    health.written([message(S1, 4), message(S1, 5), message(S1, 6)])  # the replay
    assert health.due(0) == []  # positions not answered yet: the replay may go on
    feed(health, confirmed(P1))
    assert health.due(2) == []  # two more received, not yet written
    health.written([message(S1, 7), message(P1, 9)])
    (line,) = health.due(0)
    assert line == Reconnected(0, 3.5, 2, renewed=2, rejected=0, replayed=4)
    assert line.text() == ("connection 1 reconnected after 3.5 s (attempt 2): 2 subscription(s) "
                           "renewed; 4 missed signal(s) replayed")
    assert health.due(0) == [] and not health.coming_back


def test_the_line_comes_at_the_latest_a_replay_window_after_the_answers() -> None:
    health, clock = make([[S1]])
    feed(health, connected(), confirmed(S1), ended(), connected(), confirmed(S1))
    assert health.due(10) == []
    clock.now += spec.REPLAY_WINDOW_SECONDS
    assert [line.shard for line in health.due(10)] == [0]


def test_a_connection_that_ends_again_first_says_it_came_back_before_it_ends() -> None:
    health, _ = make([[S1], [S2]])
    feed(health, connected(0), connected(1), confirmed(S1), confirmed(S2))
    feed(health, ended(1), connected(1), confirmed(S2))
    health.written([message(S2, 3)])
    (line,) = feed(health, ended(1))
    assert (line.shard, line.replayed, line.first) == (1, 1, False)
    assert health.finish() == []


def test_a_first_connection_after_failed_attempts_says_connected_and_a_rejection_counts() -> None:
    health, clock = make()
    feed(health, ev.ConnectionEnded(0, LOST, False), ev.Reconnecting(0, 1, 0.5, LOST))
    clock.now += 7
    feed(health, connected(), confirmed(S1), rejected(P1))
    (line,) = health.due(0)
    assert line.text() == ("connection 1 connected after 7.0 s (attempt 1): 1 subscription(s) "
                           "confirmed, 1 rejected; 0 missed signal(s) replayed")
    assert health.ready


def test_positions_only_say_they_resume_live() -> None:
    health, _ = make([[P1]])
    feed(health, connected(), confirmed(P1), ended(), connected(), confirmed(P1))
    (line,) = health.due(0)
    assert line.text().endswith("1 subscription(s) renewed; positions resume live")


def test_heartbeats_per_connection_decide_health() -> None:
    health, clock = make([[S1], [S2]], heartbeat_deadline=40)
    feed(health, connected(0), connected(1))
    assert health.snapshot().unhealthy() == []  # 40 s from the start for the first one
    clock.now += 30
    feed(health, ev.HeartbeatAnswered(env("heartbeat"), 0),
         ev.HeartbeatAnswered(env("heartbeat"), 1))
    clock.now += 39
    feed(health, ev.HeartbeatAnswered(env("heartbeat"), 0))
    assert health.snapshot().unhealthy() == []
    clock.now += 2
    assert health.snapshot().unhealthy() == [
        "no heartbeat on connection 2 for 41 s (more than 40 s)"]
    feed(health, ended(1))
    assert health.snapshot().unhealthy()[0].endswith("; it is down")


def test_the_counters_the_metrics_show() -> None:
    health, _ = make([[S1, P1], [S2]], count_streams=True)
    feed(health, connected(0), connected(1), confirmed(S1), rejected(P1), confirmed(S2))
    gap = ev.GapReported(S1, 3, None, 9, None, "limit", env("gap"))
    reset = ev.SequenceReset(S2, 50, None, 1, None, 1, 0)
    health.written([message(S1, 1), message(S1, 2), message(S2, 7)])
    health.written([gap, message(S1, 9), reset, message(S2, 1)])
    feed(health, ev.DuplicateDropped(S1, 2), ev.DuplicateDropped(S1, 1),
         ev.UnexpectedStream(5, spec.CHANNEL_SIGNAL), ev.MalformedFrame("bad", 3),
         ev.UnknownMessage(env("odd")), ended(1),
         ev.Reconnecting(1, 1, 0.5, LOST), ev.Reconnecting(1, 2, 9, ConnectionEnd(EndReason.BUSY)))
    health.committed()
    snap = health.snapshot()
    assert snap.written == 5
    assert snap.written_per_stream == {S1: 3, S2: 2}
    assert snap.gaps == {S1: 1} and snap.resets == {S2: 1}
    assert snap.dropped == {"duplicate": 2, "not_subscribed": 1, "malformed": 1,
                            "unknown_type": 1}
    assert snap.reconnects == {"lost": 1, "busy": 1}
    assert (snap.requested, snap.active, snap.rejected, snap.commits) == (3, 1, 1, 1)
    assert [c.up for c in snap.connections] == [True, False]
    assert health.summary(snap) == ("1/2 connection(s) up; subscriptions 1/3, 1 rejected; "
                                    "5 message(s) written")


def run(key: SubscriptionKey, first: int, last: int) -> ev.StreamRun:
    """Messages ``first`` to ``last`` of ``key`` as one event (a burst, issue 22)."""
    lines = b"".join(b'{"seq_id":%d}\n' % seq for seq in range(first, last + 1))
    return ev.StreamRun(key, lines, last - first + 1, last)


def test_runs_count_as_their_messages_in_every_counter() -> None:
    """A burst written as StreamRun events (NDJSON's batches): the written count, the
    per-stream counts and a reconnected connection's replayed signals."""
    health, _ = make([[S1, P1], [S2]], count_streams=True)
    feed(health, connected(0), connected(1), confirmed(S1), confirmed(P1), confirmed(S2))
    health.written([run(S1, 1, 4), message(S2, 1), run(P1, 1, 2)])
    snap = health.snapshot()
    assert snap.written == 7
    assert snap.written_per_stream == {S1: 4, S2: 1, P1: 2}
    feed(health, ended(0), connected(0), confirmed(S1), confirmed(P1))
    health.written([run(S1, 5, 7), run(P1, 3, 3)])
    (line,) = health.due(0)
    assert line.replayed == 3
    assert health.snapshot().written == 11


def test_not_ready_until_every_connection_has_its_answers() -> None:
    health, _ = make([[S1], [S2]])
    feed(health, connected(0), confirmed(S1), connected(1))
    assert not health.ready
    feed(health, rejected(S2))
    assert health.ready


def test_counting_commits_passes_everything_through() -> None:
    class Store:
        commits_each_message = True

        def __init__(self) -> None:
            self.committed: list[dict[SubscriptionKey, int]] = []

        def load(self) -> dict[tuple[int, str], int]:
            return {(1, spec.CHANNEL_SIGNAL): 4}

        def commit(self, cursors: dict[SubscriptionKey, int]) -> None:
            self.committed.append(dict(cursors))

    health, _ = make()
    store = Store()
    counting = CountingCommits(store, health)
    assert counting.load() == {(1, spec.CHANNEL_SIGNAL): 4}
    assert counting.commits_each_message is True
    counting.commit({S1: 5})
    assert store.committed == [{S1: 5}] and health.snapshot().commits == 1


def test_the_systemd_notifier_sends_datagrams_to_the_socket_named(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(path))
    receiver.settimeout(5)
    try:
        notifier = SystemdNotifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "90000000"})
        assert notifier.enabled and notifier.watchdog == 90.0
        assert notifier.notify("READY=1", "STATUS=two\nlines")
        assert receiver.recv(4096) == b"READY=1\nSTATUS=two lines"
        receiver.close()
        path.unlink()
        assert not notifier.notify("WATCHDOG=1")  # the socket went away: said once
        assert notifier.failure is not None and not notifier.enabled
    finally:
        receiver.close()
    assert not SystemdNotifier({}).enabled
    assert SystemdNotifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "5",
                            "WATCHDOG_PID": "1"}).watchdog is None  # not this process
