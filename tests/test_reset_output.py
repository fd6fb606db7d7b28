"""How a sequence reset reaches the output: the ``sequence.reset`` line and its reading
back, the other formats and filters, the engine's batches and cursors, and ``c2ws
replay`` of an output holding one.  (The session's rule: tests/test_session.py; the
output tail: tests/test_state.py; end to end: tests/test_resilience_e2e.py.)"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given
from json_strategies import json_values
from rich.console import Console
from test_run_batches import reset, stream_message

from c2ws import events as ev
from c2ws import spec
from c2ws.cli.run import SubscribeRun
from c2ws.cursors import FileCursors, StreamIdentity
from c2ws.delivery.dedupe import HeldAside, StreamFilter
from c2ws.delivery.state import StateFile, StateIdentity
from c2ws.engine import Engine, EngineConfig
from c2ws.events import SubscriptionKey
from c2ws.recording import parse_line
from c2ws.render.diagnostics import Diagnostics
from c2ws.render.filters import FilteredRenderer, MessageFilter
from c2ws.render.ndjson import NdjsonRenderer, read_reset_object, reset_object
from c2ws.render.objects import output_objects
from c2ws.render.records import Projection
from c2ws.render.tabular import DelimitedRenderer
from c2ws.replayer import Replayer
from c2ws.streaming import Batch

KEY = SubscriptionKey(1, spec.CHANNEL_SIGNAL)
OTHER = SubscriptionKey(2, spec.CHANNEL_SIGNAL)
RESET = ev.SequenceReset(KEY, last_seq=1_000_000, last_timestamp="2026-11-25T09:00:01Z",
                         next_seq=4, next_timestamp="2026-11-25T09:30:12Z", released=2, cursor=3)


def test_the_reset_line_names_both_numberings_like_the_gap_line_and_reads_back() -> None:
    out = io.BytesIO()
    renderer = NdjsonRenderer(out)
    renderer.handle(RESET)
    renderer.flush()
    (line,) = out.getvalue().splitlines()
    assert orjson.loads(line) == {"msg_type": "sequence.reset", "reset": {
        "strategy_id": 1, "channel": "strategy.signal",
        "after_seq_id": 1_000_000, "after_timestamp": "2026-11-25T09:00:01Z",
        "first_seq_id": 4, "first_timestamp": "2026-11-25T09:30:12Z", "released": 2}}
    assert read_reset_object(orjson.loads(line)) == RESET


@given(json_values)
def test_reading_a_reset_line_back_is_total(value: Any) -> None:
    found = read_reset_object(value)
    assert found is None or (found.next_seq > 0 and found.cursor == found.next_seq - 1)
    found = read_reset_object({"msg_type": "sequence.reset", "reset": value})
    assert found is None or found.key.strategy_id > 0


def test_json_and_fields_print_it_whole_csv_leaves_it_to_stderr() -> None:
    assert output_objects(RESET, include_control=False, projection=None) == [reset_object(RESET)]
    projected = output_objects(RESET, include_control=False, projection=Projection(["seq"]))
    assert projected == [reset_object(RESET)]  # never projected away
    out = io.BytesIO()
    csv = DelimitedRenderer(out, ["seq"], channels=[spec.CHANNEL_SIGNAL])
    csv.handle(RESET)
    csv.flush()  # the header is written with the first flush
    assert out.getvalue() == b"seq\n"  # the header only: no row for the reset


def test_a_filter_passes_the_resets_of_the_streams_it_selects_only() -> None:
    out = io.BytesIO()
    renderer = FilteredRenderer(NdjsonRenderer(out), MessageFilter.of(strategies=[2]))
    renderer.handle(RESET)
    renderer.handle(reset(OTHER, 9))
    renderer.flush()
    assert [orjson.loads(line)["reset"]["strategy_id"] for line in out.getvalue().splitlines()] \
        == [2]


def engine(**overrides: Any) -> Engine:
    settings: dict[str, Any] = {"url": "ws://127.0.0.1:9/ws", "api_key": "reset-test-key",
                                "keys": [KEY, OTHER], "reconnect": False}
    settings.update(overrides)
    return Engine(EngineConfig(**settings))


def test_a_reset_ends_its_batch_and_moves_the_written_cursor_down() -> None:
    """The reset line is written and committed before what follows it, so a crash cannot
    leave the old numbering in the state file behind new lines in the output."""
    running = engine()
    running.written = {KEY: 1_000_000, OTHER: 7}
    running.handoff.put([stream_message(OTHER, 8, False), RESET,
                         stream_message(KEY, 4, False), stream_message(KEY, 5, False)])
    first = running.next_batch(timeout=0)
    assert first == [stream_message(OTHER, 8, False), RESET]
    running.acknowledge(first)
    assert running.written == {KEY: 3, OTHER: 8}  # just before the new numbering
    rest = running.next_batch(timeout=0)
    assert [e.cursor for e in rest if isinstance(e, ev.StreamMessage)] == [4, 5]
    running.acknowledge(rest)
    assert running.written == {KEY: 5, OTHER: 8}
    assert running.handoff.backlog == 0


def test_a_reset_in_the_output_tail_outranks_an_older_numbering_in_the_state_file(
    tmp_path: Path,
) -> None:
    """Killed after the reset line was written and before the state was committed: the
    state file still holds the old numbering; the output's is the one to resume from."""
    state = tmp_path / "state.json"
    url, api_key = "ws://127.0.0.1:9/ws", "reset-test-key"
    with StateFile(state, StateIdentity.of(url, api_key)) as stored:
        stored.commit({KEY: 1_000_000, OTHER: 7})
    output = tmp_path / "out.ndjson"
    envelope = orjson.dumps({"msg_type": spec.CHANNEL_SIGNAL, "seq_id": 5,
                             "payload": {"StrategyId": OTHER.strategy_id}})
    output.write_bytes(envelope + b"\n" + orjson.dumps(reset_object(RESET)) + b"\n")
    fd = os.open(output, os.O_WRONLY | os.O_APPEND)
    cursors = FileCursors(state, output=fd)
    try:
        cursors.open(StreamIdentity.of(url, api_key, [KEY, OTHER]))
        assert cursors.load() == {KEY: 3, OTHER: 7}  # OTHER: the higher, as before
        running = engine(url=url, api_key=api_key)
        running._store = cursors
        with running:
            assert running.written == {KEY: 3, OTHER: 7}
            assert running._filters[0].resume_from(KEY) == 3
    finally:
        cursors.close()
        os.close(fd)


def test_replaying_output_with_a_reset_line_shows_what_the_run_showed() -> None:
    def envelope(seq: int) -> bytes:
        return orjson.dumps({"msg_type": spec.CHANNEL_SIGNAL, "seq_id": seq,
                             "timestamp": "2026-11-25T09:00:00Z", "payload": {"StrategyId": 1}})

    lines = [envelope(n) for n in (4, 5)] + [orjson.dumps(reset_object(reset(KEY, 5)))] + [
        envelope(n) for n in (1, 2)]
    replayer = Replayer()
    found: list[ev.Event] = []
    for raw in lines:
        entry = parse_line(raw)
        assert entry is not None
        found.extend(replayer.feed(entry))
    found.extend(replayer.finish())
    assert [(type(e).__name__, getattr(e, "cursor", None)) for e in found] == [
        ("StreamMessage", 4), ("StreamMessage", 5), ("SequenceReset", 0),
        ("StreamMessage", 1), ("StreamMessage", 2)]


def test_messages_still_held_aside_when_the_run_ends_are_said_on_stderr() -> None:
    """They are not written, and a server that restarted its numbering will not replay
    them: never in silence."""
    stream_filter = StreamFilter([KEY], {KEY: 10})
    cursor = stream_filter.track(KEY)
    for seq in (1, 2):
        message = stream_message(KEY, seq, False).message
        StreamFilter.admit(cursor, message, seq, replaying=True, now=1.0, out=[])
    assert stream_filter.held_aside() == [HeldAside(KEY, 10, 2, 1, 2)]

    class Stopped:
        def unresolved_gaps(self) -> Batch:
            return Batch([])

        def held_aside(self) -> list[HeldAside]:
            return stream_filter.held_aside()

    err = io.StringIO()
    run = SubscribeRun(Stopped(), NdjsonRenderer(io.BytesIO()),  # type: ignore[arg-type]
                       Diagnostics(Console(file=err, width=400)))
    run._finish()
    assert ("stopped while 2 message(s) of strategy.signal:1 at or below its cursor (seq 1 "
            "to 2, cursor 10) were held aside, not written") in err.getvalue()
