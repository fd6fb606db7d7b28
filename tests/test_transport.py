"""The socket shell's pieces that need no server: the hand-off and the traffic log.
(Frame reading is tested with the connection, in test_connection.py.)"""

from __future__ import annotations

import threading

from c2ws.buffer import BoundedHandoff
from c2ws.transport import TrafficLog


def test_handoff_refuses_past_its_bound_except_forced_items() -> None:
    handoff: BoundedHandoff[int] = BoundedHandoff(2)
    assert handoff.put(1) and handoff.put(2)
    assert not handoff.put(3)
    assert handoff.put(4, force=True)
    assert [handoff.get(0), handoff.get(0), handoff.get(0), handoff.get(0)] == [1, 2, 4, None]


def test_handoff_put_waits_for_room_made_by_the_consumer() -> None:
    handoff: BoundedHandoff[int] = BoundedHandoff(1)
    assert handoff.put(1)
    threading.Timer(0.05, lambda: handoff.get(0)).start()
    assert handoff.put(2, wait=10)
    assert handoff.get(0) == 2


def test_closing_the_handoff_releases_a_waiting_producer() -> None:
    handoff: BoundedHandoff[int] = BoundedHandoff(1)
    assert handoff.put(1)
    threading.Timer(0.05, handoff.close).start()
    assert not handoff.put(2, wait=30)
    assert not handoff.put(3)
    assert handoff.put(4, force=True)
    assert [handoff.get(0), handoff.get(0)] == [1, 4]


def test_handoff_get_waits_for_a_producer() -> None:
    handoff: BoundedHandoff[str] = BoundedHandoff(5)
    threading.Timer(0.05, lambda: handoff.put("late")).start()
    assert handoff.get(10) == "late"


def test_traffic_log_redacts_the_key() -> None:
    lines: list[str] = []
    log = TrafficLog(secret="s3cret-key", sink=lines.append, enabled=True)
    log.frame(">", b'{"note":"s3cret-key"}')
    assert lines == ['> {"note":"****"}']
    TrafficLog(secret="k", sink=lines.append).frame(">", "quiet")
    assert len(lines) == 1
