"""``c2ws.replay()``: a recording or NDJSON output back as typed messages, batches and
events, the way ``c2ws.stream()`` delivers a live run (no network: the recordings of a
live run are replayed in tests/test_record_replay.py)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import orjson
import pytest

import c2ws
from c2ws import events as ev
from c2ws.errors import ConfigError
from c2ws.streaming import StreamEnd

A, B = 12345678, 23456789
KEY = "replay-api-secret-key-77"


def envelope(seq_id: int, strategy_id: int = A, **payload: object) -> bytes:
    return orjson.dumps({
        "msg_type": "strategy.signal", "id": f"m{strategy_id}-{seq_id}", "seq_id": seq_id,
        "timestamp": "2026-01-01T00:00:00Z", "v": 4,
        "payload": {"StrategyId": strategy_id, "Side": "1", "OrderQuantity": 2,
                    "C2Symbol": {"FullSymbol": "@ESZ6"}, **payload},
    })


GAP = orjson.dumps({"msg_type": "gap", "id": "g1", "timestamp": "2026-01-01T00:00:01Z",
                    "v": 4, "payload": {"strategy_id": A, "channel": f"strategy.signal:{A}",
                                        "from": "1", "message": "more than 1000 missed"}})


def source(*lines: bytes) -> io.BytesIO:
    return io.BytesIO(b"".join(line + b"\n" for line in lines))


def test_typed_messages_and_the_other_events_in_the_recorded_order() -> None:
    log: list[object] = []
    lines = (envelope(1), envelope(2), envelope(2), envelope(5), b"not json",
             envelope(6), envelope(1, B))
    with c2ws.replay(source(*lines), api_key="",
                     on_event=lambda event: log.append(type(event))) as r:
        for msg in r:
            assert isinstance(msg, c2ws.Signal) and msg.side is c2ws.Side.BUY
            log.append((msg.strategy_id, msg.seq_id))
    assert log == [(A, 1), (A, 2), ev.SequenceBackwards, ev.SequenceJump, (A, 5), (A, 6),
                   (B, 1)]
    assert r.end_reason is StreamEnd.END and r.delivered == 5
    assert (r.usable, r.skipped, r.skip_reasons) == (6, 1, ["not JSON"])


def test_batches_carry_the_events_and_the_lines_byte_for_byte() -> None:
    spaced = envelope(2).replace(b'":', b'": ').replace(b",", b", ") + b"  "
    events: list[ev.Event] = []
    with c2ws.replay(source(envelope(1), spaced, envelope(2), envelope(3)), api_key="",
                     on_event=events.append) as r:
        batches = list(r.batches(include_empty=True))
    assert [len(batch) for batch in batches] == [1, 1, 0, 1]  # empty: after an event only
    assert [type(event) for batch in batches for event in batch.events] == [
        ev.StreamMessage] * 3
    assert [type(event) for event in events] == [ev.SequenceBackwards]
    assert b"".join(batch.ndjson() for batch in batches) == (
        envelope(1) + b"\n" + spaced + b"\n" + envelope(3) + b"\n")
    assert batches[1][0].line == spaced


def test_count_and_select_end_the_replay_and_open_gaps_come_last() -> None:
    lines = (envelope(1), GAP, envelope(1, B), envelope(2, B), envelope(3, B))
    with c2ws.replay(source(*lines), api_key="") as r:
        everything = [(type(msg), msg.strategy_id, msg.seq_id) for msg in r]
    assert everything == [(c2ws.Signal, A, 1), (c2ws.Signal, B, 1), (c2ws.Signal, B, 2),
                          (c2ws.Signal, B, 3), (c2ws.Gap, A, None)]
    with c2ws.replay(source(*lines), api_key="", count=2,
                     select=lambda msg: msg.strategy_id == B) as r:
        counted = list(r)
    assert [(type(m), m.strategy_id, m.seq_id) for m in counted] == [
        (c2ws.Signal, B, 1), (c2ws.Signal, B, 2), (c2ws.Gap, A, None)]
    gap = counted[-1]
    assert isinstance(gap, c2ws.Gap) and gap.after_seq_id == 1 and gap.before_seq_id is None
    assert r.end_reason is StreamEnd.COUNT and r.delivered == 2


def test_an_exception_of_on_event_propagates_and_nothing_is_lost() -> None:
    def fail(event: ev.Event) -> None:
        raise RuntimeError("on_event failed")

    r = c2ws.replay(source(envelope(1), envelope(3), envelope(4)), api_key="", on_event=fail)
    assert next(r).seq_id == 1
    with pytest.raises(RuntimeError, match="on_event failed"):
        next(r)  # the jump from 1 to 3
    assert [msg.seq_id for msg in r] == [3, 4]


def test_the_key_is_redacted_from_every_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    line = envelope(1, TradeNote=f"placed with {KEY}")
    assert b"****" in next(c2ws.replay(source(line), api_key=KEY)).line
    assert KEY.encode() in next(c2ws.replay(source(line), api_key="")).line
    # None: the key the settings name, as c2ws.stream() finds it.
    monkeypatch.setenv("C2WS_CONFIG", os.devnull)
    monkeypatch.setenv("C2_API_KEY", KEY)
    for name in ("C2WS_PROFILE", "C2WS_API_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    msg = next(c2ws.replay(source(line)))
    assert KEY not in msg.raw["payload"]["TradeNote"]
    monkeypatch.setenv("C2_API_KEY", "short")
    with pytest.raises(ConfigError, match="too short"):
        c2ws.replay(source(line))


def test_a_path_is_opened_at_once_and_closed_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / "out.ndjson"
    path.write_bytes(envelope(1) + b"\n" + envelope(2) + b"\n")
    r = c2ws.replay(path, api_key="")
    assert [msg.seq_id for msg in r] == [1, 2]
    assert r._file.closed  # the replay opened it, and closed it at the end
    given = source(envelope(1), envelope(2))
    with c2ws.replay(given, api_key="") as r:
        assert next(r).seq_id == 1
    assert not given.closed  # the caller's file is the caller's
    assert list(r) == [] and r.end_reason is StreamEnd.CLOSED  # closed: nothing more
    with pytest.raises(ConfigError, match="is a directory") as directory:
        c2ws.replay(tmp_path, api_key="")
    assert directory.value.param == "FILE"
    with pytest.raises(FileNotFoundError):
        c2ws.replay(tmp_path / "missing", api_key="")
    with pytest.raises(ConfigError, match="count must be at least 1"):
        c2ws.replay(path, api_key="", count=0)
    with pytest.raises(ConfigError, match="speed must be a positive number"):
        c2ws.replay(path, api_key="", speed=0)
