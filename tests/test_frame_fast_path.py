"""The frame reader (c2ws/net/frames.py), differential-tested against websocket-client's
own frame parser: on any byte stream, cut anywhere, both yield the same messages in the
same order and end the same way (the stream runs out, a protocol error, a frame over our
bounds).  The reference is websocket-client's recv_data_frame loop, with c2ws's bounds
added to it the way c2ws once added them (a subclass of its frame reader), or, within
those bounds, the library exactly as it is."""

from __future__ import annotations

from typing import Any

import pytest
import websocket
from hypothesis import given, settings
from hypothesis import strategies as st
from websocket import ABNF, frame_buffer

from c2ws import spec
from c2ws.net.frames import FrameError, FrameReader, FrameTooLarge


class ChunkedSocket:
    """Serves ``data`` in the given chunk sizes; then the peer has closed."""

    def __init__(self, data: bytes, cuts: list[int]) -> None:
        self._chunks = chunks(data, cuts)
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


def chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    pieces: list[bytes] = []
    position = 0
    for size in cuts:
        if position >= len(data):
            break
        pieces.append(data[position : position + size])
        position += size
    if position < len(data):
        pieces.append(data[position:])
    return pieces


class TooLargeForReference(websocket.WebSocketPayloadException):
    pass


class _BoundedReader(frame_buffer):
    def recv_length(self) -> None:
        super().recv_length()
        if self.length is not None and self.length > spec.MAX_FRAME_BYTES:
            raise TooLargeForReference("frame")


class BoundedReference(websocket.WebSocket):
    """websocket-client with c2ws's bounds: a frame announcing more than MAX_FRAME_BYTES
    is refused once its length is read; a fragmented message over it, or over
    MAX_FRAGMENTS_PER_MESSAGE frames, once the frame past the bound is read."""

    def __init__(self) -> None:
        super().__init__(skip_utf8_validation=True)
        self.frame_buffer = _BoundedReader(self._recv, True)
        self._bytes = self._fragments = 0

    def recv_frame(self) -> ABNF:
        frame: ABNF = super().recv_frame()
        if frame.opcode in (ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY):
            self._bytes, self._fragments = len(frame.data), 1
        elif frame.opcode == ABNF.OPCODE_CONT:
            self._bytes += len(frame.data)
            self._fragments += 1
        else:
            return frame
        if self._bytes > spec.MAX_FRAME_BYTES or self._fragments > spec.MAX_FRAGMENTS_PER_MESSAGE:
            raise TooLargeForReference("message")
        return frame


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
    """websocket-client's parser: recv_data_frame until the stream ends or fails.
    ``limits``: with c2ws's bounds (a garbage header can announce a frame of terabytes,
    which the bound refuses early while the library waits for it); else the library as
    it is."""
    ws = BoundedReference() if limits else websocket.WebSocket(skip_utf8_validation=True)
    ws.sock = ChunkedSocket(data, cuts)  # type: ignore[assignment]
    ws.connected = True
    messages: list[tuple[int, bytes]] = []
    for _ in range(10_000):
        try:
            opcode, frame = ws.recv_data_frame(control_frame=True)
        except websocket.WebSocketConnectionClosedException:
            return messages, "closed"
        except TooLargeForReference:
            return messages, "too large"
        except websocket.WebSocketException:
            return messages, "protocol error"
        payload = frame.data
        messages.append((opcode, payload.encode() if isinstance(payload, str) else payload))
    raise AssertionError("no end")


def reader_messages(data: bytes, cuts: list[int]) -> tuple[list[tuple[int, bytes]], str]:
    """What the driver does with each read: plain text frames in bursts, then every
    other frame one by one, until nothing whole is left; then the next read."""
    reader = FrameReader()
    messages: list[tuple[int, bytes]] = []
    try:
        for piece in chunks(data, cuts):
            reader.feed(piece, 0.0)
            while True:
                messages.extend((ABNF.OPCODE_TEXT, text) for text in reader.text_burst())
                message = reader.next_frame()
                if message is None:
                    break
                messages.append(message)
    except FrameTooLarge:
        return messages, "too large"
    except FrameError:
        return messages, "protocol error"
    return messages, "closed"


@settings(max_examples=400)
@given(st.lists(FRAMES | GARBAGE, max_size=12), st.lists(st.integers(1, 70_000), max_size=30))
def test_the_fast_path_reads_exactly_what_websocket_client_reads(
    frames: list[bytes], cuts: list[int]
) -> None:
    data = b"".join(frames)
    assert reader_messages(data, cuts) == reference_messages(data, cuts)


@settings(max_examples=200)
@given(st.lists(FRAMES, max_size=12), st.lists(st.integers(1, 70_000), max_size=30))
def test_within_our_limits_it_reads_what_the_library_alone_reads(
    frames: list[bytes], cuts: list[int]
) -> None:
    data = b"".join(frames)
    assert reader_messages(data, cuts) == reference_messages(data, cuts, limits=False)


@given(st.binary(max_size=400), st.lists(st.integers(1, 64), max_size=30))
def test_arbitrary_bytes_end_the_same_way(data: bytes, cuts: list[int]) -> None:
    assert reader_messages(data, cuts) == reference_messages(data, cuts)


def test_a_burst_of_plain_frames_is_parsed_without_the_slow_path() -> None:
    frames = [frame_bytes(1, ABNF.OPCODE_TEXT, b'{"n":%d}' % i, False) for i in range(100)]
    reader = FrameReader()
    reader.feed(b"".join(frames), 0.0)
    assert reader.text_burst() == [b'{"n":%d}' % i for i in range(100)]
    assert reader.buffered == 0 and reader.incomplete_since is None


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 255, 256, 257, 4096, 65_535, 65_536])
def test_every_length_encoding_is_read_alike(length: int) -> None:
    payload = (b"0123456789abcdef" * (length // 16 + 1))[:length]
    data = (frame_bytes(1, ABNF.OPCODE_TEXT, payload, False)
            + frame_bytes(1, ABNF.OPCODE_TEXT, b"next", False))
    for cuts in ([], [1], [3], [length // 2 + 1], [65_536]):
        assert reader_messages(data, cuts) == reference_messages(data, cuts)
        assert reader_messages(data, cuts)[0] == [(1, payload), (1, b"next")]
