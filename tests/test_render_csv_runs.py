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
from c2ws import protocol, spec, speedups
from c2ws.events import SubscriptionKey
from c2ws.render import cells
from c2ws.render.cells import values_lines
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
    # Again, the memos of the cells now holding these values: the compiled writer
    # (values_lines) writes the lines it can itself.
    assert rendered(columns, delimiter, channels, [run]) == fast
    if columns in (COMBINED_COLUMNS, SIGNAL_COLUMNS) and speedups.COMPILED:
        found = speedups.signal_values(run.ndjson)
        picked = tuple(COMBINED_COLUMNS.index(name) for name in columns)
        if any(line is not None for line in values_lines(found, picked, delimiter)):
            hypothesis.event("lines written by values_lines")
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


# --- values_lines: the compiled writer of signal lines ----------------------------------
# Values as c2ws.speedups.signal_values gives them (scalars, the symbols a tuple), hostile:
# quotes, delimiters, line breaks, escape sequences, non-ASCII, spaces at the ends, huge
# and negative numbers, floats vs ints, bools, NaN and infinities, halves at the 8th
# decimal (k / 2**n); codes and names from a small set, so that the memos hold them.
_TEXTS = st.sampled_from(["1", "2", "O", "C", "A b", "@ESZ6", "é", "名前", 'a"b', "a,b",
                          "a\tb", "a\nb", "\x1b[2Jx", " x ", "", "x" * 200, "\u202e1"])
_NUMBERS = st.one_of(st.integers(), st.integers(min_value=-(2**70), max_value=2**70),
                     st.floats(), st.booleans(),
                     st.builds(lambda k, n: k / 2**n, st.integers(-(10**12), 10**12),
                               st.integers(0, 40)))
_VALUE = st.one_of(st.none(), _TEXTS, _NUMBERS)
_TIMES = st.one_of(st.none(), _TEXTS, st.sampled_from(["2027-01-15T08:00:00Z",
                                                       "2027-01-15T08:00:00.123456+00:00"]),
                   st.text(max_size=45))
_CODES = st.one_of(st.none(), st.sampled_from(["1", "2", "O", "C", "0", "A b", "é", "名前"]))
_INTS = st.one_of(st.integers(min_value=1, max_value=2**63 - 1),
                  st.integers(min_value=-(2**63), max_value=2**63 - 1), st.integers())
_PRICES = st.one_of(st.none(), st.floats(min_value=1e-4, max_value=1e15),
                    st.floats(min_value=-1e15, max_value=-1e-4), _NUMBERS)
# Values the compiled writer writes itself (when the memos hold them) ...
_USUAL = st.tuples(
    _INTS, st.one_of(st.none(), st.sampled_from(["", "2027-01-15T08:00:00Z"]), _TIMES),
    _INTS, _CODES, _CODES, _CODES, st.one_of(st.none(), _INTS), _CODES, _PRICES, _PRICES,
    _CODES, _CODES, _INTS,
    st.one_of(st.lists(_CODES.filter(bool), max_size=2), st.lists(_VALUE, max_size=3)).map(tuple))
# ... with any of them replaced by anything.
_VALUES = st.builds(
    lambda values, changes: tuple(
        changes.get(index, value) for index, value in enumerate(values)),
    _USUAL, st.dictionaries(st.sampled_from([0, *range(2, 13)]), _VALUE, max_size=2))


@settings(max_examples=3000)
@given(found=st.lists(st.one_of(st.none(), _USUAL, _VALUES), min_size=1, max_size=4),
       columns=st.sampled_from([COMBINED_COLUMNS, SIGNAL_COLUMNS, ("symbol", "qty", "limit"),
                                ("limit",), ("time",), ("side", "kind", "stop", "signal_id")]),
       delimiter=st.sampled_from([",", "\t", ",", "\t", "é", "1"]),
       warm=st.sampled_from([True, True, True, False]))
def test_values_lines_are_the_rows_joined(found: list[tuple[object, ...] | None],
                                          columns: tuple[str, ...], delimiter: str,
                                          warm: bool) -> None:
    """Each line values_lines writes is the row c2ws.render.cells makes of the same values
    (picked), joined as DelimitedRenderer writes a row that needs no quoting; a row that
    needs quoting (or makes an empty line) it leaves to the renderer (None).  Without
    the compiled core it always leaves the row (None)."""
    picked = tuple(COMBINED_COLUMNS.index(name) for name in columns)
    if warm:  # the memos hold these values' cells (as after a first row of them)
        for values in found:
            if values is not None:
                cells._row(KEY, values)
    lines = values_lines(found, picked, delimiter)  # type: ignore[arg-type]
    assert len(lines) == len(found)
    assert speedups.py_signal_lines(found, picked, delimiter, "signal", {}, {}, {}) == (
        [None] * len(found))  # type: ignore[arg-type]
    for values, line in zip(found, lines, strict=True):
        if values is None or not speedups.COMPILED:
            assert line is None
            continue
        if line is None:
            continue
        row = [cells._row(KEY, values)[index] for index in picked]
        joined = delimiter.join(row)
        assert '"' not in joined and joined.count(delimiter) == len(row) - 1 and joined
        assert line == joined
        hypothesis.event("written")


def test_values_lines_write_the_bench_feed() -> None:
    """Not a timing: the bench's frames (bench/wire.py) are written by the compiled
    writer itself once the memos hold their names, codes and symbols."""
    if not speedups.COMPILED:
        return
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    try:
        import wire
    finally:
        sys.path.pop(0)
    lines = [wire.envelope_prefix(index + 1, wire.utc_stamp()) + payload + b"}"
             for index, payload in enumerate(wire.payload_pool(42, size=200))]
    run = ev.StreamRun(KEY, b"".join(line + b"\n" for line in lines), len(lines), len(lines))
    first = rendered(COMBINED_COLUMNS, ",", None, [run])
    found = speedups.signal_values(run.ndjson)
    assert None not in values_lines(found, tuple(range(len(COMBINED_COLUMNS))), ",")
    assert rendered(COMBINED_COLUMNS, ",", None, [run]) == first
