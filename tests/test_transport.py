"""Buffered, bounded frame reads (no server needed)."""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest
from websocket import ABNF

from c2ws import spec
from c2ws.net.connection import BufferedWebSocket, FrameTooLarge


class CountingSocket:
    """Wraps a real socket and counts the recv calls websocket-client makes."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.recv_calls = 0

    def recv(self, bufsize: int) -> bytes:
        self.recv_calls += 1
        return self._sock.recv(bufsize)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def server_frame(text: str) -> bytes:
    frame = ABNF.create_frame(text, ABNF.OPCODE_TEXT)
    frame.mask = 0  # server-to-client frames are not masked
    return frame.format()


def test_a_burst_of_frames_is_read_with_one_recv() -> None:
    ours, theirs = socket.socketpair()
    counting = CountingSocket(ours)
    ws = BufferedWebSocket()
    ws.sock = counting  # type: ignore[assignment]
    ws.connected = True
    texts = [f'{{"msg_type":"strategy.signal","seq_id":{i}}}' for i in range(50)]
    theirs.sendall(b"".join(server_frame(t) for t in texts))
    received = []
    for _ in texts:
        opcode, frame = ws.recv_data_frame()
        assert opcode == ABNF.OPCODE_TEXT
        received.append(frame.data.decode())
    assert received == texts
    # websocket-client alone would make at least 3 reads per frame (150 here).
    assert counting.recv_calls == 1
    assert not ws.has_buffered_data()
    ours.close()
    theirs.close()


def test_a_frame_split_across_reads_is_reassembled() -> None:
    ours, theirs = socket.socketpair()
    ws = BufferedWebSocket()
    ws.sock = ours
    ws.connected = True
    data = server_frame("x" * 70_000)  # 64-bit length, larger than one read chunk
    result: list[bytes] = []
    reader = threading.Thread(target=lambda: result.append(ws.recv_data_frame()[1].data))
    reader.start()
    for start in range(0, len(data), 1000):
        theirs.sendall(data[start : start + 1000])
    reader.join(10)
    assert result == [b"x" * 70_000]
    ours.close()
    theirs.close()


def connected_pair() -> tuple[BufferedWebSocket, socket.socket]:
    ours, theirs = socket.socketpair()
    ws = BufferedWebSocket(skip_utf8_validation=True)
    ws.sock = ours
    ws.connected = True
    return ws, theirs


def test_a_frame_announcing_more_than_the_limit_is_refused_unread() -> None:
    ws, theirs = connected_pair()
    # FIN + text, 64-bit length of 1 TiB; not one payload byte follows.
    theirs.sendall(bytes([0x81, 127]) + (1 << 40).to_bytes(8, "big"))
    with pytest.raises(FrameTooLarge, match="exceeds the limit"):
        ws.recv_data_frame()
    theirs.close()


def test_a_fragmented_message_over_the_limit_is_refused() -> None:
    ws, theirs = connected_pair()
    half = spec.MAX_FRAME_BYTES // 2 + 1
    first = ABNF(0, 0, 0, 0, ABNF.OPCODE_TEXT, 0, b"x" * half)
    rest = ABNF(1, 0, 0, 0, ABNF.OPCODE_CONT, 0, b"x" * half)
    sender = threading.Thread(target=lambda: theirs.sendall(first.format() + rest.format()))
    sender.start()
    with pytest.raises(FrameTooLarge, match="fragmented"):
        ws.recv_data_frame()
    sender.join(10)
    theirs.close()


def test_invalid_utf8_is_left_to_the_decoder() -> None:
    ws, theirs = connected_pair()
    theirs.sendall(server_frame_bytes(b'{"msg_type":"\xff"}'))
    opcode, frame = ws.recv_data_frame()
    assert (opcode, frame.data) == (ABNF.OPCODE_TEXT, b'{"msg_type":"\xff"}')
    theirs.close()


def server_frame_bytes(data: bytes) -> bytes:
    frame = ABNF(1, 0, 0, 0, ABNF.OPCODE_TEXT, 0, data)
    return frame.format()
