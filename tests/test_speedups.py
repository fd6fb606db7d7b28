"""The compiled core (c2ws/_speedups.c) against its pure-Python twins (c2ws/speedups.py):
the same answers on arbitrary input; and c2ws without the compiled core (not built, or
C2WS_PURE_PYTHON=1) runs the twins."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from json_strategies import signal_line

from c2ws import speedups, stream_head

REPO = Path(__file__).resolve().parent.parent

try:
    from c2ws import _speedups
except ImportError:  # built without a C compiler: only the twins can be tested
    _speedups = None  # type: ignore[assignment]

compiled = pytest.mark.skipif(_speedups is None, reason="c2ws was built without its C core")


def frame(payload: bytes, first: int = 0x81, masked: bool = False, wide: bool = False) -> bytes:
    """A server frame as the wire carries it (any first byte, any length encoding)."""
    length = len(payload)
    mask = 0x80 if masked else 0
    if wide:
        header = bytes((first, mask | 127)) + length.to_bytes(8, "big")
    elif length < 126:
        header = bytes((first, mask | length))
    else:
        header = bytes((first, mask | 126)) + (length & 0xFFFF).to_bytes(2, "big")
    return header + (b"\x01\x02\x03\x04" if masked else b"") + payload


payloads = st.one_of(
    st.binary(max_size=140),
    st.integers(120, 300).map(lambda n: b"x" * n),
    st.sampled_from([b"", b"{}", b'{"msg_type":"strategy.signal"}', b"\n", b"a\r", b"\xe9"]),
)
frames_on_the_wire = st.lists(st.one_of(
    payloads.map(frame),
    payloads.map(frame),
    st.tuples(payloads, st.sampled_from([0x01, 0x82, 0x88, 0x89, 0xC1, 0x80])).map(
        lambda pair: frame(pair[0], first=pair[1])),
    payloads.map(lambda data: frame(data, masked=True)),
    payloads.map(lambda data: frame(data, wide=True)),
), max_size=12)


@compiled
@settings(max_examples=1000)
@given(parts=frames_on_the_wire, cut=st.integers(0, 4000), position=st.integers(-5, 600),
       junk=st.binary(max_size=6))
def test_text_burst_cuts_what_the_twin_cuts(parts: list[bytes], cut: int, position: int,
                                            junk: bytes) -> None:
    chunk = (junk + b"".join(parts))[:cut]  # also a header or frame cut short by the read
    assert _speedups.text_burst(chunk, position) == speedups.py_text_burst(chunk, position)


@compiled
@given(chunk=st.binary(max_size=300), position=st.integers(-400, 400))
def test_text_burst_on_arbitrary_bytes(chunk: bytes, position: int) -> None:
    assert _speedups.text_burst(chunk, position) == speedups.py_text_burst(chunk, position)


text_frames = st.lists(st.one_of(
    st.binary(max_size=40),
    st.text(st.characters(max_codepoint=0x7F), max_size=40).map(str.encode),
    st.sampled_from([b"", b"\n", b"\r", b"12345678\n", b"1234567\r", b"\x80", b"abcdefg\xff"]),
    st.text(max_size=5),  # not bytes at all
), max_size=8)


@compiled
@settings(max_examples=1000)
@given(frames=text_frames)
def test_text_kind_says_what_the_twin_says(frames: list[bytes]) -> None:
    assert _speedups.text_kind(frames) == speedups.py_text_kind(frames)


@compiled
@settings(max_examples=1000)
@given(frames=st.lists(st.binary(max_size=30), max_size=6),
       needle=st.one_of(st.binary(max_size=4), st.sampled_from([b"ab", b"bench-key"])),
       planted=st.booleans())
def test_any_contains_finds_what_the_twin_finds(frames: list[bytes], needle: bytes,
                                                planted: bool) -> None:
    if planted and frames:
        frames[-1] = frames[-1][:3] + needle + frames[-1][3:]
    assert _speedups.any_contains(frames, needle) == speedups.py_any_contains(frames, needle)


@compiled
def test_the_compiled_core_refuses_what_it_does_not_take() -> None:
    with pytest.raises(TypeError):
        _speedups.text_burst("text", 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _speedups.any_contains([b"a", "b"], b"b")  # type: ignore[list-item]
    assert _speedups.text_kind([b"ok", "text"]) == 0  # type: ignore[list-item]


def test_the_compiled_core_was_built_where_it_is_required() -> None:
    """CI sets C2WS_REQUIRE_SPEEDUPS=1 (.ci/run): an extension that failed to build (pip
    goes on without it) must fail the run, not skip every differential test above."""
    if os.environ.get("C2WS_REQUIRE_SPEEDUPS", "") in ("", "0"):
        pytest.skip("C2WS_REQUIRE_SPEEDUPS is not set: the twins alone may be tested")
    assert _speedups is not None, (
        "c2ws._speedups was not built (no C compiler or Python headers?): "
        "pip install -v shows why")


def test_the_compiled_core_is_used_when_built_unless_asked_not_to() -> None:
    assert speedups.COMPILED is (_speedups is not None)
    if speedups.COMPILED:
        assert speedups.text_burst is _speedups.text_burst
    probe = ("from c2ws import speedups; "
             "print(speedups.COMPILED, speedups.text_burst is speedups.py_text_burst)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env={**os.environ, "C2WS_PURE_PYTHON": "1"}, cwd=REPO, timeout=60,
                          check=True)
    assert done.stdout.split() == ["False", "True"]


@compiled
@settings(max_examples=1000)
@given(parts=st.lists(st.one_of(
    st.sampled_from([b"{}", b'{"a":1}', b'{"a":"x\\ny"}', b'{"k":"bench-key"}', b"{\n}", b"{\r}",
                     b"{\xe9}", b"[]", b" {}", b"{} ", b"{", b"}", b"", b"{}{}"]).map(frame),
    st.binary(max_size=20).map(lambda data: frame(b"{" + data + b"}")),
    st.integers(0, 200).map(lambda n: frame(b"{" + b"x" * n + b"}")),
    frames_on_the_wire.map(b"".join),
), max_size=10), cut=st.integers(0, 3000), position=st.integers(-3, 40),
       marker=st.sampled_from([None, b"", b"bench-key", b"x"]))
def test_ndjson_burst_cuts_what_the_twin_cuts(parts: list[bytes], cut: int, position: int,
                                              marker: bytes | None) -> None:
    chunk = b"".join(parts)[:cut]
    assert _speedups.ndjson_burst(chunk, position, marker) == speedups.py_ndjson_burst(
        chunk, position, marker)


@given(parts=st.lists(st.binary(max_size=30).map(lambda data: b"{" + data + b"}"), max_size=8))
def test_ndjson_burst_is_text_burst_joined_up_to_the_first_frame_not_plain(
        parts: list[bytes]) -> None:
    chunk = b"".join(map(frame, parts))
    lines, count, position = speedups.ndjson_burst(chunk, 0, b"bench-key")
    frames, _ = speedups.text_burst(chunk, 0)
    plain = 0
    for data in frames:
        if not data.isascii() or b"\n" in data or b"\r" in data or b"bench-key" in data:
            break
        plain += 1
    assert count == plain and lines == b"".join(data + b"\n" for data in frames[:plain])
    assert position == len(b"".join(map(frame, parts[:plain])))


def msgspec_summary(ndjson: bytes, count: int) -> object:
    """What the session makes of a burst's lines without the compiled scanner."""
    heads = stream_head.read_burst_heads(ndjson, count)
    return None if heads is None else stream_head.run_of_heads(heads)


# Lines shaped like a stream's, and every way to get them wrong or odd.
HEADER_VALUES = st.sampled_from([
    '"strategy.signal"', '"strategy.positions"', '"x"', '""', '"s\\u0069gnal"', "null", "1",
    "-0", "7", "-7", "01", "1.0", "1e2", "123456789012345678", "1234567890123456789",
    "9223372036854775807", "9223372036854775808", "true", "[]", "{}", '"2027-01-15T08:00:00Z"',
    '"a\\"b"', '"\\ud800"', '"\\u00e9"',
])
OTHER_VALUES = st.sampled_from([
    '"x"', '"a\\\\b"', '"\\n"', '"\\u0041"', '"\\uDC00"', '"\\ud83d\\ude00"', '"\\x"', "1e400",
    "-", "1.", ".5", "0.5e-3", '[1, {"a": [null]}]', "[1,]", '{"a" : 1}', "tru", "nul",
    "[[[[[[[[[[]]]]]]]]]]", '"tab\\tin"', '{"StrategyId": 3}', '"raw\ttab"', '"\x7f"',
    "[" * 70 + "]" * 70,
])


@st.composite
def stream_line(draw: st.DrawFn, seq: int) -> str:
    fields = {"msg_type": '"strategy.signal"', "seq_id": str(seq), "id": '"m"',
              "timestamp": '"2027-01-15T08:00:00Z"', "v": "4",
              "payload": '{"StrategyId": 12345678, "Side": "1"}'}
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=2)):
        fields[name] = draw(HEADER_VALUES)
    if draw(st.booleans()):
        strategy = draw(st.sampled_from(
            ["12345678", "12345678", "1", "null", '"12345678"', "1.5"]))
        more = draw(st.lists(st.sampled_from(
            ['"StrategyId":12345678', '"Strategy\\u0049d":1', '"x":{"StrategyId":2}']),
            max_size=1))
        fields["payload"] = "{" + ",".join(
            [f'"Other":{draw(OTHER_VALUES)}', f'"StrategyId":{strategy}', *more]) + "}"
    pairs = [f'"{name}":{value}' for name, value in fields.items()]
    pairs.extend(draw(st.lists(st.sampled_from(
        ['"seq_id":9', '"msg_type":"x"', '"extra":' + draw(OTHER_VALUES), '"msg\\u005ftype":"y"']),
        max_size=1)))
    spacing = draw(st.sampled_from(["", " ", "\t"]))
    return "{" + spacing + ("," + spacing).join(draw(st.permutations(pairs))) + spacing + "}"


@compiled
@settings(max_examples=1000)  # ~6 s alone: well inside pytest's 60 s under load
@given(data=st.data(), count=st.integers(1, 5), first=st.sampled_from([1, 10, -3, 2**62]),
       tail=st.sampled_from(["", "junk", "{}"]))
def test_run_summary_reads_what_msgspec_reads(data: st.DataObject, count: int, first: int,
                                              tail: str) -> None:
    """The compiled scanner gives up (None) or finds what msgspec finds; what it accepts is
    valid JSON (the standard library agrees), and a run it reports msgspec reads alike."""
    lines = [data.draw(stream_line(first + index)) for index in range(count)]
    if tail and data.draw(st.booleans()):
        lines[-1] = lines[-1][:-1] + tail  # cut short, or two values on one line
    ndjson = "".join(line + "\n" for line in lines).encode()
    found = _speedups.run_summary(ndjson, count)
    if found is None:
        return
    expected = msgspec_summary(ndjson, count)
    assert found == (expected or False)
    if found:
        for line in lines:
            json.loads(line)  # valid JSON for the strictest reader too
        hypothesis.event("a run")


@compiled
def test_run_summary_reads_the_bench_feed() -> None:
    """Not a timing: the usual frames (bench/wire.py's) are read by the scanner itself."""
    lines = [b'{"msg_type":"strategy.signal","id":"msg_%032x","seq_id":%d,'
             b'"timestamp":"2027-01-15T08:00:00Z","v":4,"payload":{"StrategyId":12345678,'
             b'"Side":"1","C2Symbol":{"FullSymbol":"@ESZ6","SymbolType":"future"},'
             b'"Info":"a b\\u00e9 \\"q\\"","Qty":2.5e0,"Flags":[true,false,null]}}' % (seq, seq)
             for seq in range(5, 9)]
    ndjson = b"".join(line + b"\n" for line in lines)
    assert _speedups.run_summary(ndjson, 4) == (
        "strategy.signal", 12345678, 5, "2027-01-15T08:00:00Z")
    assert msgspec_summary(ndjson, 4) == ("strategy.signal", 12345678, 5, "2027-01-15T08:00:00Z")


def mangled(line: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """``line`` with each edit applied in turn: (where, 0 insert / 1 replace / else delete,
    the byte)."""
    changed = bytearray(line)
    for at, how, byte in edits:
        at = min(at, len(changed))
        if how == 0:
            changed.insert(at, byte)
        elif how == 1 and at < len(changed):
            changed[at] = byte
        elif at < len(changed):
            del changed[at]
    return bytes(changed)


BENCH_LINE = (b'{"msg_type":"strategy.signal","id":"msg_1","seq_id":5,"timestamp":"2027-01-15T'
              b'08:00:00Z","v":4,"payload":{"StrategyId":12345678,"Side":"1","C2Symbol":{'
              b'"FullSymbol":"@ESZ6"},"Info":"a \\"q\\" \\u00e9","Qty":-2.5e-1,"L":[true,null]}}')


@compiled
@settings(max_examples=3000)
@given(edits=st.lists(st.tuples(st.integers(0, len(BENCH_LINE)), st.integers(0, 3),
                                st.sampled_from(list(b'{}[]:,"\\ -+.0123456789eEuabfnrtx\t'))),
                      min_size=1, max_size=3))
def test_run_summary_never_accepts_a_mangled_line_msgspec_refuses(
        edits: list[tuple[int, int, int]]) -> None:
    """Bytes inserted, replaced or deleted anywhere in a usual line: the scanner gives up,
    or says what msgspec says."""
    line = mangled(BENCH_LINE, edits)
    if b"\n" in line:
        return
    ndjson = line + b"\n"
    found = _speedups.run_summary(ndjson, 1)
    if found is not None:
        assert found == (msgspec_summary(ndjson, 1) or False)


def general_signal_values(line: bytes) -> tuple[object, ...] | None:
    """What the general path of -o csv|tsv reads in a signal line (c2ws.render.tabular
    decodes it, the row reads c2ws.render.planned's lookups); None when it is no signal."""
    from c2ws.render.planned import signal_lookups, symbol_values
    from c2ws.render.tabular import _decoded

    message = _decoded(line)
    if message.msg_type != "strategy.signal":
        return None
    values, containers = signal_lookups(message.payload)
    symbols = tuple(symbol_values(message.payload, containers)) if containers else ()
    return (message.seq_id, message.timestamp, *values, symbols)


ALL_COLUMNS = tuple(range(17))


def read_values(ndjson: bytes) -> list[tuple[object, ...] | None]:
    """What the compiled signal_csv reads in each line, when it writes none (memos empty:
    it never does): the line's values, or None where it gives up on reading it."""
    parts = _speedups.signal_csv(ndjson, ALL_COLUMNS, ",", "signal", {}, {}, {})
    assert all(type(part) in (tuple, int) for part in parts)
    return [part if type(part) is tuple else None for part in parts]  # type: ignore[misc]


@compiled
# 1,500 examples take ~9 s alone: 4,000 took ~25 s, and past pytest's 60 s timeout on a
# loaded 2-core machine (the suite's one intermittent failure).
@settings(max_examples=1500)
@given(lines=st.lists(signal_line(), min_size=1, max_size=3), end=st.booleans())
def test_signal_csv_reads_what_the_general_path_reads(lines: list[bytes], end: bool) -> None:
    """Per line, the compiled reader gives up (the line's index) or finds exactly the
    values the general path finds (types included: 1, 1.0 and True differ, and -0.0 and
    0.0), on hostile lines: any spelling of the fields, twice, escapes, huge numbers, odd
    types.  Its Python twin gives up on every line."""
    ndjson = b"\n".join(lines) + (b"\n" if end else b"")
    parts = _speedups.signal_csv(ndjson, ALL_COLUMNS, ",", "signal", {}, {}, {})
    assert [part for part in parts if type(part) is int] == [
        index for index, part in enumerate(parts) if type(part) is not tuple]
    found = read_values(ndjson)
    assert len(found) == len(lines)
    assert speedups.py_signal_csv(ndjson, ALL_COLUMNS, ",", "signal", {}, {}, {}) == list(
        range(len(lines)))
    for line, values in zip(lines, found, strict=True):
        if values is None:
            continue
        assert repr(values) == repr(general_signal_values(line)), line
        hypothesis.event("read")


@compiled
def test_signal_csv_reads_the_bench_feed() -> None:
    """Not a timing: the bench's frames (bench/wire.py) are read by the compiled reader
    itself, not given up on."""
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import wire
    finally:
        sys.path.pop(0)
    lines = [wire.envelope_prefix(index + 1, "2027-01-15T08:00:00Z") + payload + b"}"
             for index, payload in enumerate(wire.payload_pool(42, size=200))]
    found = read_values(b"\n".join(lines) + b"\n")
    assert None not in found
    assert [repr(values) for values in found] == [
        repr(general_signal_values(line)) for line in lines]


SIGNAL_LINE = (b'{"msg_type":"strategy.signal","id":"msg_1","seq_id":5,"timestamp":"2027-01-15T'
               b'08:00:00Z","v":4,"payload":{"StrategyId":12345678,"StrategyName":"A b","Side":"1",'
               b'"OrderQuantity":2,"Limit":4312.25,"Stop":null,"OrderType":"2","SignalId":7,'
               b'"C2Symbol":{"FullSymbol":"@ESZ6","Expiry":"202612"},"Info":"a \\"q\\" \\u00e9",'
               b'"L":[true,null,-2.5e-1]}}')


@compiled
@settings(max_examples=3000)
@given(edits=st.lists(st.tuples(st.integers(0, len(SIGNAL_LINE)), st.integers(0, 3),
                                st.sampled_from(list(b'{}[]:,"\\ -+.0123456789eEuabfnrtx_SQ\t'))),
                      min_size=1, max_size=3))
def test_signal_csv_never_misreads_a_mangled_line(edits: list[tuple[int, int, int]]) -> None:
    """Bytes inserted, replaced or deleted anywhere in a usual signal line: the compiled
    reader gives up, or reads what the general path reads (so never a line that is not
    valid JSON: the general path would not read its payload)."""
    line = mangled(SIGNAL_LINE, edits)
    if b"\n" in line:
        return
    (found,) = read_values(line)
    if found is not None:
        json.loads(line)  # valid JSON for the strictest reader too
        assert repr(found) == repr(general_signal_values(line))


# --- nats_acks: the NATS sink's acks in a read of its connection ---------------------------

ACK_PREFIX = b"_INBOX.abc."


def ack(token: bytes, payload: bytes, sid: bytes = b"3", prefix: bytes = ACK_PREFIX) -> bytes:
    return b"MSG %s%s %s %d\r\n%s\r\n" % (prefix, token, sid, len(payload), payload)


ack_payloads = st.one_of(
    st.sampled_from([b'{"stream":"S","seq":7}', b'{"stream":"S","seq":8,"duplicate":true}',
                     b'{"error":{"code":503}}', b"", b"\r\n", b"MSG x 1 0\r\n"]),
    st.binary(max_size=40))
nats_items = st.one_of(
    st.tuples(st.integers(0, 10**18 - 1), ack_payloads).map(
        lambda pair: ack(b"%d" % pair[0], pair[1])),
    st.tuples(st.integers(0, 10**18 - 1), ack_payloads).map(
        lambda pair: ack(b"%d" % pair[0], pair[1])),
    ack_payloads.map(lambda data: ack(b"9" * 19, data)),  # a token too long
    ack_payloads.map(lambda data: ack(b"0007", data, sid=b"1" * 19)),
    ack_payloads.map(lambda data: ack(b"+7", data)),
    ack_payloads.map(lambda data: ack(b"\xd9\xa7", data)),  # a non-ASCII digit
    ack_payloads.map(lambda data: ack(b"5", data, prefix=b"_INBOX.abd.")),
    ack_payloads.map(lambda data: ack(b"5", data, prefix=b"c2.signal.")),
    st.sampled_from([
        b"PING\r\n", b"PONG\r\n", b"+OK\r\n", b"-ERR 'x'\r\n", b'INFO {"a":1}\r\n',
        b"MSG _INBOX.abc.7 3 _INBOX.r 2\r\nhi\r\n",  # a reply subject
        b"MSG _INBOX.abc.7  3 2\r\nhi\r\n", b"MSG _INBOX.abc.7\t3 2\r\nhi\r\n",
        b"MSG _INBOX.abc.7 3 2\nhi\r\n", b"MSG _INBOX.abc.7 3 2\r\nhi!!",
        b"MSG _INBOX.abc.7 3 123456789\r\n", b"MSG _INBOX.abc.7 3 99999999\r\n",
        b"HMSG _INBOX.abc.8 3 16 16\r\nNATS/1.0 503\r\n\r\n\r\n", b"msg _INBOX.abc.1 3 0\r\n\r\n",
    ]),
    st.binary(max_size=12),
)


@compiled
@settings(max_examples=3000)
@given(items=st.lists(nats_items, max_size=8), cut=st.integers(0, 600),
       position=st.integers(-30, 200), mutable=st.booleans(),
       prefix=st.sampled_from([ACK_PREFIX, b"", b"_INBOX.ab", b"\xff.*"]))
def test_nats_acks_reads_what_the_twin_reads(items: list[bytes], cut: int, position: int,
                                             mutable: bool, prefix: bytes) -> None:
    chunk: bytes | bytearray = b"".join(items)[:cut]  # an ack cut short by the read too
    if mutable:
        chunk = bytearray(chunk)
    assert (_speedups.nats_acks(chunk, position, prefix)
            == speedups.py_nats_acks(chunk, position, prefix))


@compiled
@settings(max_examples=1000)
@given(chunk=st.binary(max_size=120), position=st.integers(-200, 200),
       prefix=st.binary(max_size=3))
def test_nats_acks_on_arbitrary_bytes(chunk: bytes, position: int, prefix: bytes) -> None:
    chunk = b"MSG " + prefix + chunk  # most would stop at once
    assert (_speedups.nats_acks(chunk, position, prefix)
            == speedups.py_nats_acks(chunk, position, prefix))


@pytest.mark.parametrize("scan", [speedups.py_nats_acks, speedups.nats_acks],
                         ids=["twin", "in use"])
def test_nats_acks_takes_the_run_of_acks_and_says_what_is_left(scan: Any) -> None:
    one, two = ack(b"7", b'{"stream":"S","seq":1}'), ack(b"18", b"")
    assert scan(one + two, 0, ACK_PREFIX) == ([(7, b'{"stream":"S","seq":1}'), (18, b"")],
                                              len(one + two), False)
    # Cut anywhere in the second: the first, and "wait for more".
    for cut in range(len(one) + 1, len(one + two)):
        assert scan(bytearray(one + two)[:cut], 0, ACK_PREFIX) == (
            [(7, b'{"stream":"S","seq":1}')], len(one), True), cut
    # Anything else after it: the first, and "not an ack".
    for other in (b"PING\r\n", b"HMSG _INBOX.abc.8 3 12 12\r\nNATS/1.0\r\n\r\n\r\n",
                  ack(b"x", b""), ack(b"1", b"", sid=b"-1"), b"MSG _INBOX.abc.1 3 1\r\nab\r\n"):
        assert scan(one + other, 0, ACK_PREFIX) == ([(7, b'{"stream":"S","seq":1}')],
                                                    len(one), False), other
    assert scan(b"", 0, ACK_PREFIX) == ([], 0, False)
    assert scan(one, len(one) + 5, ACK_PREFIX) == ([], len(one) + 5, False)
# --- replace_file: the --state file's rewrite -------------------------------------------

# What a directory entry may be before the rewrite: nothing, a file (its bytes), an empty
# or a non-empty directory, a symbolic link (to a file elsewhere, or dangling).
entries = st.sampled_from(["none", "file", "dir", "full-dir", "link", "dangling"])
file_names = st.one_of(
    st.sampled_from([".c2ws.json.tmp-42-deadbeef", "c2ws.json", "state", "é", "a b", "x\ny",
                     "\x1b[31m", ".", "..", "a" * 255, "a" * 256]),
    st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)),
            min_size=1, max_size=12),
)


def _make(path: Path, entry: str, elsewhere: Path) -> None:
    if entry == "file":
        path.write_bytes(b"old")
    elif entry in ("dir", "full-dir"):
        path.mkdir()
        if entry == "full-dir":
            (path / "inside").write_bytes(b"x")
    elif entry == "link":  # relative: the same link in each scratch directory
        path.symlink_to(Path("..") / elsewhere.name)
    elif entry == "dangling":
        path.symlink_to(Path("..") / "nowhere")


def _tree(directory: Path) -> list[tuple[str, str, bytes | int]]:
    """Every entry of ``directory`` (and one level below): its kind, bytes and mode."""
    found: list[tuple[str, str, bytes | int]] = []
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        if entry.is_symlink():
            found.append((entry.name, "link", os.readlink(entry.path).encode()))
        elif entry.is_dir():
            found.append((entry.name, "dir", len(os.listdir(entry.path))))
        else:
            found.append((entry.name, "file", Path(entry.path).read_bytes()))
            found.append((entry.name, "mode", stat.S_IMODE(entry.stat().st_mode)))
    return found


def _rewrite(replace: Callable[[int, str, str, bytes], None], temp: str, name: str,
             data: bytes, at_temp: str, at_name: str, directory_fd: str) -> tuple[object, ...]:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        directory, elsewhere = root / "d", root / "elsewhere"
        directory.mkdir()
        elsewhere.write_bytes(b"elsewhere")
        for entry, entry_name in ((at_temp, temp), (at_name, name)):
            with contextlib.suppress(OSError):  # "." and "..", a name too long: as they are
                _make(directory / entry_name, entry, elsewhere)
        target = elsewhere if directory_fd == "a file" else directory
        fd = os.open(target, os.O_RDONLY)
        try:
            try:
                replace(fd, temp, name, data)
                outcome: object = None
            except OSError as exc:
                outcome = (type(exc), exc.errno)
        finally:
            os.close(fd)
        return outcome, _tree(directory), elsewhere.read_bytes()


@compiled
@settings(max_examples=300, deadline=None)
@given(temp=file_names, name=file_names, data=st.binary(max_size=3000), at_temp=entries,
       at_name=entries, directory_fd=st.sampled_from(["a directory"] * 5 + ["a file"]))
def test_replace_file_does_what_its_python_twin_does(
    temp: str, name: str, data: bytes, at_temp: str, at_name: str, directory_fd: str,
) -> None:
    """The same files, bytes and modes after it, or the same OSError (type and errno):
    whatever was at the temporary name (a leftover, a link: never followed) or at the
    state file's name, names of any characters, a descriptor that is no directory."""
    assert _rewrite(_speedups.replace_file, temp, name, data, at_temp, at_name,
                    directory_fd) == _rewrite(speedups.py_replace_file, temp, name, data,
                                              at_temp, at_name, directory_fd)


@compiled
def test_replace_file_refuses_what_it_does_not_take() -> None:
    for args in ((0, b"t", "n", b""), (0, "t", "n", "data"), ("0", "t", "n", b""),
                 (0, "t", "n")):
        with pytest.raises(TypeError):
            _speedups.replace_file(*args)  # type: ignore[arg-type]
    with pytest.raises(OverflowError):
        _speedups.replace_file(1 << 40, "t", "n", b"")
    with pytest.raises(ValueError):  # as os.open: no NUL in a file name
        _speedups.replace_file(0, "t\x00", "n", b"")
