"""The compiled core (c2ws/_speedups.c) against its pure-Python twins (c2ws/speedups.py):
the same answers on arbitrary input; and c2ws without the compiled core (not built, or
C2WS_PURE_PYTHON=1) runs the twins."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from c2ws import speedups

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
