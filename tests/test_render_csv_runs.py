"""-o csv|tsv on the burst path: a run of signal frames passed through (payloads not
decoded by the session) gives byte for byte the rows of the same frames decoded in full,
whatever they hold (c2ws.render.tabular, c2ws.speedups.signal_values)."""

from __future__ import annotations

import io

import hypothesis
from hypothesis import given, settings
from hypothesis import strategies as st
from json_strategies import signal_line

from c2ws import events as ev
from c2ws import protocol, spec
from c2ws.events import SubscriptionKey
from c2ws.render.records import COMBINED_COLUMNS, SIGNAL_COLUMNS
from c2ws.render.tabular import DelimitedRenderer, _decoded
from c2ws.stream_head import read_stream_head

KEY = SubscriptionKey(42, spec.CHANNEL_SIGNAL)
PROJECTIONS = [COMBINED_COLUMNS, SIGNAL_COLUMNS, ("symbol", "qty", "limit"),
               ("seq", "payload.Info"), ("msg_type", "payload"),
               ("side", "kind", "stop", "signal_id")]
CHANNELS = [None, {spec.CHANNEL_SIGNAL}, {spec.CHANNEL_POSITIONS}]


def rendered(columns: tuple[str, ...], delimiter: str, channels: set[str] | None,
             events: list[ev.Event]) -> bytes:
    out = io.BytesIO()
    renderer = DelimitedRenderer(out, columns, delimiter=delimiter, channels=channels)
    renderer.handle_events(events)  # type: ignore[arg-type]
    renderer.flush()
    return out.getvalue()


@settings(max_examples=1500)
@given(lines=st.lists(signal_line(), min_size=1, max_size=4),
       columns=st.sampled_from(PROJECTIONS), delimiter=st.sampled_from([",", "\t"]),
       channels=st.sampled_from(CHANNELS))
def test_a_run_renders_as_its_frames_decoded(lines: list[bytes], columns: tuple[str, ...],
                                             delimiter: str, channels: set[str] | None) -> None:
    """The rows of a run (read by the compiled reader where it can) are the rows of the
    same frames decoded as a session decoding payloads decodes them (and, for a frame
    orjson refuses, its header fields alone)."""
    run = ev.StreamRun(KEY, b"".join(line + b"\n" for line in lines), len(lines), len(lines))
    decoded = [ev.StreamMessage(KEY, _decoded(line), 1) for line in lines]
    fast = rendered(columns, delimiter, channels, [run])
    assert fast == rendered(columns, delimiter, channels, decoded)  # type: ignore[arg-type]
    if all(_plain(line) for line in lines):
        hypothesis.event("every frame decodes with orjson")


def _plain(line: bytes) -> bool:
    try:
        protocol.decode(line)
    except protocol.MalformedMessage:
        return False
    return True


@settings(max_examples=300)
@given(lines=st.lists(signal_line(), min_size=1, max_size=3),
       columns=st.sampled_from(PROJECTIONS))
def test_messages_passed_through_render_as_decoded(lines: list[bytes],
                                                   columns: tuple[str, ...]) -> None:
    """A lone message passed through (header fields only, as a session that does not
    decode payloads delivers it) renders as the decoded message, by handle and by
    handle_events."""
    heads = [read_stream_head(line) for line in lines]
    passed = [ev.StreamMessage(KEY, head[0] if head else _decoded(line), 1)
              for line, head in zip(lines, heads, strict=True)]
    decoded = [ev.StreamMessage(KEY, _decoded(line), 1) for line in lines]
    expected = rendered(columns, ",", None, decoded)  # type: ignore[arg-type]
    assert rendered(columns, ",", None, passed) == expected  # type: ignore[arg-type]
    out = io.BytesIO()
    renderer = DelimitedRenderer(out, columns)
    for event in passed:
        renderer.handle(event)
    renderer.flush()
    assert out.getvalue() == expected


def test_a_frame_orjson_cannot_hold_is_a_row_of_its_header() -> None:
    """Valid JSON with a number beyond a double's range: a session passing frames through
    delivers it (a decoding one reported it as malformed and skipped it); its header
    fields make its row."""
    line = (b'{"msg_type":"strategy.signal","seq_id":7,"timestamp":"2027-01-15T08:00:00Z",'
            b'"payload":{"StrategyId":42,"Side":"1","OrderQuantity":3,"Huge":1e400,'
            b'"C2Symbol":{"FullSymbol":"@ESZ6"}}}')
    run = ev.StreamRun(KEY, line + b"\n", 1, 7)
    text = rendered(SIGNAL_COLUMNS, ",", {spec.CHANNEL_SIGNAL}, [run]).decode()
    assert text.splitlines()[1] == "2027-01-15T08:00:00Z,42,,7,,,,,,,,,,"
