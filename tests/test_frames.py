"""The frame reader's bounds and the frame-completion deadline: a frame or message over
our limits is refused as soon as its header says so, fragments are joined (with control
frames between them), and a frame's deadline runs from its first byte, never from a
read that completes it or from the idle time between frames.  (That it reads what
websocket-client reads: tests/test_frame_fast_path.py.)"""

from __future__ import annotations

import socket
import threading
import time

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from raw_server import OPCODE_CONT, OPCODE_PING, OPCODE_TEXT, WAIT, server_frame

from c2ws import events as ev
from c2ws import spec
from c2ws.delivery.dedupe import StreamFilter
from c2ws.events import EndReason
from c2ws.net.connection import SocketTransport
from c2ws.net.driver import Driver, DriverHooks, DriverSettings
from c2ws.net.frames import (
    FrameReader,
    FrameTooLarge,
    ProtocolViolation,
    TooManyFragments,
)
from c2ws.session import ClientSession, SessionTimeouts


def read_all(reader: FrameReader) -> list[tuple[int, bytes]]:
    messages: list[tuple[int, bytes]] = []
    while True:
        messages.extend((OPCODE_TEXT, text) for text in reader.text_burst())
        message = reader.next_frame()
        if message is None:
            return messages
        messages.append(message)


def test_a_frame_split_across_many_reads_is_reassembled() -> None:
    data = server_frame(b"x" * 70_000)  # 64-bit length, larger than one read
    pieces = [data[start : start + 1000] for start in range(0, len(data), 1000)]
    reader = FrameReader()
    for piece in pieces[:-1]:
        reader.feed(piece, 0.0)
        assert read_all(reader) == []
    reader.feed(pieces[-1], 0.0)
    assert read_all(reader) == [(OPCODE_TEXT, b"x" * 70_000)]
    assert reader.buffered == 0


def test_a_frame_announcing_more_than_the_limit_is_refused_unread() -> None:
    reader = FrameReader()
    # FIN + text, 64-bit length of 1 TiB; not one payload byte follows.
    reader.feed(bytes([0x81, 127]) + (1 << 40).to_bytes(8, "big"), 0.0)
    with pytest.raises(FrameTooLarge, match="exceeds the limit"):
        reader.next_frame()


def test_a_fragmented_message_over_the_limit_is_refused() -> None:
    half = spec.MAX_FRAME_BYTES // 2 + 1
    reader = FrameReader()
    reader.feed(server_frame(b"x" * half, fin=0) + server_frame(b"x" * half, OPCODE_CONT), 0.0)
    with pytest.raises(FrameTooLarge, match="fragmented"):
        read_all(reader)


def test_a_flood_of_one_byte_fragments_is_refused_after_the_fragment_limit() -> None:
    fragments = spec.MAX_FRAME_BYTES - 1  # under the size limit: only the count can stop it
    one = server_frame(b"y", OPCODE_CONT, fin=0)
    flood = server_frame(b"y", fin=0) + one * (fragments - 2) + server_frame(b"y", OPCODE_CONT)
    reader = FrameReader()
    reader.feed(flood, 0.0)
    with pytest.raises(TooManyFragments) as refused:
        read_all(reader)
    assert isinstance(refused.value, FrameTooLarge)  # so the driver closes with 1009
    assert refused.value.close_code == 1009
    # It stopped at the fragment past the limit: 3 bytes a fragment.
    assert reader.buffered == len(flood) - 3 * (spec.MAX_FRAGMENTS_PER_MESSAGE + 1)


def test_fragments_within_the_limits_are_joined_with_pings_between() -> None:
    parts = [f"part{i};".encode() for i in range(spec.MAX_FRAGMENTS_PER_MESSAGE)]
    data = server_frame(parts[0], fin=0)
    for part in parts[1:-1]:
        data += server_frame(part, OPCODE_CONT, fin=0)
        if part in (b"part7;", b"part517;"):
            data += server_frame(b"hi", OPCODE_PING)
    data += server_frame(parts[-1], OPCODE_CONT)
    reader = FrameReader()
    reader.feed(data, 0.0)
    assert read_all(reader) == [(OPCODE_PING, b"hi"), (OPCODE_PING, b"hi"),
                                (OPCODE_TEXT, b"".join(parts))]


def test_a_continuation_without_a_start_is_a_protocol_error() -> None:
    reader = FrameReader()
    reader.feed(server_frame(b"orphan", OPCODE_CONT), 0.0)
    with pytest.raises(ProtocolViolation) as refused:
        reader.next_frame()
    assert refused.value.close_code == 1002


def test_invalid_utf8_is_left_to_the_decoder() -> None:
    reader = FrameReader()
    reader.feed(server_frame(b'{"msg_type":"\xff"}'), 0.0)
    assert read_all(reader) == [(OPCODE_TEXT, b'{"msg_type":"\xff"}')]


# --- the frame-completion deadline ----------------------------------------------------------


def test_the_deadline_counts_from_a_frames_first_byte_not_per_read() -> None:
    frame = server_frame(b"p" * 100)
    reader = FrameReader()
    reader.feed(frame[:30], 0.0)
    reader.feed(frame[30:60], 11.0)
    assert read_all(reader) == []
    assert reader.incomplete_since == 0.0
    reader.feed(frame[60:], 12.0)
    assert read_all(reader) == [(OPCODE_TEXT, b"p" * 100)]
    assert reader.incomplete_since is None  # between frames: no deadline


def test_a_frame_begun_behind_complete_ones_counts_from_the_read_that_began_it() -> None:
    first, second = server_frame(b"first"), server_frame(b"s" * 100)
    reader = FrameReader()
    reader.feed(first[:3], 0.0)
    reader.feed(first[3:] + second[:10], 5.0)
    assert read_all(reader) == [(OPCODE_TEXT, b"first")]
    assert reader.incomplete_since == 5.0


def test_half_a_tls_record_begins_a_frame() -> None:
    reader = FrameReader()
    reader.note_bytes_under_way(3.0)
    reader.feed(server_frame(b"x" * 10)[:4], 4.0)
    assert read_all(reader) == []
    assert reader.incomplete_since == 3.0


class JumpingClock:
    """Monotonic time that the test moves forward by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_slow_consumer_does_not_make_the_next_frame_late() -> None:
    """One read brings a whole frame and the head of the next; handing the first over
    takes 100 s (past the 10 s frame deadline) while the rest of the second arrives.
    The rest is read before the deadline is judged: the second frame is delivered."""
    connected = server_frame(orjson.dumps({"msg_type": "connection.connected", "id": "m1",
                                           "timestamp": "2026-01-01T00:00:00Z", "v": 4}))
    heartbeat = server_frame(orjson.dumps({"msg_type": "heartbeat", "id": "m2",
                                           "timestamp": "2026-01-01T00:00:00Z", "v": 4}))
    ours, theirs = socket.socketpair()
    clock = JumpingClock()
    seen: list[ev.Event] = []

    class SlowConsumer(DriverHooks):
        def hand_over(self, events: list[ev.Event]) -> None:
            if not seen:
                theirs.sendall(heartbeat[10:])  # the rest arrives while we are busy
                clock.now += 100.0
            seen.extend(events)
            if any(isinstance(e, ev.HeartbeatAnswered) for e in events):
                theirs.close()

    session = ClientSession(request_id_prefix="c2ws-test", stream_filter=StreamFilter([], {}),
                            now=clock(), timeouts=SessionTimeouts(connected=1e6, silence=1e6))
    theirs.sendall(connected + heartbeat[:10])
    transport = SocketTransport(ours)
    try:
        end = Driver(transport, session, hooks=SlowConsumer(), clock=clock,
                     settings=DriverSettings(io_timeout=10.0)).run()
    finally:
        transport.close()
    assert any(isinstance(e, ev.HeartbeatAnswered) for e in seen)
    assert end.reason is EndReason.LOST  # the test hung up; no stalled frame


def test_a_frame_dripping_a_byte_at_a_time_is_a_stalled_frame() -> None:
    """Every read succeeds quickly, the frame never completes: the deadline from its
    first byte ends the connection."""
    ours, theirs = socket.socketpair()
    frame = server_frame(b"d" * 200)
    stop = threading.Event()
    dripped: list[int] = []

    def drip() -> None:
        count = 0
        try:
            theirs.sendall(frame[:2])
            for byte in frame[2:]:
                if stop.wait(0.1):
                    break
                theirs.sendall(bytes([byte]))
                count += 1
        except OSError:
            pass
        dripped.append(count)

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    session = ClientSession(request_id_prefix="c2ws-test", stream_filter=StreamFilter([], {}),
                            now=time.monotonic(),
                            timeouts=SessionTimeouts(connected=60, silence=60))
    transport = SocketTransport(ours)
    try:
        end = Driver(transport, session, settings=DriverSettings(io_timeout=0.5)).run()
    finally:
        stop.set()
        transport.close()
        dripper.join(WAIT)
        theirs.close()
    assert end.reason is EndReason.FRAME_STALLED
    assert end.detail == "the server sent part of a frame but not the rest within 0.5 s"
    assert dripped and dripped[0] < 200


def test_a_stall_between_the_fragments_of_a_message_is_bounded_by_the_silence_deadline() -> None:
    """The first fragment complete, the rest never sent: the driver waits with the
    session's deadlines (it never blocks reading the next fragment), so silence ends it."""
    ours, theirs = socket.socketpair()
    theirs.sendall(server_frame(b'{"msg_type":', fin=0))
    session = ClientSession(request_id_prefix="c2ws-test", stream_filter=StreamFilter([], {}),
                            now=time.monotonic(),
                            timeouts=SessionTimeouts(connected=60, silence=0.3))
    transport = SocketTransport(ours)
    try:
        end = Driver(transport, session).run()
    finally:
        transport.close()
        theirs.close()
    assert end.reason is EndReason.SILENT


@given(sizes=st.lists(st.sampled_from([0, 1, 5, 125, 126, 127, 800, 1200, 65535, 65536, 70_000]),
                      min_size=1, max_size=8),
       first=st.integers(1, 300_000), opcodes=st.lists(st.sampled_from(
           [OPCODE_TEXT, OPCODE_TEXT, OPCODE_PING]), min_size=8, max_size=8))
@settings(max_examples=300)
def test_reading_what_is_wanted_ends_where_a_frame_ends(sizes: list[int], first: int,
                                                       opcodes: list[int]) -> None:
    """The driver reads no more than ``wanted()`` while a frame is under way: such a read
    never goes past that frame's end (it ends there, or within a header still short),
    and the frames come out as ever."""
    frames = [server_frame(b"{" * size, opcode if size < 126 or opcode == OPCODE_TEXT
                           else OPCODE_TEXT) for size, opcode in zip(sizes, opcodes, strict=False)]
    wire = b"".join(frames)
    ends = {sum(map(len, frames[: index + 1])) for index in range(len(frames))}
    reader = FrameReader()
    reader.feed(wire[:first], 0.0)
    position = min(first, len(wire))
    received = read_all(reader)
    while position < len(wire):
        wanted = reader.wanted()
        assert wanted > 0 or reader.buffered == 0
        step = wanted or 64 * 1024
        frame_end = min(end for end in ends if end > position)
        reader.feed(wire[position : position + step], 0.0)
        position = min(position + step, len(wire))
        received.extend(read_all(reader))
        if wanted:  # the frame under way (or its header), and nothing after it
            assert position <= frame_end
            assert position == frame_end or reader.wanted() > 0
    assert reader.buffered == 0 and reader.wanted() == 0
    assert [payload for _, payload in received] == [b"{" * size for size in sizes]
