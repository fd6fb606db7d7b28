"""-o csv|tsv on the burst path: a run of signal frames passed through (payloads not
decoded by the session) gives byte for byte the rows of the same frames decoded in full,
whatever they hold (c2ws.render.tabular, c2ws.speedups.signal_csv)."""

from __future__ import annotations

import io
import json

import hypothesis
from hypothesis import given, settings
from hypothesis import strategies as st
from json_strategies import signal_line
from test_speedups import SIGNAL_LINE, general_signal_values, mangled

from c2ws import events as ev
from c2ws import protocol, spec, speedups
from c2ws.events import SubscriptionKey
from c2ws.render import cells
from c2ws.render.cells import run_lines
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
    # (run_lines) writes the lines it can itself.
    assert rendered(columns, delimiter, channels, [run]) == fast
    if columns in (COMBINED_COLUMNS, SIGNAL_COLUMNS) and speedups.COMPILED:
        picked = tuple(COMBINED_COLUMNS.index(name) for name in columns)
        if any(type(part) is str for part in run_lines(run.ndjson, picked, delimiter)):
            hypothesis.event("lines written by run_lines")
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


# --- run_lines: the compiled writer of signal lines -------------------------------------
# Values of a signal line's row (as general_signal_values reads them: scalars, the symbols
# a tuple), hostile:
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
_NAMES = st.sampled_from(["1", "2", "O", "C", "0", "A b", "é", "名前"])
_CODES = st.one_of(st.none(), _NAMES)
_INTS = st.one_of(st.integers(min_value=1, max_value=2**63 - 1),
                  st.integers(min_value=-(2**63), max_value=2**63 - 1), st.integers())
_PRICES = st.one_of(st.none(), st.floats(min_value=1e-4, max_value=1e15),
                    st.floats(min_value=-1e15, max_value=-1e-4), _NUMBERS)
# Values the compiled writer writes itself (when the memos hold them) ...
_USUAL = st.tuples(
    _INTS, st.one_of(st.none(), st.sampled_from(["", "2027-01-15T08:00:00Z"]), _TIMES),
    _INTS, _CODES, _CODES, _CODES, st.one_of(st.none(), _INTS), _CODES, _PRICES, _PRICES,
    _CODES, _CODES, _INTS,
    st.one_of(st.lists(_NAMES, max_size=2), st.lists(_VALUE, max_size=3)).map(tuple))
# ... with any of them replaced by anything.
_VALUES = st.builds(
    lambda values, changes: tuple(
        changes.get(index, value) for index, value in enumerate(values)),
    _USUAL, st.dictionaries(st.sampled_from([0, *range(2, 13)]), _VALUE, max_size=2))
# A live feed's values, in a line the compiled reader reads (ASCII, no escapes, numbers
# of at most 18 digits), its cells sometimes holding the delimiter (a timestamp, a name).
_ASCII_CODES = st.one_of(st.none(), st.sampled_from(["1", "2", "O", "C", "0", "A b", "x,y",
                                                     "t\tu", "0123"]))
_FEED_INTS = st.integers(-(10**18) + 1, 10**18 - 1)
_FEED_PRICES = st.one_of(
    st.none(), st.floats(min_value=1e-4, max_value=1e15, exclude_max=True),
    st.floats(min_value=-1e15, max_value=-1e-4, exclude_min=True),
    st.builds(lambda k, n: k / 2**n, st.integers(-(10**12), 10**12), st.integers(0, 40)),
    st.sampled_from([0.0, -0.0, 1e-5, 1e15, 0.5e-4]))
_FEED = st.tuples(
    _FEED_INTS, st.sampled_from([None, "", "2027-01-15T08:00:00Z", "2027-01-15 08:00:01",
                                 "2027,01,15", " 2027-01-15", "2027-01-15T08:00:00.123456+00:00x",
                                 "2027-01-15T08:00:00.123456+00:00xyzxyzxyzxyz"]),
    st.integers(1, 10**18 - 1), _ASCII_CODES, _ASCII_CODES, _ASCII_CODES,
    st.one_of(st.none(), _FEED_INTS), _ASCII_CODES, _FEED_PRICES, _FEED_PRICES, _ASCII_CODES,
    _ASCII_CODES, _FEED_INTS,
    st.lists(st.sampled_from(["@ESZ6", "EURUSD", "a,b", "1", None]), max_size=3).map(tuple))

def value_line(values: tuple[object, ...], spelling: int) -> bytes:
    """A signal line holding ``values`` (its seq_id, timestamp, the 11 lookups, the symbol
    candidates), in one of a few spellings of the keys, as JSON (NaN, infinities and
    non-ASCII as Python's json writes them: not JSON, or escapes)."""
    (seq_id, timestamp, strategy_id, name, side, open_close, quantity, order_type, limit,
     stop, tif, status, signal_id, symbols) = values
    keys = [("StrategyId", "StrategyName", "Side", "OpenClose", "OrderQuantity", "OrderType",
             "Limit", "Stop", "TIF", "OrderStatus", "SignalId"),
            ("strategy_id", "strategy_name", "side", "open_close", "qty", "type", "limit_price",
             "stop_price", "time_in_force", "status", "order_id")][spelling % 2]
    payload = dict(zip(keys, (strategy_id, name, side, open_close, quantity, order_type,
                              limit, stop, tif, status, signal_id), strict=True))
    for container, symbol in zip(("C2Symbol", "Symbol", "ExchangeSymbol"),
                                 symbols, strict=False):  # type: ignore[call-overload]
        payload[container] = {"FullSymbol": symbol} if spelling % 3 == 0 else symbol
    envelope = {"msg_type": "strategy.signal", "id": "m1", "seq_id": seq_id,
                "timestamp": timestamp, "v": 4, "payload": payload}
    return json.dumps(envelope, ensure_ascii=spelling % 5 != 0,
                      separators=(",", ":") if spelling % 2 else (", ", ": ")).encode()


_PROJECTIONS = [COMBINED_COLUMNS, SIGNAL_COLUMNS, ("symbol", "qty", "limit"), ("limit",),
                ("time",), ("side", "kind", "stop", "signal_id")]


@settings(max_examples=1500)
@given(found=st.lists(st.one_of(_FEED, _FEED, _USUAL, _VALUES), min_size=1, max_size=6),
       spelling=st.integers(0, 29), columns=st.sampled_from(_PROJECTIONS),
       delimiter=st.sampled_from([",", "\t", ",", "\t", "é", "1"]),
       warm=st.sampled_from([True, True, True, False]))
def test_run_lines_are_the_rows_joined(found: list[tuple[object, ...]], spelling: int,
                                       columns: tuple[str, ...], delimiter: str,
                                       warm: bool) -> None:
    """Each line run_lines writes is the row c2ws.render.cells makes of the same frame
    decoded (picked), joined as DelimitedRenderer writes a row that needs no quoting; a
    row that needs quoting (or makes an empty line) it leaves to the renderer (the
    values, as the general path reads them); a line it does not read, its index.
    Without the compiled core every line is an index."""
    lines = [value_line(values, spelling) for values in found]
    picked = tuple(COMBINED_COLUMNS.index(name) for name in columns)
    if warm:  # the memos hold these lines' cells (as after a first row of them)
        for line in lines:
            cells._signal_row(_decoded(line), KEY)
    parts = run_lines(b"".join(line + b"\n" for line in lines), picked, delimiter)
    if not speedups.COMPILED:
        assert parts == list(range(len(lines)))
        return
    index = 0
    for part in parts:
        if type(part) is int:
            assert part == index
            index += 1
            continue
        if type(part) is tuple:
            assert repr(part) == repr(general_signal_values(lines[index]))
            index += 1
            hypothesis.event("values")
            continue
        assert type(part) is str
        for written in part.split("\n"):
            row = [cells._signal_row(_decoded(lines[index]), KEY)[column] for column in picked]
            joined = delimiter.join(row)
            assert '"' not in joined and joined.count(delimiter) == len(row) - 1 and joined
            assert written == joined
            index += 1
            hypothesis.event("written")
    assert index == len(lines)


@settings(max_examples=1500)
@given(edits=st.lists(st.tuples(st.integers(0, len(SIGNAL_LINE)), st.integers(0, 3),
                                st.sampled_from(list(b'{}[]:,"\\ -+.0123456789eEuabfnrtx_SQ\t'))),
                      min_size=1, max_size=3),
       columns=st.sampled_from(PROJECTIONS), delimiter=st.sampled_from([",", "\t"]))
def test_a_mangled_line_renders_as_decoded(edits: list[tuple[int, int, int]],
                                           columns: tuple[str, ...], delimiter: str) -> None:
    """Bytes inserted, replaced or deleted anywhere in a usual signal line, with the
    memos holding its cells: the run renders as the frame decoded (the compiled writer
    writes it, or leaves it to the general path)."""
    line = mangled(SIGNAL_LINE, edits)
    if b"\n" in line:
        return
    cells._signal_row(_decoded(SIGNAL_LINE), KEY)  # the usual line's cells held
    run = ev.StreamRun(KEY, line + b"\n", 1, 1)
    decoded = [ev.StreamMessage(KEY, _decoded(line), 1)]
    if type(run_lines(run.ndjson, tuple(range(17)), delimiter)[0]) is str:
        hypothesis.event("written")
    assert rendered(columns, delimiter, None, [run]) == rendered(
        columns, delimiter, None, decoded)  # type: ignore[arg-type]


def test_run_lines_write_the_bench_feed() -> None:
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
    parts = run_lines(run.ndjson, tuple(range(len(COMBINED_COLUMNS))), ",")
    assert len(parts) == 1 and type(parts[0]) is str
    assert rendered(COMBINED_COLUMNS, ",", None, [run]) == first
