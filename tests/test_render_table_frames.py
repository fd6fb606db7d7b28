"""The table on the pass-through path: signal frames the session did not decode (runs
of a burst, lone messages with their header fields only) render byte for byte as the
same frames decoded in full, handled message by message, live or not, whatever they
hold (markup, escape sequences, wide characters, huge numbers, odd headers)."""

from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from json_strategies import signal_line
from rich.console import Console

from c2ws import events as ev
from c2ws import protocol, spec
from c2ws.events import SubscriptionKey
from c2ws.render import table as table_module
from c2ws.render.table import TableRenderer
from c2ws.stream_head import read_stream_head

KEY = SubscriptionKey(42, spec.CHANNEL_SIGNAL)
NOON = 1_800_000_000.0

# Server text a terminal must show literally: markup, escapes (JSON-escaped: a frame holds
# none raw), wide and combining characters (raw UTF-8: such a frame is not ASCII, so the
# session reads it in full and passes it on alone), bidi controls, huge numbers.
HOSTILE_PAIRS = [
    '"StrategyName":"[bold red]x[/]"', '"StrategyName":"\\u001b[2J\\u0007\\u009b6n"',
    '"StrategyName":"名前の長い戦略"', '"StrategyName":"e\u0301\u0301x"',
    '"C2Symbol":{"FullSymbol":"\\u202e@ESZ6"}', '"C2Symbol":{"FullSymbol":"[link=x]y"}',
    '"OrderQuantity":123456789012345678901234567890', '"Limit":1e300', '"Limit":1e400',
    '"OrderQuantity":-18446744073709551616', '"Side":"名"', '"OrderStatus":"Rejected"',
    '"OrderStatus":"Partially filled"', '"StrategyName":"a\\nb\\rc\\td"',
]


@st.composite
def frames(draw: st.DrawFn) -> list[bytes]:
    """Signal frames with consecutive seq_ids, some with a hostile field more."""
    lines: list[bytes] = []
    for seq in range(1, draw(st.integers(1, 9)) + 1):
        line = draw(signal_line(seq))
        for pair in draw(st.lists(st.sampled_from(HOSTILE_PAIRS), max_size=2)):
            line = line.replace(b'"payload":{', b'"payload":{' + pair.encode() + b",", 1)
        lines.append(line)
    return lines


def delivered(line: bytes) -> protocol.Envelope | None:
    """The message a session decoding payloads delivers for ``line``, and for a frame
    orjson refuses, its header fields (a session passing frames through delivers those);
    None for what no session delivers as a signal of KEY."""
    try:
        message = protocol.decode(line)
    except protocol.MalformedMessage:
        head = read_stream_head(line)
        message = None if head is None else head[0]
    if message is None or message.msg_type != spec.CHANNEL_SIGNAL or message.seq_id is None:
        return None
    return message


def passed_through(lines: list[bytes], run_sizes: list[int]) -> list[ev.Event]:
    """The events of a session passing frames through: consecutive frames whose header
    msgspec reads as one StreamRun (its sizes from ``run_sizes``), any other alone with
    its payload left empty."""
    handed: list[ev.Event] = []
    run: list[bytes] = []
    sizes = iter(run_sizes)

    def end_run() -> None:
        if run:
            last = read_stream_head(run[-1])
            assert last is not None
            handed.append(ev.StreamRun(KEY, b"".join(f + b"\n" for f in run), len(run),
                                       last[0].seq_id or 0))
            run.clear()

    size = next(sizes, 1)
    for line in lines:
        head = read_stream_head(line)
        if head is not None and b"\n" not in line:
            run.append(line)
            if len(run) >= size:
                end_run()
                size = next(sizes, 1)
            continue
        end_run()
        message = protocol.decode(line)
        message.payload, message.raw = {}, {}  # as ClientSession._on_stream leaves it
        handed.append(ev.StreamMessage(KEY, message, message.seq_id))
    end_run()
    return handed


def render(events: list[ev.Event], *, live: bool, batch: bool, width: int) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, height=40, force_terminal=live,
                      color_system="truecolor" if live else None)
    renderer = TableRenderer(console, live=live, clock=lambda: NOON, highlight_seconds=0,
                             rewraps=False)
    renderer.handle(ev.Connected(protocol.Envelope("connection.connected", {})))
    renderer.expect_subscriptions([KEY])
    if batch:
        renderer.handle_events(events)
    else:
        for event in events:
            renderer.handle(event)
    renderer.close()
    return out.getvalue()


@pytest.fixture(autouse=True)
def _no_redraw_but_at_close(monkeypatch: pytest.MonkeyPatch) -> None:
    """Live: no redraw during the test (the output does not depend on timing), and a
    small cap of signals per redraw, so that bursts go past it."""
    monkeypatch.setattr(table_module, "REFRESH_INTERVAL_SECONDS", 3600.0)
    monkeypatch.setattr(table_module, "MAX_SIGNALS_PER_REFRESH", 4)


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=frames(), run_sizes=st.lists(st.integers(1, 5), max_size=4),
       live=st.booleans(), width=st.sampled_from([60, 100, 160]))
def test_frames_passed_through_render_as_decoded(
    lines: list[bytes], run_sizes: list[int], live: bool, width: int
) -> None:
    decoded: list[ev.Event] = []
    kept: list[bytes] = []
    for line in lines:
        message = delivered(line)
        if message is not None:
            decoded.append(ev.StreamMessage(KEY, message, message.seq_id))
            kept.append(line)
    expected = render(decoded, live=live, batch=False, width=width)
    handed = passed_through(kept, run_sizes)
    if any(type(event) is ev.StreamRun for event in handed):
        event("a run")
    if any(type(event) is ev.StreamMessage for event in handed):
        event("a message alone")
    assert render(handed, live=live, batch=True, width=width) == expected
    # The expanded events (what a renderer without handle_events gets) as well.
    assert render(ev.expand_runs(handed), live=live, batch=False, width=width) == expected


def test_a_burst_past_the_cap_shows_the_newest_and_counts_the_rest() -> None:
    """Runs of signals (no redraw between them) keep the newest MAX_SIGNALS_PER_REFRESH
    and count the others, as message by message."""
    lines = [(b'{"msg_type":"strategy.signal","seq_id":%d,"timestamp":"2027-01-15T08:00:00Z",'
              b'"payload":{"StrategyId":42,"Side":"1","OrderQuantity":%d,'
              b'"C2Symbol":{"FullSymbol":"@ESZ6"}}}') % (seq, seq) for seq in range(1, 12)]
    decoded: list[ev.Event] = [ev.StreamMessage(KEY, protocol.decode(line), seq)
                               for seq, line in enumerate(lines, 1)]
    handed = passed_through(lines, [3, 1, 5, 2])
    assert [type(event) for event in handed] == [ev.StreamRun] * 4
    expected = render(decoded, live=True, batch=False, width=120)
    assert "7 more signals came faster than a terminal can show them" in expected
    assert render(handed, live=True, batch=True, width=120) == expected


def test_a_frame_orjson_cannot_hold_shows_its_header_fields() -> None:
    """Valid JSON with a number beyond a double's range: a session passing frames through
    delivers it (one decoding payloads reported it as malformed); the table shows its
    seq_id and time, as -o csv its header fields."""
    line = (b'{"msg_type":"strategy.signal","seq_id":7,"timestamp":"2027-01-15T08:00:00Z",'
            b'"payload":{"StrategyId":42,"Side":"1","Huge":1e400}}')
    text = render(passed_through([line], [1]), live=False, batch=True, width=120)
    assert text.splitlines()[-1].split() == ["08:00:00", "42", "7"]

