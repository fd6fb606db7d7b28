"""The buffered fast path for plain text frames, differential-tested against
websocket-client's own frame parser: on any byte stream, cut anywhere, both yield the
same messages and end with the same kind of error."""

from __future__ import annotations

from typing import Any

import pytest
import websocket
from hypothesis import given, settings
from hypothesis import strategies as st
from websocket import ABNF

from c2ws.net.connection import BufferedWebSocket


class ChunkedSocket:
    """Serves ``data`` in the given chunk sizes; then the peer has closed."""

    def __init__(self, data: bytes, cuts: list[int]) -> None:
        self._chunks: list[bytes] = []
        position = 0
        for size in cuts:
            if position >= len(data):
                break
            self._chunks.append(data[position : position + size])
            position += size
        if position < len(data):
            self._chunks.append(data[position:])
        self.sent: list[bytes] = []

    def recv(self, bufsize: int) -> bytes:
        if not self._chunks:
            return b""
        chunk = self._chunks[0]
        if len(chunk) <= bufsize:
            self._chunks.pop(0)
            return chunk
        self._chunks[0] = chunk[bufsize:]
        return chunk[:bufsize]

    def send(self, data: Any, flags: int = 0) -> int:
        self.sent.append(bytes(data))
        return len(data)

    def gettimeout(self) -> float | None:
        return None

    def settimeout(self, timeout: float | None) -> None:
        pass

    def pending(self) -> int:
        return 0

    def close(self) -> None:
        pass

    def shutdown(self, how: int) -> None:
        pass


def frame_bytes(fin: int, opcode: int, payload: bytes, masked: bool, rsv: int = 0) -> bytes:
    frame = ABNF(fin, rsv & 4 and 1, rsv & 2 and 1, rsv & 1, opcode, 1 if masked else 0,
                 payload)
    if masked:
        frame.get_mask_key = lambda n: b"\x01\x02\x03\x04"[:n]
    return frame.format()


# Every length encoding: 7-bit (< 126), 16-bit (126..65535) and 64-bit (65536 and up).
LENGTHS = st.sampled_from([0, 1, 125, 126, 127, 255, 256, 257, 300, 4096, 65_535, 65_536, 70_000])
TEXT = st.binary(max_size=200) | LENGTHS.map(lambda n: (b"0123456789abcdef" * (n // 16 + 1))[:n])
FRAMES = st.one_of(
    st.builds(lambda p: frame_bytes(1, ABNF.OPCODE_TEXT, p, False), TEXT),
    st.builds(lambda p: frame_bytes(1, ABNF.OPCODE_TEXT, p, False), st.binary(max_size=50)),
    st.builds(lambda p: frame_bytes(1, ABNF.OPCODE_PING, p, False), st.binary(max_size=125)),
    st.builds(lambda p: frame_bytes(1, ABNF.OPCODE_PONG, p, False), st.binary(max_size=20)),
    st.builds(lambda p: frame_bytes(1, ABNF.OPCODE_BINARY, p, False), st.binary(max_size=50)),
    st.builds(lambda p: frame_bytes(1, ABNF.OPCODE_TEXT, p, True), st.binary(max_size=50)),
    st.builds(lambda parts: frame_bytes(0, ABNF.OPCODE_TEXT, parts[0], False) + b"".join(
        frame_bytes(1 if i == len(parts) - 2 else 0, ABNF.OPCODE_CONT, part, False)
        for i, part in enumerate(parts[1:])),
        st.lists(st.binary(max_size=30), min_size=2, max_size=5)),
    st.builds(lambda p, rsv: frame_bytes(1, ABNF.OPCODE_TEXT, p, False, rsv),
              st.binary(max_size=20), st.integers(1, 7)),
)
GARBAGE = st.binary(min_size=1, max_size=12)


def reference_messages(
    data: bytes, cuts: list[int], *, limits: bool = True
) -> tuple[list[tuple[int, bytes]], str]:
    """websocket-client's parser alone: recv_data_frame until the stream ends or fails.
    ``limits``: through our subclass, which only adds the frame-size and fragment bounds
    (a garbage header can announce a frame of terabytes, which the bound refuses early
    while the library waits for it); else the library as it is."""
    ws = (BufferedWebSocket if limits else websocket.WebSocket)(skip_utf8_validation=True)
    ws.sock = ChunkedSocket(data, cuts)  # type: ignore[assignment]
    ws.connected = True
    return _collect(lambda: [ws.recv_data_frame(control_frame=True)])


def fast_path_messages(data: bytes, cuts: list[int]) -> tuple[list[tuple[int, bytes]], str]:
    """What the socket thread does: buffered plain text frames first (handled at once),
    then one frame through websocket-client, per read."""
    ws = BufferedWebSocket(skip_utf8_validation=True)
    ws.sock = ChunkedSocket(data, cuts)  # type: ignore[assignment]
    ws.connected = True
    messages: list[tuple[int, bytes]] = []

    def step() -> list[tuple[int, Any]]:
        ws.fill()
        fast = ws.read_buffered_text()
        messages.extend((ABNF.OPCODE_TEXT, text) for text in fast)
        if not fast or ws.has_buffered_data():
            return [ws.recv_data_frame(control_frame=True)]
        return []

    return _collect(step, messages)


def _collect(
    step: Any, messages: list[tuple[int, bytes]] | None = None
) -> tuple[list[tuple[int, bytes]], str]:
    messages = [] if messages is None else messages
    for _ in range(10_000):
        try:
            for opcode, frame in step():
                data = frame.data
                messages.append((opcode, data.encode() if isinstance(data, str) else data))
        except websocket.WebSocketConnectionClosedException:
            return messages, "closed"
        except websocket.WebSocketException as exc:
            return messages, type(exc).__name__
    raise AssertionError("no end")


@settings(max_examples=400)
@given(st.lists(FRAMES | GARBAGE, max_size=12), st.lists(st.integers(1, 70_000), max_size=30))
def test_the_fast_path_reads_exactly_what_websocket_client_reads(
    frames: list[bytes], cuts: list[int]
) -> None:
    data = b"".join(frames)
    assert fast_path_messages(data, cuts) == reference_messages(data, cuts)


@settings(max_examples=200)
@given(st.lists(FRAMES, max_size=12), st.lists(st.integers(1, 70_000), max_size=30))
def test_within_our_limits_it_reads_what_the_library_alone_reads(
    frames: list[bytes], cuts: list[int]
) -> None:
    data = b"".join(frames)
    assert fast_path_messages(data, cuts) == reference_messages(data, cuts, limits=False)


@given(st.binary(max_size=400), st.lists(st.integers(1, 64), max_size=30))
def test_arbitrary_bytes_end_the_same_way(data: bytes, cuts: list[int]) -> None:
    assert fast_path_messages(data, cuts) == reference_messages(data, cuts)


def test_a_burst_of_plain_frames_is_parsed_without_the_slow_path() -> None:
    frames = [frame_bytes(1, ABNF.OPCODE_TEXT, b'{"n":%d}' % i, False) for i in range(100)]
    ws = BufferedWebSocket(skip_utf8_validation=True)
    ws.sock = ChunkedSocket(b"".join(frames), [1 << 20])  # type: ignore[assignment]
    ws.connected = True
    ws.fill()
    assert ws.read_buffered_text() == [b'{"n":%d}' % i for i in range(100)]
    assert not ws.has_buffered_data()


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 255, 256, 257, 4096, 65_535, 65_536])
def test_every_length_encoding_is_read_alike(length: int) -> None:
    payload = (b"0123456789abcdef" * (length // 16 + 1))[:length]
    data = (frame_bytes(1, ABNF.OPCODE_TEXT, payload, False)
            + frame_bytes(1, ABNF.OPCODE_TEXT, b"next", False))
    for cuts in ([], [1], [3], [length // 2 + 1], [65_536]):
        assert fast_path_messages(data, cuts) == reference_messages(data, cuts)
        assert fast_path_messages(data, cuts)[0] == [(1, payload), (1, b"next")]
